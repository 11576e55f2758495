// Cipher lists and groups only OpenSSL can judge. Checked before the app starts when the
// operator set them; the defaults are known good, so the common case pays nothing.
import type { Credentials } from './credentials';
import type { TlsConfig } from './config';

/** The line that says what OpenSSL refused, or undefined. */
export function checkAlgorithms(c: TlsConfig, creds: Credentials): string | undefined {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const tls = require('node:tls') as typeof import('node:tls');
  const pair = creds.identities[0]!.pairs[0]!;
  for (const [name, opts] of [
    ['CIPHERS', { ciphers: c.ciphers }],
    ['CIPHERSUITES', { ciphers: c.cipherSuites }],
    ['TLS_GROUPS', { ecdhCurve: c.groups }],
  ] as const) {
    if ('ecdhCurve' in opts && opts.ecdhCurve === undefined) continue; // the defaults (./groups)
    try {
      tls.createSecureContext({ cert: pair.cert, key: pair.key, ...opts });
    } catch (e) {
      return `${name}: OpenSSL refuses '${'ciphers' in opts ? opts.ciphers : opts.ecdhCurve}': ${(e as Error).message}`;
    }
  }
  return undefined;
}
