// Read and check every file the TLS policy names. Done before the app starts, with the
// privileges the helper starts with, so a bad file is exit 111 and the app never runs.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readTlv } from './der';
import { keyMatchesCertificate, keyPublic, KEY_LABELS, pemBlocks, type PemBlock } from './pem';
import type { Identity, KeyPair, TlsConfig } from './config';
import { parseCertificate, type CertInfo } from './x509';

export interface PairCredentials {
  /** The certificate file as given: the leaf, then its chain. */
  cert: Buffer;
  key: Buffer;
  leaf: CertInfo;
  leafDer: Buffer;
  ocsp?: Buffer;
}

export interface IdentityCredentials {
  name?: string;
  pairs: PairCredentials[];
}

export interface Credentials {
  identities: IdentityCredentials[];
  /** Trust anchors for client certificates, PEM. */
  ca?: string[];
  crl?: string[];
  dhparam?: Buffer;
  ticketKeys?: Buffer;
  /** The key TICKETKEYFILE held before the last reload changed it: its tickets still resume. */
  previousTicketKeys?: Buffer;
}

/** ucspi-tls-client's: what it trusts, and the certificate it presents. */
export interface ClientCredentials {
  /** Trust anchors as PEM. */
  ca?: string | string[];
  crl?: string[];
  /** Where the anchors came from, for the log. */
  trustSource: string;
  pair?: PairCredentials;
}

export class CredentialsError extends Error {}

/** Stateless session tickets: a 16-byte name, a 16-byte HMAC key, a 16-byte AES key. */
export const TICKET_KEY_BYTES = 48;

function read(variable: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new CredentialsError(`cannot read ${variable} ${path}: ${why(e)}`);
  }
}

function why(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code ?? 'error';
  return code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : code;
}

function blocks(variable: string, path: string, data: Buffer): PemBlock[] {
  try {
    return pemBlocks(data.toString('latin1'));
  } catch (e) {
    throw new CredentialsError(`${variable} ${path}: malformed PEM: ${(e as Error).message}`);
  }
}

interface ParsedCert {
  block: PemBlock;
  info: CertInfo;
}

function certificates(variable: string, path: string, list: PemBlock[]): ParsedCert[] {
  return list
    .filter((b) => b.label === 'CERTIFICATE' || b.label === 'TRUSTED CERTIFICATE')
    .map((block) => {
      try {
        return { block, info: parseCertificate(block.der) };
      } catch (e) {
        throw new CredentialsError(`${variable} ${path}: malformed certificate: ${(e as Error).message}`);
      }
    });
}

function names(identity: Identity): { cert: string; key: string; ocsp: string } {
  const suffix = identity.name === undefined ? '' : `:${identity.name}`;
  return { cert: `CERTFILE${suffix}`, key: `KEYFILE${suffix}`, ocsp: `OCSPFILE${suffix}` };
}

export function readPair(identity: Identity, pair: KeyPair, cache = new Map<string, Buffer>()): PairCredentials {
  const v = names(identity);
  const load = (variable: string, path: string): Buffer => {
    let b = cache.get(path);
    if (b === undefined) cache.set(path, (b = read(variable, path)));
    return b;
  };
  const cert = load(v.cert, pair.certFile);
  const certs = certificates(v.cert, pair.certFile, blocks(v.cert, pair.certFile, cert));
  if (certs.length === 0) throw new CredentialsError(`${v.cert} ${pair.certFile}: no certificate in the file`);
  const key = load(v.key, pair.keyFile);
  const keyBlock = blocks(v.key, pair.keyFile, key).find((b) => KEY_LABELS.includes(b.label));
  if (keyBlock === undefined) throw new CredentialsError(`${v.key} ${pair.keyFile}: no private key in the file`);
  if (keyBlock.encrypted) {
    throw new CredentialsError(`${v.key} ${pair.keyFile}: the key is encrypted; give it unencrypted and protect the file`);
  }
  const { block: leafBlock, info: leaf } = certs[0]!;
  const leafDer = leafBlock.der;
  let matches: boolean | undefined;
  try {
    matches = keyMatchesCertificate(keyPublic(keyBlock), leaf.publicKey);
  } catch (e) {
    throw new CredentialsError(`${v.key} ${pair.keyFile}: malformed private key: ${(e as Error).message}`);
  }
  // Key types whose encoding holds no public half: let OpenSSL compare (rare, so its cost is rare).
  if (matches === undefined) matches = opensslMatch(leafDer, keyBlock.pem);
  if (!matches) throw new CredentialsError(`${v.key} ${pair.keyFile} does not match the certificate in ${v.cert} ${pair.certFile}`);
  const out: PairCredentials = { cert, key, leaf, leafDer };
  if (pair.ocspFile !== undefined) out.ocsp = readOcsp(v.ocsp, pair.ocspFile);
  return out;
}

function opensslMatch(certDer: Buffer, keyPem: string): boolean {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const crypto = require('node:crypto') as typeof import('node:crypto');
  try {
    return new crypto.X509Certificate(certDer).checkPrivateKey(crypto.createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

function readOcsp(variable: string, path: string): Buffer {
  const der = read(variable, path);
  try {
    if (der.length === 0 || der[0] !== 0x30 || readTlv(der, 0).end !== der.length) throw new Error('not one DER SEQUENCE');
  } catch (e) {
    throw new CredentialsError(`${variable} ${path}: not a DER OCSP response (${(e as Error).message})`);
  }
  return der;
}

/** CAFILE, CADIR and CCAFILE: the trust anchors (and CRLs) as PEM strings. */
export function readTrust(c: Pick<TlsConfig, 'caFile' | 'caDir' | 'clientCaFile'>, out: { ca?: string[]; crl?: string[] }): void {
  const ca: PemBlock[] = [];
  const certBlocks = (variable: string, path: string, list: PemBlock[]): PemBlock[] => certificates(variable, path, list).map((c) => c.block);
  const crl: PemBlock[] = [];
  const take = (variable: string, path: string, data: Buffer): void => {
    const list = blocks(variable, path, data);
    ca.push(...certBlocks(variable, path, list));
    crl.push(...list.filter((b) => b.label === 'X509 CRL'));
  };
  if (c.caFile !== undefined) {
    const before = ca.length;
    take('CAFILE', c.caFile, read('CAFILE', c.caFile));
    if (ca.length === before) throw new CredentialsError(`CAFILE ${c.caFile}: no certificate in the file`);
  }
  if (c.caDir !== undefined) {
    let entries: string[];
    try {
      entries = readdirSync(c.caDir).sort();
    } catch (e) {
      throw new CredentialsError(`cannot read CADIR ${c.caDir}: ${why(e)}`);
    }
    const before = ca.length;
    for (const name of entries) {
      const path = join(c.caDir, name);
      let isFile = false;
      try {
        isFile = statSync(path).isFile();
      } catch {
        // a dangling link in a hashed directory: OpenSSL skips it too
      }
      if (isFile) take('CADIR', path, read('CADIR', path));
    }
    if (ca.length === before) throw new CredentialsError(`CADIR ${c.caDir}: no certificate in the directory`);
  }
  if (c.clientCaFile !== undefined) {
    const named = certBlocks('CCAFILE', c.clientCaFile, blocks('CCAFILE', c.clientCaFile, read('CCAFILE', c.clientCaFile)));
    if (named.length === 0) throw new CredentialsError(`CCAFILE ${c.clientCaFile}: no certificate in the file`);
    // Node's TLS advertises exactly the trust anchors; a name outside them would have to be trusted too.
    const outside = named.find((n) => !ca.some((a) => a.der.equals(n.der)));
    if (outside !== undefined) {
      throw new CredentialsError(`CCAFILE ${c.clientCaFile}: a CA in it is not in CAFILE or CADIR`);
    }
    ca.splice(0, ca.length, ...named);
  }
  if (ca.length > 0) out.ca = ca.map((b) => b.pem);
  if (crl.length > 0) out.crl = crl.map((b) => b.pem);
}

/**
 * OpenSSL holds one certificate per key type in a context (all EC curves share one): a
 * second of the same type would silently replace the first. Returns the two files at fault.
 */
export function sameKeyType(pairs: ReadonlyArray<{ leaf: Pick<CertInfo, 'publicKey' | 'keyAlg'> }>): [number, number] | undefined {
  for (let j = 1; j < pairs.length; j++) {
    const i = pairs.findIndex((p) => p.leaf.publicKey.algorithm === pairs[j]!.leaf.publicKey.algorithm);
    if (i < j) return [i, j];
  }
  return undefined;
}

export function readCredentials(c: TlsConfig): Credentials {
  const cache = new Map<string, Buffer>();
  const out: Credentials = {
    identities: c.identities.map((id) => {
      const ic: IdentityCredentials = { pairs: id.pairs.map((p) => readPair(id, p, cache)) };
      const twice = sameKeyType(ic.pairs);
      if (twice !== undefined) {
        const [a, b] = twice.map((n) => id.pairs[n]!.certFile);
        throw new CredentialsError(`${names(id).cert}: ${a} and ${b} have the same key type (${ic.pairs[twice[0]]!.leaf.keyAlg}); give one certificate per key type`);
      }
      if (id.name !== undefined) ic.name = id.name;
      return ic;
    }),
  };
  if (c.clientCert !== 'none') readTrust(c, out);
  if (c.dhFile !== undefined) {
    const dh = read('DHFILE', c.dhFile);
    if (!blocks('DHFILE', c.dhFile, dh).some((b) => b.label === 'DH PARAMETERS')) {
      throw new CredentialsError(`DHFILE ${c.dhFile}: no DH PARAMETERS block in the file`);
    }
    out.dhparam = dh;
  }
  if (c.ticketKeyFile !== undefined) {
    const keys = read('TICKETKEYFILE', c.ticketKeyFile);
    if (keys.length !== TICKET_KEY_BYTES) {
      throw new CredentialsError(`TICKETKEYFILE ${c.ticketKeyFile}: ${keys.length} bytes, not ${TICKET_KEY_BYTES}`);
    }
    out.ticketKeys = keys;
  }
  return out;
}
