// ucspi-tls-client's files, read and checked before the app starts: the trust anchors and
// the optional client certificate. A bad one is exit 111 and the app never runs.
import { existsSync, readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import type { ClientTlsConfig } from '../tls/config';
import { errorWords } from '../messages';
import { CredentialsError, readPair, readTrust, type ClientCredentials } from '../tls/credentials';

/** Debian's (and most distributions') bundle of the system's trusted CAs. */
export const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

export function readClientCredentials(c: ClientTlsConfig, systemBundle = SYSTEM_CA_BUNDLE): ClientCredentials {
  const out: ClientCredentials = { trustSource: '' };
  if (c.caFile !== undefined || c.caDir !== undefined) {
    const t: { ca?: string[]; crl?: string[] } = {};
    readTrust(c, t);
    if (t.ca !== undefined) out.ca = t.ca;
    if (t.crl !== undefined) out.crl = t.crl;
    out.trustSource = [c.caFile && `CAFILE ${c.caFile}`, c.caDir && `CADIR ${c.caDir}`].filter(Boolean).join(' and ');
  } else if (existsSync(systemBundle)) {
    try {
      out.ca = readFileSync(systemBundle, 'latin1');
    } catch (e) {
      throw new CredentialsError(`cannot read the system trust store ${systemBundle}: ${errorWords(e)}`);
    }
    out.trustSource = systemBundle;
  } else {
    // Named, not left to Node's default: the executables run with --use-openssl-ca, which
    // would make the default OpenSSL's own (often empty) store.
    out.ca = [...rootCertificates];
    out.trustSource = "Node's built-in CA list";
  }
  if (c.pair !== undefined) out.pair = readPair({ pairs: [c.pair] }, c.pair);
  return out;
}
