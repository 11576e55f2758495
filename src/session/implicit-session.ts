// Implicit TLS (ports 465, 993, 995) for one connection, seen from whoever runs TLS (the
// helper or a server's worker): the handshake first, then the app's stub gets the
// session's variables and its fds 0/1 the decrypted stream.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { shellAssignments } from '../process/app';
import type { Engine } from './control-session';
import type { EngineHooks } from '../process/supervise';
import type { Logger } from '../log';
import { relay, summaryLine, type Relay } from './relay';
import type { Vars } from '../contract/reply';

/** Our ends of the stub's fd 0 (we write), fd 1 (we read) and fd 3 (the variables). */
export interface ImplicitChannels {
  toApp: Socket;
  fromApp: Socket;
  vars: Socket;
}

export interface ImplicitInput {
  app: ImplicitChannels;
  log: Logger;
  hooks: EngineHooks;
  /** Resolves once TLS is up; rejects with an Error whose message is the log line. */
  handshake(): Promise<{ tls: TLSSocket; vars(): Vars }>;
}

export function startImplicitSession(e: ImplicitInput): Engine {
  const { app, log } = e;
  app.toApp.on('error', () => {});
  app.fromApp.on('error', () => {});
  app.vars.on('error', () => {});
  let running: Relay | undefined;

  void (async () => {
    let accepted;
    try {
      accepted = await e.handshake();
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

  return { summary: () => summaryLine(running, 'client'), counts: () => running?.counts(), appExited: () => running?.appExited() };
}
