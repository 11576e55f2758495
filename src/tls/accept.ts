// The server side of one TLS connection: pick the certificate from the client's hello,
// run the handshake, judge the client certificate, and describe the session in variables.
// Shared by the STARTTLS engine and the implicit-TLS mode.
import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import { clientVerdict, type Verdict } from './client-auth';
import type { HelloInfo } from './client-hello';
import type { Credentials, IdentityCredentials, PairCredentials } from './credentials';
import { serverHandshake, type Chooser, type Handshaken } from './handshake';
import type { Logger } from '../log';
import type { Vars } from '../session/reply';
import { sessionIdOf, sessionVars, type PeerCertificate } from './session-vars';
import { chooseIdentity, choosePair } from './sni';
import type { TlsConfig } from './config';
import { ServerCache } from './servers';
import { parseCertificate } from './x509';

interface Served {
  identity: IdentityCredentials;
  pair: PairCredentials;
}

export interface Accepted {
  tls: TLSSocket;
  /** The session's variables, as the `Y` reply and the implicit mode's environment carry them. */
  vars(): Vars;
}

export interface Acceptor {
  /** Why no handshake can succeed (OpenSSL refused the policy), found before any client. */
  broken: string | undefined;
  /**
   * Resolves once TLS is up; rejects with an Error whose message is the log line. `log`, for
   * this connection's lines, defaults to the acceptor's.
   */
  accept(client: Duplex, timeoutMs: number, log?: Logger): Promise<Accepted>;
}

export function createAcceptor(policy: TlsConfig, creds: Credentials, defaultLog: Logger, interfaceVersion: string): Acceptor {
  const servers = new ServerCache(creds, policy);
  const tls13Allowed = policy.maxVersion === 'TLSv1.3';
  const choose: Chooser<Served> = (hello: HelloInfo | undefined) => {
    const c = chooseIdentity(creds.identities, hello?.serverName, policy.strictSni);
    if (c.kind === 'refused') return { refused: c.why };
    const pair = choosePair(c.identity.pairs, (p) => p.leaf.publicKey, hello, tls13Allowed);
    return { server: servers.get(pair, c.identity.name), chosen: { identity: c.identity, pair } };
  };
  // Ready before the client's hello: OpenSSL loaded, the likely context built.
  let broken: string | undefined;
  try {
    const first = creds.identities.find((i) => i.name === undefined) ?? creds.identities[0]!;
    servers.get(first.pairs[0]!, first.name);
  } catch (err) {
    broken = `TLS policy rejected by OpenSSL: ${(err as Error).message}`;
  }

  async function accept(client: Duplex, timeoutMs: number, log = defaultLog): Promise<Accepted> {
    if (broken !== undefined) {
      client.destroy();
      throw new Error(`handshake not started: ${broken}`);
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
        throw new Error(`client certificate refused: ${verdict.verify === 'NONE' ? 'the client sent none' : verdict.verify.slice(7)}`);
      }
    }
    const sni = tls.servername;
    const subject = peer?.info.subject.find((n) => n.type === '2.5.4.3')?.value;
    log.info(
      `TLS started: ${tls.getProtocol()} ${tls.getCipher().name}${typeof sni === 'string' ? ` sni=${sni}` : ''}` +
        `${typeof tls.alpnProtocol === 'string' ? ` alpn=${tls.alpnProtocol}` : ''}` +
        `${tls.isSessionReused() ? ' resumed' : ''}` +
        `${verdict !== undefined ? ` client-cert=${verdict.verify}${subject !== undefined ? ` cn=${JSON.stringify(subject)}` : ''}` : ''}`,
    );
    return { tls, vars: () => collectVars(tls, done, peer, verdict) };
  }

  function collectVars(tls: TLSSocket, done: Handshaken<Served>, peer: PeerCertificate | undefined, verdict: Verdict | undefined): Vars {
    const protocol = tls.getProtocol() ?? 'unknown';
    const sni = tls.servername;
    return sessionVars({
      protocol,
      cipher: tls.getCipher().name,
      sessionId: sessionIdOf(tls),
      resumed: tls.isSessionReused(),
      // OpenSSL does not apply the extension to TLS 1.3, where renegotiation does not exist.
      secureRenegotiation: protocol !== 'TLSv1.3' && done.hello?.renegotiationInfo === true,
      ...(typeof sni === 'string' ? { sni } : {}),
      server: done.chosen.pair.leaf,
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
