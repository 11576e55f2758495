// The client side of one TLS connection (ucspi-tls-client): handshake on the connection,
// check the server's certificate and name, describe the session in variables.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { checkServerIdentity, connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { reasonText } from './client-auth';
import type { ClientTlsConfig } from './config';
import type { ClientCredentials } from './credentials';
import { defaultGroups } from './groups';
import { describeError } from './handshake';
import type { Logger } from '../log';
import type { Vars } from '../contract/reply';
import { sessionIdOf, sessionVars, type PeerCertificate } from './session-vars';
import { parseCertificate } from './x509';

export interface ConnectInput {
  policy: ClientTlsConfig;
  creds: ClientCredentials;
  serverName?: string;
  verify: boolean;
  timeoutMs: number;
  log: Logger;
  interfaceVersion: string;
}

export interface Connected {
  tls: TLSSocket;
  vars(): Vars;
}

export function clientOptions(c: ConnectInput, socket: Duplex): ConnectionOptions {
  const o: ConnectionOptions = {
    socket,
    minVersion: c.policy.minVersion,
    maxVersion: c.policy.maxVersion,
    ciphers: `${c.policy.ciphers}:${c.policy.cipherSuites}`,
    ecdhCurve: c.policy.groups ?? defaultGroups(),
    // Checked below, so that the log can say what was wrong and --insecure can pass it on.
    rejectUnauthorized: false,
    checkServerIdentity: () => undefined,
  };
  // SNI carries host names only (RFC 6066); an address is still checked against the certificate.
  if (c.serverName !== undefined && isIP(c.serverName) === 0) o.servername = c.serverName;
  if (c.creds.ca !== undefined) o.ca = c.creds.ca;
  if (c.creds.crl !== undefined) o.crl = c.creds.crl;
  if (c.creds.pair !== undefined) {
    o.cert = c.creds.pair.cert;
    o.key = c.creds.pair.key;
  }
  if (c.policy.alpn !== undefined) o.ALPNProtocols = c.policy.alpn;
  return o;
}

/** What is wrong with the server's certificate, or undefined. */
function certificateProblem(tls: TLSSocket, serverName: string | undefined): string | undefined {
  const err: unknown = tls.authorizationError;
  if (!tls.authorized) return typeof err === 'string' ? reasonText(err) : err instanceof Error ? err.message : 'not verified';
  if (serverName === undefined) return undefined;
  const cert = tls.getPeerCertificate();
  if (checkServerIdentity(serverName, cert) === undefined) return undefined;
  const names = cert.subjectaltname ?? (cert.subject?.CN !== undefined ? `CN=${String(cert.subject.CN)}` : 'no name');
  return `the certificate does not name ${serverName} (${names})`;
}

/** Resolves once TLS is up and the server accepted; rejects with an Error whose message is the log line. */
export function clientHandshake(stream: Duplex, c: ConnectInput): Promise<Connected> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const tls = connect(clientOptions(c, stream));
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      tls.destroy();
      reject(new Error(why));
    };
    const timer = c.timeoutMs > 0 ? setTimeout(() => fail(`handshake timed out after ${c.timeoutMs / 1000} s`), c.timeoutMs) : undefined;
    tls.once('error', (e) => fail(`handshake failed: ${describeError(e, 'server')}`));
    tls.once('secureConnect', () => {
      if (settled) return;
      const problem = certificateProblem(tls, c.serverName);
      if (problem !== undefined && c.verify) return fail(`server certificate refused: ${problem}`);
      if (problem !== undefined) c.log.warn(`server certificate not checked (--insecure): ${problem}`);
      settled = true;
      clearTimeout(timer);
      tls.removeAllListeners('error');
      const peerRaw = tls.getPeerCertificate().raw;
      const server = peerRaw !== undefined ? parseCertificate(peerRaw) : undefined;
      c.log.info(
        `TLS started: ${tls.getProtocol()} ${tls.getCipher().name}` +
          `${o(c.serverName, (n) => ` server=${n}`)}${typeof tls.alpnProtocol === 'string' ? ` alpn=${tls.alpnProtocol}` : ''}` +
          `${o(server?.subject.find((n) => n.type === '2.5.4.3')?.value, (cn) => ` cn=${JSON.stringify(cn)}`)}` +
          // The client side learns the group (the server side cannot, in Node); none for TLS 1.2 with DHE.
          `${o((tls.getEphemeralKeyInfo() as { name?: string } | null)?.name, (g) => ` group=${g}`)}`,
      );
      resolve({ tls, vars: () => collectVars(tls, c, server, problem) });
    });
  });
}

function o<T>(v: T | undefined, f: (v: T) => string): string {
  return v === undefined ? '' : f(v);
}

function collectVars(tls: TLSSocket, c: ConnectInput, server: ReturnType<typeof parseCertificate> | undefined, problem: string | undefined): Vars {
  const own: PeerCertificate | undefined =
    c.creds.pair === undefined
      ? undefined
      : {
          info: c.creds.pair.leaf,
          der: c.creds.pair.leafDer,
          chain: [],
          sha256: createHash('sha256').update(c.creds.pair.leafDer).digest('hex'),
        };
  const sni = c.serverName !== undefined && isIP(c.serverName) === 0 ? c.serverName : undefined;
  return sessionVars({
    protocol: tls.getProtocol() ?? 'unknown',
    cipher: tls.getCipher().name,
    sessionId: sessionIdOf(tls),
    resumed: tls.isSessionReused(),
    ...(sni !== undefined ? { sni } : {}),
    ...(server !== undefined ? { server } : {}),
    serverVerify: problem === undefined ? 'SUCCESS' : `FAILED:${problem}`,
    interfaceVersion: c.interfaceVersion,
    libraryVersion: `OpenSSL/${process.versions.openssl}`,
    ...(typeof tls.alpnProtocol === 'string' ? { alpn: tls.alpnProtocol } : {}),
    ...(own !== undefined ? { client: own } : {}),
    pem: false,
    s6: false,
    nowMs: Date.now(),
  });
}
