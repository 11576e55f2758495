// Which certificate a client gets: by the server name it sent, then by the signature
// algorithms it supports. Pure.
import type { HelloInfo } from './client-hello';
import type { PublicKeyInfo } from './x509';

/** `*.example.com` matches exactly one more label, as s6-networking and RFC 6125 have it. */
export function nameMatches(pattern: string, host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  if (!pattern.startsWith('*.')) return pattern === h;
  const dot = h.indexOf('.');
  return dot > 0 && h.slice(dot + 1) === pattern.slice(2);
}

export type Choice<T> = { kind: 'chosen'; identity: T } | { kind: 'refused'; why: string };

/** Exact names first, then wildcards, then the default (the identity without a name). */
export function chooseIdentity<T extends { name?: string }>(
  identities: readonly T[],
  serverName: string | undefined,
  strict: boolean,
): Choice<T> {
  if (serverName !== undefined && serverName !== '') {
    const exact = identities.find((i) => i.name !== undefined && !i.name.startsWith('*.') && nameMatches(i.name, serverName));
    const wild = exact ?? identities.find((i) => i.name?.startsWith('*.') === true && nameMatches(i.name, serverName));
    if (wild !== undefined) return { kind: 'chosen', identity: wild };
    if (strict) return { kind: 'refused', why: `client asked for unknown server name ${JSON.stringify(serverName)}` };
  }
  const fallback = identities.find((i) => i.name === undefined);
  if (fallback !== undefined) return { kind: 'chosen', identity: fallback };
  if (serverName === undefined || serverName === '') {
    return { kind: 'refused', why: 'client sent no server name and there is no default CERTFILE' };
  }
  return { kind: 'refused', why: `client asked for unknown server name ${JSON.stringify(serverName)} and there is no default CERTFILE` };
}

const RSA = '1.2.840.113549.1.1.1';
const RSA_PSS = '1.2.840.113549.1.1.10';
const EC = '1.2.840.10045.2.1';
const ED25519 = '1.3.101.112';
const ED448 = '1.3.101.113';
const CURVE_SCHEME: Record<string, number> = {
  '1.2.840.10045.3.1.7': 0x0403, // P-256
  '1.3.132.0.34': 0x0503, // P-384
  '1.3.132.0.35': 0x0603, // P-521
};
const RSA_SCHEMES = [0x0401, 0x0501, 0x0601, 0x0804, 0x0805, 0x0806, 0x0201];
const ECDSA_SCHEMES = [0x0403, 0x0503, 0x0603, 0x0203];
/** TLS 1.2 suites authenticated by ECDSA (GCM, ChaCha20, CBC). */
const ECDSA_SUITES = [0xc02b, 0xc02c, 0xcca9, 0xc023, 0xc024, 0xc009, 0xc00a, 0xc0ac, 0xc0ad];
const TLS13 = 0x0304;

/** Whether a client that sent this hello can be served with this key, as far as the hello tells. */
export function clientSupports(key: PublicKeyInfo, hello: HelloInfo, tls13Allowed: boolean): boolean {
  const tls13 = tls13Allowed && hello.versions?.includes(TLS13) === true;
  const sigs = hello.sigAlgs;
  switch (key.algorithm) {
    case RSA:
      return sigs === undefined || sigs.some((s) => RSA_SCHEMES.includes(s));
    case RSA_PSS:
      return sigs !== undefined && sigs.some((s) => s >= 0x0809 && s <= 0x080b);
    case EC: {
      if (sigs === undefined) return false;
      const scheme = key.curve === undefined ? undefined : CURVE_SCHEME[key.curve];
      // TLS 1.3 binds the curve to the scheme; TLS 1.2 needs an ECDSA suite as well.
      if (tls13) return scheme !== undefined && sigs.includes(scheme);
      return sigs.some((s) => ECDSA_SCHEMES.includes(s)) && hello.cipherSuites.some((c) => ECDSA_SUITES.includes(c));
    }
    case ED25519:
      return sigs?.includes(0x0807) === true;
    case ED448:
      return sigs?.includes(0x0808) === true;
    default:
      return true;
  }
}

/** The first pair, in the operator's order, that the client can use; the first when none or unknown. */
export function choosePair<T>(pairs: readonly T[], key: (p: T) => PublicKeyInfo, hello: HelloInfo | undefined, tls13Allowed: boolean): T {
  if (hello !== undefined) {
    const fit = pairs.find((p) => clientSupports(key(p), hello, tls13Allowed));
    if (fit !== undefined) return fit;
  }
  return pairs[0]!;
}
