// The TLS side of one connection: wait for the app's command, run the handshake, send the
// reply, close the control socket, relay. Loaded after the app is running, so loading
// OpenSSL and building the context happen while the app talks plaintext.
import { createHash } from 'node:crypto';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import type { App } from './app';
import { clientVerdict, type Verdict } from './client-auth';
import type { ClientFds } from './client-fds';
import type { HelloInfo } from './client-hello';
import { openClientStream } from './client-stream';
import { classifyCommand, describeByte } from './control';
import type { Credentials, IdentityCredentials, PairCredentials } from './credentials';
import { serverHandshake, type Chooser, type Handshaken } from './handshake';
import type { Logger } from './log';
import type { Config } from './options';
import { relay } from './relay';
import { encodeReply } from './reply';
import { sessionIdFromSession, sessionVars, type PeerCertificate } from './session-vars';
import { chooseIdentity, choosePair } from './sni';
import { ServerCache } from './tls-servers';
import { parseCertificate } from './x509';

interface Served {
  identity: IdentityCredentials;
  pair: PairCredentials;
}

export interface EngineHooks {
  /** TLS is up: the helper must not exit before outboundDone. */
  tlsStarted(): void;
  outboundDone(): void;
}

export interface EngineInput {
  config: Config;
  creds: Credentials;
  fds: ClientFds;
  app: App;
  log: Logger;
  interfaceVersion: string;
  hooks: EngineHooks;
}

export interface Engine {
  /** The closing log line, once TLS has run. */
  summary(): string | undefined;
}

export function startEngine(e: EngineInput): Engine {
  const { app, log } = e;
  const policy = e.config.tls;
  const servers = new ServerCache(e.creds, policy);
  const tls13Allowed = policy.maxVersion === 'TLSv1.3';
  const choose: Chooser<Served> = (hello: HelloInfo | undefined) => {
    const c = chooseIdentity(e.creds.identities, hello?.serverName, policy.strictSni);
    if (c.kind === 'refused') return { refused: c.why };
    const pair = choosePair(c.identity.pairs, (p) => p.leaf.publicKey, hello, tls13Allowed);
    return { server: servers.get(pair, c.identity.name), chosen: { identity: c.identity, pair } };
  };
  // Ready before the client's hello: OpenSSL loaded, the likely context built.
  let broken: string | undefined;
  try {
    const first = e.creds.identities.find((i) => i.name === undefined) ?? e.creds.identities[0]!;
    servers.get(first.pairs[0]!, first.name);
  } catch (err) {
    broken = `TLS policy rejected by OpenSSL: ${(err as Error).message}`;
    log.warn(broken);
  }

  let counts: (() => { toApp: number; toClient: number }) | undefined;
  let commanded = false;
  // The control socket last: an app that sees its EOF must find both pipes already closed.
  const closeChannels = (): void => {
    app.fromApp.destroy();
    app.toApp.destroy();
    app.ctl.destroy();
  };
  app.ctl.on('error', () => {}); // the app's side went away: same as EOF
  app.toApp.on('error', () => {});
  app.fromApp.on('error', () => {});
  app.ctl.once('data', (chunk: Buffer) => {
    commanded = true;
    app.ctl.pause();
    const cmd = classifyCommand(chunk[0]!);
    if (cmd.kind === 'unknown') {
      log.warn(`unknown command ${describeByte(cmd.byte)} on the control socket: TLS not started`);
      closeChannels();
      return;
    }
    log.info(`app asked for TLS (${cmd.withInfo ? 'Y' : 'y'})`);
    if (broken !== undefined) {
      log.warn(`handshake not started: ${broken}`);
      closeChannels();
      return;
    }
    void handshake(cmd.withInfo);
  });
  app.ctl.once('end', () => {
    if (commanded) return;
    log.info('app closed the control socket: no TLS');
    closeChannels();
  });

  async function handshake(withInfo: boolean): Promise<void> {
    let done: Handshaken<Served>;
    try {
      done = await serverHandshake(openClientStream(e.fds), { choose, timeoutMs: e.config.handshakeTimeoutMs });
    } catch (err) {
      log.warn((err as Error).message);
      closeChannels();
      return;
    }
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
        log.warn(`client certificate refused: ${verdict.verify === 'NONE' ? 'the client sent none' : verdict.verify.slice(7)}`);
        // close_notify, then the socket: not one byte of application data either way.
        tls.end();
        setTimeout(() => tls.destroy(), 1000).unref();
        closeChannels();
        return;
      }
    }
    e.hooks.tlsStarted();
    const sni = tls.servername;
    const subject = peer?.info.subject.find((n) => n.type === '2.5.4.3')?.value;
    log.info(
      `TLS started: ${tls.getProtocol()} ${tls.getCipher().name}${typeof sni === 'string' ? ` sni=${sni}` : ''}` +
        `${typeof tls.alpnProtocol === 'string' ? ` alpn=${tls.alpnProtocol}` : ''}` +
        `${tls.isSessionReused() ? ' resumed' : ''}` +
        `${verdict !== undefined ? ` client-cert=${verdict.verify}${subject !== undefined ? ` cn=${JSON.stringify(subject)}` : ''}` : ''}`,
    );
    if (withInfo) app.ctl.end(encodeReply(collectVars(tls, done, peer, verdict)));
    else app.ctl.end();
    counts = relay(tls, app.toApp, app.fromApp, {
      outboundDone: () => e.hooks.outboundDone(),
      log: (m) => log.info(m),
    });
  }

  return {
    summary: () => {
      const c = counts?.();
      return c && `TLS ended: ${c.toClient} bytes to client, ${c.toApp} bytes to app`;
    },
  };

  function collectVars(tls: TLSSocket, done: Handshaken<Served>, peer: PeerCertificate | undefined, verdict: Verdict | undefined) {
    const protocol = tls.getProtocol() ?? 'unknown';
    const session = tls.getSession();
    let sessionId = '';
    try {
      if (session) sessionId = sessionIdFromSession(session);
    } catch {
      // an unreadable session encoding only costs the variable
    }
    const sni = tls.servername;
    return sessionVars({
      protocol,
      cipher: tls.getCipher().name,
      sessionId,
      resumed: tls.isSessionReused(),
      // OpenSSL does not apply the extension to TLS 1.3, where renegotiation does not exist.
      secureRenegotiation: protocol !== 'TLSv1.3' && done.hello?.renegotiationInfo === true,
      ...(typeof sni === 'string' ? { sni } : {}),
      server: done.chosen.pair.leaf,
      interfaceVersion: e.interfaceVersion,
      libraryVersion: `OpenSSL/${process.versions.openssl}`,
      ...(typeof tls.alpnProtocol === 'string' ? { alpn: tls.alpnProtocol } : {}),
      ...(verdict !== undefined ? { clientVerify: verdict.verify } : {}),
      ...(peer !== undefined ? { client: peer } : {}),
      pem: policy.certPem,
      s6: policy.s6Vars,
      nowMs: Date.now(),
    });
  }
}

/** Node's verdict; tls.Server sets it, the types do not know it is there before 'secure'. */
function errorCode(tls: TLSSocket): string | undefined {
  const err: unknown = tls.authorizationError;
  return tls.authorized ? undefined : typeof err === 'string' ? err : err instanceof Error ? err.message : undefined;
}

/** The issuer links of Node's detailed certificate, leaf first, each once. */
function chainOf(tls: TLSSocket): DetailedPeerCertificate[] {
  const out: DetailedPeerCertificate[] = [];
  let c = tls.getPeerCertificate(true);
  while (c !== undefined && c.raw !== undefined && !out.some((x) => x.raw.equals(c.raw))) {
    out.push(c);
    c = c.issuerCertificate;
  }
  return out;
}

function peerCertificate(chain: DetailedPeerCertificate[]): PeerCertificate | undefined {
  const leaf = chain[0];
  if (leaf === undefined) return undefined;
  return {
    info: parseCertificate(leaf.raw),
    der: leaf.raw,
    chain: chain.slice(1).map((c) => c.raw),
    sha256: createHash('sha256').update(leaf.raw).digest('hex'),
  };
}
