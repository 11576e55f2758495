// UCSPI-TLS seen from the helper, for either side: wait for the app's command, run the
// handshake, send the reply, close the control socket, relay.
import type { TLSSocket } from 'node:tls';
import type { App } from '../process/app';
import { classifyCommand, describeByte } from './control';
import type { Logger } from '../log';
import type { EngineHooks, SupervisedEngine } from '../process/supervise';
import { relay, summaryLine, type Relay, type RelayCounts } from './relay';
import { encodeReply, type Vars } from '../contract/reply';

export interface Engine extends SupervisedEngine {
  /** Bytes relayed so far; undefined until TLS runs. */
  counts(): RelayCounts | undefined;
}

/** Our ends of the app's control socket and its two channels. */
export type AppChannels = Pick<App, 'ctl' | 'toApp' | 'fromApp'>;

export interface ControlInput {
  app: AppChannels;
  log: Logger;
  hooks: EngineHooks;
  /** 'client' for the server side, 'server' for the client side: how the log names the other end. */
  peer: string;
  /** Resolves once TLS is up; rejects with an Error whose message is the log line. */
  handshake(): Promise<{ tls: TLSSocket; vars(): Vars }>;
}

export function startControl(c: ControlInput): Engine {
  const { app, log } = c;
  let running: Relay | undefined;
  let commanded = false;
  let extraLogged = false;
  // The control socket last: an app that sees its EOF must find both pipes already closed.
  const closeChannels = (): void => {
    app.fromApp.destroy();
    app.toApp.destroy();
    app.ctl.destroy();
  };
  app.ctl.on('error', () => {}); // the app's side went away: same as EOF
  app.toApp.on('error', () => {});
  app.fromApp.on('error', () => {});
  // One command per connection: whatever follows it is read and dropped, with one line.
  app.ctl.on('data', (chunk: Buffer) => {
    let extra = chunk;
    if (!commanded) {
      commanded = true;
      extra = chunk.subarray(1);
      const cmd = classifyCommand(chunk[0]!);
      if (cmd.kind === 'unknown') {
        log.warn(`unknown command ${describeByte(cmd.byte)} on the control socket: TLS not started`);
        closeChannels();
        return;
      }
      log.info(`app asked for TLS (${cmd.withInfo ? 'Y' : 'y'})`);
      void handshake(cmd.withInfo);
    }
    if (extra.length > 0 && !extraLogged) {
      extraLogged = true;
      log.warn(`ignored ${extra.length} byte(s) after the command on the control socket (first ${describeByte(extra[0]!)})`);
    }
  });
  const declined = (): void => {
    if (commanded) return;
    log.info('app closed the control socket: no TLS');
    closeChannels();
  };
  // A socket handed over from another process may have met its EOF (and said so) before this
  // session was set up on it: the server's worker gets the app's channels one by one.
  if (app.ctl.readableEnded) setImmediate(declined);
  else app.ctl.once('end', declined);

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
    // Closed, never only shut for writing: a shutdown would show the app its EOF while the
    // socket still takes a later command, which must get EPIPE rather than silence. The reply
    // is in the app's buffer once written, so closing right after it loses nothing.
    if (withInfo) app.ctl.write(encodeReply(up.vars()), () => app.ctl.destroy());
    else app.ctl.destroy();
    running = relay(up.tls, app.toApp, app.fromApp, {
      outboundDone: () => c.hooks.outboundDone(),
      log: (m) => log.info(m),
      warn: (m) => log.warn(m),
      peer: c.peer,
    });
  }

  return { summary: () => summaryLine(running, c.peer), counts: () => running?.counts(), appExited: () => running?.appExited() };
}
