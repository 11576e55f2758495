// Implicit TLS (ports 465, 993, 995) for one connection, seen from whoever runs TLS (the
// helper or a server's worker): the handshake first, then the app gets the session's
// variables and its fds 0/1 the decrypted stream. How the app gets them is the caller's:
// the helper's stub reads them on its fd 3; the server's spawner starts the app with them.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { shellAssignments } from '../process/app';
import type { Engine } from './control-session';
import type { EngineHooks } from '../process/supervise';
import type { Logger } from '../log';
import { relay, summaryLine, type Relay } from './relay';
import type { Vars } from '../contract/reply';

/** Our ends of the app's fd 0 (we write) and fd 1 (we read). */
export interface AppStreams {
  toApp: Socket;
  fromApp: Socket;
}

/** Our ends of the stub's fd 0, fd 1 and fd 3 (the variables). */
export interface ImplicitChannels extends AppStreams {
  vars: Socket;
}

export interface AppStart {
  /** TLS is up: give the app its variables; resolves with its streams, or undefined when it will not run. */
  withVars(vars: Vars): Promise<AppStreams | undefined>;
  /** The handshake failed (`why`: the log line): no app runs. True when the caller tells `why` itself. */
  none(why: string): boolean;
}

export interface ImplicitInput {
  app: AppStart;
  log: Logger;
  hooks: EngineHooks;
  /** Resolves once TLS is up; rejects with an Error whose message is the log line. */
  handshake(): Promise<{ tls: TLSSocket; vars(): Vars }>;
}

/** The helper's way: the stub, already running, reads the variables on its fd 3 and execs the app. */
export function stubStart(app: ImplicitChannels): AppStart {
  app.toApp.on('error', () => {});
  app.fromApp.on('error', () => {});
  app.vars.on('error', () => {});
  return {
    withVars: (vars) => {
      app.vars.end(shellAssignments(vars));
      return Promise.resolve({ toApp: app.toApp, fromApp: app.fromApp });
    },
    none: () => {
      // No variables: the stub exits without running the app.
      app.vars.end();
      app.toApp.destroy();
      app.fromApp.destroy();
      return false;
    },
  };
}

export function startImplicitSession(e: ImplicitInput): Engine {
  const { log } = e;
  let running: Relay | undefined;
  let tls: TLSSocket | undefined;
  let exited = false;

  void (async () => {
    let accepted;
    try {
      accepted = await e.handshake();
    } catch (err) {
      const why = (err as Error).message;
      if (!e.app.none(why)) log.warn(why);
      return;
    }
    tls = accepted.tls;
    e.hooks.tlsStarted();
    const streams = await e.app.withVars(accepted.vars());
    if (streams === undefined) {
      // No app after all: nothing will be relayed.
      tls.destroy();
      e.hooks.outboundDone();
      return;
    }
    streams.toApp.on('error', () => {});
    streams.fromApp.on('error', () => {});
    running = relay(accepted.tls, streams.toApp, streams.fromApp, {
      outboundDone: () => e.hooks.outboundDone(),
      log: (m) => log.info(m),
      warn: (m) => log.warn(m),
      peer: 'client',
    });
    if (exited) running.appExited();
  })();

  return {
    summary: () => summaryLine(running, 'client'),
    counts: () => running?.counts(),
    appExited: () => {
      exited = true;
      running?.appExited();
    },
  };
}
