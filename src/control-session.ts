// UCSPI-TLS seen from the helper, for either side: wait for the app's command, run the
// handshake, send the reply, close the control socket, relay.
import type { TLSSocket } from 'node:tls';
import type { App } from './app';
import { classifyCommand, describeByte } from './control';
import type { Logger } from './log';
import { relay, summaryLine, type RelayCounts } from './relay';
import { encodeReply, type Vars } from './reply';

export interface EngineHooks {
  /** TLS is up: the helper must not exit before outboundDone. */
  tlsStarted(): void;
  outboundDone(): void;
}

export interface Engine {
  /** The closing log line, once TLS has run. */
  summary(): string | undefined;
}

export interface ControlInput {
  app: App;
  log: Logger;
  hooks: EngineHooks;
  /** 'client' for the server side, 'server' for the client side: how the log names the other end. */
  peer: string;
  /** Resolves once TLS is up; rejects with an Error whose message is the log line. */
  handshake(): Promise<{ tls: TLSSocket; vars(): Vars }>;
}

export function startControl(c: ControlInput): Engine {
  const { app, log } = c;
  let counts: (() => RelayCounts) | undefined;
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
    void handshake(cmd.withInfo);
  });
  app.ctl.once('end', () => {
    if (commanded) return;
    log.info('app closed the control socket: no TLS');
    closeChannels();
  });

  async function handshake(withInfo: boolean): Promise<void> {
    let up;
    try {
      up = await c.handshake();
    } catch (err) {
      log.warn((err as Error).message);
      closeChannels();
      return;
    }
    c.hooks.tlsStarted();
    if (withInfo) app.ctl.end(encodeReply(up.vars()));
    else app.ctl.end();
    counts = relay(up.tls, app.toApp, app.fromApp, {
      outboundDone: () => c.hooks.outboundDone(),
      log: (m) => log.info(m),
      peer: c.peer,
    });
  }

  return { summary: () => summaryLine(counts, c.peer) };
}
