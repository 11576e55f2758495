// The server side of one TLS connection: pick the server name's context from the client's
// hello, run the handshake (OpenSSL picks among the name's certificates), judge the client
// certificate, and describe the session in variables.
// Shared by the STARTTLS engine and the implicit-TLS mode.
import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import { clientVerdict, type Verdict } from './client-auth';
import type { HelloInfo } from './client-hello';
import type { Credentials, IdentityCredentials, PairCredentials } from './credentials';
import { HandshakeError } from './failure';
import { serverHandshake, type Chooser, type Handshaken } from './handshake';
import type { Logger } from '../log';
import type { Vars } from '../contract/reply';
import { sessionIdOf, sessionVars, type PeerCertificate } from './session-vars';
import { chooseIdentity } from './sni';
import type { TlsConfig } from './config';
import { ServerCache } from './servers';
import { parseCertificate, type CertInfo } from './x509';

export interface Accepted {
  tls: TLSSocket;
  /** The session's variables, as the `Y` reply and the implicit mode's environment carry them. */
  vars(): Vars;
}

export interface Acceptor {
  /** Why no handshake can succeed (OpenSSL refused the policy), found before any client. */
  broken: string | undefined;
  /**
   * Resolves once TLS is up; rejects with a HandshakeError (its log line and bucket). `log`, for
   * this connection's lines, defaults to the acceptor's.
   */
  accept(client: Duplex, timeoutMs: number, log?: Logger): Promise<Accepted>;
}

export function createAcceptor(policy: TlsConfig, creds: Credentials, defaultLog: Logger, interfaceVersion: string): Acceptor {
  const servers = new ServerCache(creds, policy);
  const choose: Chooser<IdentityCredentials> = (hello: HelloInfo | undefined) => {
    const c = chooseIdentity(creds.identities, hello?.serverName, policy.strictSni);
    if (c.kind === 'refused') return { refused: c.why };
    return { server: servers.get(c.identity), chosen: c.identity };
  };
  // Ready before the client's hello: OpenSSL loaded, the likely context built.
  let broken: string | undefined;
  try {
    servers.get(creds.identities.find((i) => i.name === undefined) ?? creds.identities[0]!);
  } catch (err) {
    broken = `TLS policy rejected by OpenSSL: ${(err as Error).message}`;
  }

  async function accept(client: Duplex, timeoutMs: number, log = defaultLog): Promise<Accepted> {
    if (broken !== undefined) {
      client.destroy();
      throw new HandshakeError(`handshake not started: ${broken}`, 'other');
    }
    const done = await serverHandshake(client, { choose, timeoutMs });
    const { tls } = done;
    let peer: PeerCertificate | undefined;
    let verdict: Verdict | undefined;
    if (policy.clientCert !== 'none') {
      const chain = chainOf(tls);
      try {
        peer = peerCertificate(chain);
      } catch (err) {
        log.warn(`cannot read the client certificate: ${(err as Error).message}`);
      }
      verdict = clientVerdict(policy.clientCert, chain.length > 0, errorCode(tls), chain.length, policy.verifyDepth);
      if (!verdict.accept) {
        // close_notify, then the socket: not one byte of application data either way.
        tls.end();
        setTimeout(() => tls.destroy(), 1000).unref();
        throw new HandshakeError(`client certificate refused: ${verdict.verify === 'NONE' ? 'the client sent none' : verdict.verify.slice(7)}`, 'certificate required');
      }
    }
    const sni = serverName(tls, done.hello);
    const subject = peer?.info.subject.find((n) => n.type === '2.5.4.3')?.value;
    log.info(
      `TLS started: ${tls.getProtocol()} ${tls.getCipher().name}${sni !== undefined ? ` sni=${sni}` : ''}` +
        `${typeof tls.alpnProtocol === 'string' ? ` alpn=${tls.alpnProtocol}` : ''}` +
        `${tls.isSessionReused() ? ' resumed' : ''}` +
        `${verdict !== undefined ? ` client-cert=${verdict.verify}${subject !== undefined ? ` cn=${JSON.stringify(subject)}` : ''}` : ''}`,
    );
    return { tls, vars: () => collectVars(tls, done, peer, verdict) };
  }

  function collectVars(tls: TLSSocket, done: Handshaken<IdentityCredentials>, peer: PeerCertificate | undefined, verdict: Verdict | undefined): Vars {
    const protocol = tls.getProtocol() ?? 'unknown';
    const sni = serverName(tls, done.hello);
    const server = certificateSent(tls, done.chosen.pairs);
    return sessionVars({
      protocol,
      cipher: tls.getCipher().name,
      sessionId: sessionIdOf(tls),
      resumed: tls.isSessionReused(),
      // OpenSSL does not apply the extension to TLS 1.3, where renegotiation does not exist.
      secureRenegotiation: protocol !== 'TLSv1.3' && done.hello?.renegotiationInfo === true,
      ...(sni !== undefined ? { sni } : {}),
      ...(server !== undefined ? { server } : {}),
      interfaceVersion,
      libraryVersion: `OpenSSL/${process.versions.openssl}`,
      ...(typeof tls.alpnProtocol === 'string' ? { alpn: tls.alpnProtocol } : {}),
      ...(verdict !== undefined ? { clientVerify: verdict.verify } : {}),
      ...(peer !== undefined ? { client: peer } : {}),
      pem: policy.certPem,
      s6: policy.s6Vars,
      nowMs: Date.now(),
    });
  }

  return { broken, accept };
}

/**
 * The server name the client asked for. OpenSSL's answer first; after a TLS 1.2 resumption
 * OpenSSL 3.0 (Node 20) has none, since Node does not acknowledge the name into the session:
 * then the name from this handshake's hello, which chose the same server name's context
 * (a session resumes only in the context it was made in).
 */
function serverName(tls: TLSSocket, hello: HelloInfo | undefined): string | undefined {
  const s: unknown = tls.servername;
  if (typeof s === 'string' && s !== '') return s;
  return hello?.serverName !== undefined && hello.serverName !== '' ? hello.serverName : undefined;
}

/**
 * The certificate OpenSSL sent, as the TLS socket reports it. A resumed handshake sends
 * none, and OpenSSL then reports the context's last one: only a name with a single
 * certificate says which one the session was made with. A name with a single certificate
 * sent that one: Node's report of it (every field parsed and three fingerprints, some
 * 50 to 300 µs of a worker's time per session) is asked for only among several.
 */
function certificateSent(tls: TLSSocket, pairs: readonly PairCredentials[]): CertInfo | undefined {
  if (pairs.length === 1) return pairs[0]!.leaf;
  if (tls.isSessionReused()) return undefined;
  const raw = (tls.getCertificate() as { raw?: Buffer } | null)?.raw;
  if (raw === undefined) return undefined;
  return pairs.find((p) => p.leafDer.equals(raw))?.leaf ?? parseCertificate(raw);
}

/** Node's verdict; tls.Server sets it, the types do not know it is there before 'secure'. */
function errorCode(tls: TLSSocket): string | undefined {
  const err: unknown = tls.authorizationError;
  return tls.authorized ? undefined : typeof err === 'string' ? err : err instanceof Error ? err.message : undefined;
}

/** The issuer links of Node's detailed certificate, leaf first, each once. */
export function chainOf(tls: TLSSocket): DetailedPeerCertificate[] {
  const out: DetailedPeerCertificate[] = [];
  let c = tls.getPeerCertificate(true);
  while (c !== undefined && c.raw !== undefined && !out.some((x) => x.raw.equals(c.raw))) {
    out.push(c);
    c = c.issuerCertificate;
  }
  return out;
}

export function peerCertificate(chain: DetailedPeerCertificate[]): PeerCertificate | undefined {
  const leaf = chain[0];
  if (leaf === undefined) return undefined;
  return {
    info: parseCertificate(leaf.raw),
    der: leaf.raw,
    chain: chain.slice(1).map((c) => c.raw),
    sha256: createHash('sha256').update(leaf.raw).digest('hex'),
  };
}
