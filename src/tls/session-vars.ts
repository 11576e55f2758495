// The variables of the `Y` reply, in mod_ssl's names and formats. Pure.
import { bytes, children, expect, readTlv, TAG } from './der';
import { DN_COMPONENTS, oneline, rfc2253, type CertInfo, type NameEntry } from './x509';
import type { Vars } from '../contract/reply';
import type { TLSSocket } from 'node:tls';

export interface SessionInfo {
  /** As OpenSSL names it: `TLSv1.3`. */
  protocol: string;
  /** OpenSSL's cipher name: `TLS_AES_256_GCM_SHA384`, `ECDHE-RSA-AES128-GCM-SHA256`. */
  cipher: string;
  /** Hex, upper case; empty when the session has none. */
  sessionId: string;
  resumed: boolean;
  /** Known on the server side only: the client's hello shows it. */
  secureRenegotiation?: boolean;
  sni?: string;
  server?: CertInfo;
  interfaceVersion: string;
  libraryVersion: string;
  alpn?: string;
  /** SSL_SERVER_VERIFY: the client side's verdict on the server's certificate. */
  serverVerify?: string;
  /** SSL_CLIENT_VERIFY, when client certificates are asked for. */
  clientVerify?: string;
  client?: PeerCertificate;
  /** Add SSL_CLIENT_CERT and SSL_CLIENT_CERT_CHAIN_n. */
  pem: boolean;
  /** Add the names s6-ucspitlsd gives. */
  s6: boolean;
  /** For SSL_*_V_REMAIN. */
  nowMs: number;
}

export interface PeerCertificate {
  info: CertInfo;
  der: Buffer;
  /** The rest of the chain, issuer first, leaf excluded. */
  chain: Buffer[];
  /** SHA-256 of der, lower-case hex. */
  sha256: string;
}

export function pem(der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

const DAY_MS = 86_400_000;

/** mod_ssl's V_REMAIN: whole days to the day after notAfter's date, never below 0. */
export function daysRemaining(notAfterMs: number, nowMs: number): number {
  const d = Math.trunc((notAfterMs + DAY_MS - nowMs) / DAY_MS);
  return d > 0 ? d : 0;
}

/** SSL_CIPHER_get_bits: [bits in use, bits of the algorithm]. */
export function cipherBits(cipher: string): [number, number] {
  const name = cipher.toUpperCase();
  if (/(^|[-_])NULL([-_]|$)/.test(name) && !/WITH_/.test(name)) return [0, 0];
  if (/CHACHA20/.test(name)) return [256, 256];
  if (/DES-CBC3|3DES|DES_EDE3/.test(name)) return [112, 168];
  const m = /(?:AES|CAMELLIA|ARIA)[-_]?(128|256)/.exec(name);
  if (m) return [Number(m[1]), Number(m[1])];
  if (/(^|[-_])AES([-_]|$)/.test(name)) return [128, 128];
  if (/SEED|IDEA|RC4/.test(name)) return [128, 128];
  return [0, 0];
}

/** The session's id as SSL_SESSION_ID shows it; empty when there is none to read. */
export function sessionIdOf(tls: Pick<TLSSocket, 'getSession'>): string {
  try {
    const session = tls.getSession();
    return session ? sessionIdFromSession(session) : '';
  } catch {
    return ''; // an unreadable session encoding only costs the variable
  }
}

/** The session id inside OpenSSL's DER encoding of SSL_SESSION (what Node's getSession() returns). */
export function sessionIdFromSession(der: Uint8Array): string {
  const seq = readTlv(der, 0);
  const items = children(der, expect(seq, TAG.SEQUENCE, 'SSL_SESSION'));
  const id = expect(items[3], TAG.OCTET_STRING, 'session id');
  return bytes(der, id).toString('hex').toUpperCase();
}

function dnVars(prefix: string, entries: readonly NameEntry[], out: Array<[string, string]>): void {
  out.push([prefix, rfc2253(entries)]);
  const seen = new Map<string, number>();
  for (const e of entries) {
    const tag = DN_COMPONENTS[e.type];
    if (tag === undefined) continue;
    const n = seen.get(tag) ?? 0;
    seen.set(tag, n + 1);
    out.push([n === 0 ? `${prefix}_${tag}` : `${prefix}_${tag}_${n}`, e.value]);
  }
}

export function certVars(prefix: string, cert: CertInfo, nowMs: number): Array<[string, string]> {
  const out: Array<[string, string]> = [
    [`${prefix}_M_VERSION`, String(cert.version)],
    [`${prefix}_M_SERIAL`, cert.serial],
  ];
  dnVars(`${prefix}_S_DN`, cert.subject, out);
  dnVars(`${prefix}_I_DN`, cert.issuer, out);
  cert.sanEmail.forEach((v, n) => out.push([`${prefix}_SAN_Email_${n}`, v]));
  cert.sanDns.forEach((v, n) => out.push([`${prefix}_SAN_DNS_${n}`, v]));
  out.push(
    [`${prefix}_V_START`, cert.notBefore],
    [`${prefix}_V_END`, cert.notAfter],
    [`${prefix}_V_REMAIN`, String(daysRemaining(cert.notAfterMs, nowMs))],
    [`${prefix}_A_SIG`, cert.sigAlg],
    [`${prefix}_A_KEY`, cert.keyAlg],
  );
  return out;
}

export function sessionVars(s: SessionInfo): Vars {
  const [use, alg] = cipherBits(s.cipher);
  const out: Array<[string, string]> = [
    ['SSL_PROTOCOL', s.protocol],
    ['SSL_CIPHER', s.cipher],
    ['SSL_CIPHER_EXPORT', /(^|[-_])EXP/.test(s.cipher) ? 'true' : 'false'],
    ['SSL_CIPHER_USEKEYSIZE', String(use)],
    ['SSL_CIPHER_ALGKEYSIZE', String(alg)],
  ];
  if (s.sessionId !== '') out.push(['SSL_SESSION_ID', s.sessionId]);
  out.push(
    ['SSL_SESSION_RESUMED', s.resumed ? 'Resumed' : 'Initial'],
    ...(s.secureRenegotiation !== undefined ? [['SSL_SECURE_RENEG', s.secureRenegotiation ? 'true' : 'false'] as [string, string]] : []),
    ['SSL_COMPRESS_METHOD', 'NULL'],
    ['SSL_VERSION_INTERFACE', s.interfaceVersion],
    ['SSL_VERSION_LIBRARY', s.libraryVersion],
  );
  if (s.sni !== undefined && s.sni !== '') out.push(['SSL_TLS_SNI', s.sni]);
  if (s.alpn !== undefined) out.push(['SSL_ALPN', s.alpn]);
  if (s.clientVerify !== undefined) out.push(['SSL_CLIENT_VERIFY', s.clientVerify]);
  if (s.client !== undefined) {
    out.push(...certVars('SSL_CLIENT', s.client.info, s.nowMs));
    if (s.pem) {
      out.push(['SSL_CLIENT_CERT', pem(s.client.der)]);
      s.client.chain.forEach((c, n) => out.push([`SSL_CLIENT_CERT_CHAIN_${n}`, pem(c)]));
    }
  }
  if (s.serverVerify !== undefined) out.push(['SSL_SERVER_VERIFY', s.serverVerify]);
  if (s.server !== undefined) out.push(...certVars('SSL_SERVER', s.server, s.nowMs));
  if (s.s6) {
    if (s.sni !== undefined && s.sni !== '') out.push(['SSL_TLS_SNI_SERVERNAME', s.sni]);
    if (s.client !== undefined) {
      out.push(['SSL_PEER_CERT_HASH', `SHA256:${s.client.sha256}`], ['SSL_PEER_CERT_SUBJECT', oneline(s.client.info.subject)]);
    }
  }
  return out;
}
