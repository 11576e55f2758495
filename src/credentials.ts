// Read the certificate and key files. Done before the app starts so a missing file is
// reported with exit 111, and so the files can be read with the privileges we start with.
import { readFileSync } from 'node:fs';
import type { Config } from './options';

export interface Credentials {
  cert: Buffer;
  key: Buffer;
  dhparam?: Buffer;
}

export class CredentialsError extends Error {}

function read(variable: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : code;
    throw new CredentialsError(`cannot read ${variable} ${path}: ${why}`);
  }
}

export function readCredentials(c: Config): Credentials {
  const certVar = c.chainFile !== undefined ? 'CERTCHAINFILE' : 'CERTFILE';
  const cert = read(certVar, c.certFile);
  const key = c.keyFile === c.certFile ? cert : read('KEYFILE', c.keyFile);
  const out: Credentials = { cert, key };
  if (c.dhFile !== undefined) out.dhparam = read('DHFILE', c.dhFile);
  return out;
}

/** The first certificate of a PEM bundle as DER. Pure. */
export function firstCertificateDer(pem: Buffer): Buffer | undefined {
  const m = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(pem.toString('latin1'));
  return m ? Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64') : undefined;
}
