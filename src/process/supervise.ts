// The helper's life around the app's: pass signals on, and exit with the app's status once
// the app has exited and, if TLS ran, every byte it wrote has been delivered.
import { exitStatus, FORWARDED_SIGNALS } from './app';
import type { AppProcess } from './app-process';
import type { Logger } from '../log';

/** What the session tells the helper's life. */
export interface EngineHooks {
  /** TLS is up: the helper must not exit before outboundDone. */
  tlsStarted(): void;
  outboundDone(): void;
}

/** What the helper's life asks of the session. */
export interface SupervisedEngine {
  /** The closing log line, once TLS has run. */
  summary(): string | undefined;
  /** The app has exited (the helper waits for its last bytes to go out). */
  appExited(): void;
}

export interface Supervisor {
  hooks: EngineHooks;
  /** The engine, once it exists: its closing log line, and news of the app's exit. */
  setEngine(engine: SupervisedEngine): void;
  tlsUp(): boolean;
}

export interface SuperviseOptions {
  appName: string;
  log: Logger;
  fatal(message: string, status: number): never;
  /** The log line for the app's end; the default names its code or signal. */
  describeExit?(status: number, tlsUp: boolean): string | undefined;
}

export function supervise(child: AppProcess, o: SuperviseOptions): Supervisor {
  let status: number | undefined;
  let engine: SupervisedEngine | undefined;
  let tlsUp = false;
  let outboundDone = false;
  const maybeExit = (): void => {
    if (status === undefined) return;
    if (tlsUp && !outboundDone) return;
    const line = engine?.summary();
    if (line !== undefined) o.log.info(line);
    process.exit(status);
  };
  child.onExit((code, signal) => {
    status = exitStatus(code, signal);
    o.log.info(o.describeExit?.(status, tlsUp) ?? `app exited ${signal !== null ? `on ${signal}` : `with ${code}`}`);
    maybeExit();
    engine?.appExited();
  });
  for (const sig of FORWARDED_SIGNALS) {
    process.on(sig, () => {
      o.log.info(`${sig} passed to the app`);
      const failed = child.kill(sig);
      // A signal the helper may not send: the app runs as another user than TLS_UID.
      if (failed !== undefined) o.log.warn(`cannot signal the app: ${failed}`);
    });
  }
  return {
    hooks: {
      tlsStarted: () => {
        tlsUp = true;
      },
      outboundDone: () => {
        outboundDone = true;
        maybeExit();
      },
    },
    setEngine: (e) => {
      engine = e;
    },
    tlsUp: () => tlsUp,
  };
}
