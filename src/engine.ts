// The TLS side of one connection: wait for the app's command, run the handshake, send the
// reply, close the control socket, relay. Loaded after the app is running, so loading
// OpenSSL and building the context happen while the app talks plaintext.
import type { SecureContext, TLSSocket } from 'node:tls';
import type { App } from './app';
import type { ClientFds } from './client-fds';
import { openClientStream } from './client-stream';
import { classifyCommand, describeByte } from './control';
import { firstCertificateDer, type Credentials } from './credentials';
import { serverHandshake, type Handshaken } from './handshake';
import type { Logger } from './log';
import type { Config } from './options';
import { relay } from './relay';
import { encodeReply } from './reply';
import { sessionIdFromSession, sessionVars } from './session-vars';
import { buildContext } from './tls-context';
import { parseCertificate, type CertInfo } from './x509';

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
  let context: SecureContext | string;
  try {
    context = buildContext(e.creds, e.config);
  } catch (err) {
    context = `bad certificate or key: ${(err as Error).message}`;
    log.warn(context);
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
    if (typeof context === 'string') {
      log.warn(`handshake not started: ${context}`);
      closeChannels();
      return;
    }
    void handshake(context, cmd.withInfo);
  });
  app.ctl.once('end', () => {
    if (commanded) return;
    log.info('app closed the control socket: no TLS');
    closeChannels();
  });

  async function handshake(ctx: SecureContext, withInfo: boolean): Promise<void> {
    let done: Handshaken;
    try {
      done = await serverHandshake(openClientStream(e.fds), { context: ctx, timeoutMs: e.config.handshakeTimeoutMs });
    } catch (err) {
      log.warn((err as Error).message);
      closeChannels();
      return;
    }
    const { tls } = done;
    e.hooks.tlsStarted();
    const sni = tls.servername;
    log.info(`TLS started: ${tls.getProtocol()} ${tls.getCipher().name}${typeof sni === 'string' ? ` sni=${sni}` : ''}`);
    if (withInfo) app.ctl.end(encodeReply(collectVars(tls, done)));
    else app.ctl.end();
    counts = relay(tls, app.toApp, app.fromApp, {
      outboundDone: () => e.hooks.outboundDone(),
      log: (m) => log.info(m),
    });
  }

  let serverCert: CertInfo | undefined | null = null;
  return {
    summary: () => {
      const c = counts?.();
      return c && `TLS ended: ${c.toClient} bytes to client, ${c.toApp} bytes to app`;
    },
  };

  function collectVars(tls: TLSSocket, done: Handshaken) {
    if (serverCert === null) {
      const der = firstCertificateDer(e.creds.cert);
      try {
        serverCert = der && parseCertificate(der);
      } catch (err) {
        log.warn(`cannot read the server certificate for the reply: ${(err as Error).message}`);
        serverCert = undefined;
      }
    }
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
      ...(serverCert ? { server: serverCert } : {}),
      interfaceVersion: e.interfaceVersion,
      libraryVersion: `OpenSSL/${process.versions.openssl}`,
    });
  }
}
