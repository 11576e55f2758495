// Implicit TLS (ports 465, 993, 995) for one connection: the handshake first, then the
// app's environment gets the session's variables and its fds 0/1 the decrypted stream.
import { shellAssignments, type ImplicitApp } from '../process/app';
import type { ClientFds } from '../process/client-fds';
import { openClientStream } from '../process/client-stream';
import type { Credentials } from '../tls/credentials';
import type { Engine, EngineHooks } from '../session/control-session';
import type { Logger } from '../log';
import type { Config } from './options';
import { relay, summaryLine, type Relay } from '../session/relay';
import { createAcceptor } from '../tls/accept';

export interface ImplicitInput {
  config: Config;
  creds: Credentials;
  fds: ClientFds;
  app: ImplicitApp;
  log: Logger;
  interfaceVersion: string;
  hooks: EngineHooks;
}

export function startImplicit(e: ImplicitInput): Engine {
  const { app, log } = e;
  const acceptor = createAcceptor(e.config.tls, e.creds, log, e.interfaceVersion);
  if (acceptor.broken !== undefined) log.warn(acceptor.broken);
  app.toApp.on('error', () => {});
  app.fromApp.on('error', () => {});
  app.vars.on('error', () => {});
  let running: Relay | undefined;

  void (async () => {
    let accepted;
    try {
      accepted = await acceptor.accept(openClientStream(e.fds), e.config.handshakeTimeoutMs);
    } catch (err) {
      log.warn((err as Error).message);
      // No variables: the stub exits without running the app.
      app.vars.end();
      app.toApp.destroy();
      app.fromApp.destroy();
      return;
    }
    e.hooks.tlsStarted();
    app.vars.end(shellAssignments(accepted.vars()));
    running = relay(accepted.tls, app.toApp, app.fromApp, {
      outboundDone: () => e.hooks.outboundDone(),
      log: (m) => log.info(m),
      warn: (m) => log.warn(m),
      peer: 'client',
    });
  })();

  return { summary: () => summaryLine(running, 'client'), appExited: () => running?.appExited() };
}
