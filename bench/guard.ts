// Whatever happens to the bench (an error, a signal, its time limit, a closed stdout), every
// server it started is stopped and its files removed, and nothing is left running.
import { rmSync } from 'node:fs';
import { killNow, stopAll, type Server } from './servers';

export interface Guard {
  /** Stops every server (once), removes the directory. */
  stop(): Promise<void>;
  /** The run ended: no time limit any more. */
  done(): void;
  /** Whether to measure nothing more: the servers are being stopped (a signal), or the time is up. */
  stopping(): boolean;
}

/** After the time limit the run reports what it has; this much later it is stopped regardless. */
const GRACE_SECONDS = 90;

export function guard(name: string, rows: () => readonly Server[], marker: string, dir: string, limitSeconds: number): Guard {
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopping ??= stopAll(rows(), marker).finally(() => rmSync(dir, { recursive: true, force: true })));
  const bail = (why: string, status: number) => (): void => {
    process.stderr.write(`${name}: ${why}; stopping every server\n`);
    void stop().finally(() => process.exit(status));
  };
  process.once('SIGINT', bail('interrupted', 130));
  process.once('SIGTERM', bail('terminated', 143));
  process.once('SIGHUP', bail('hung up', 129));
  // A reader of the table that goes away must not end the run before the servers are stopped.
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);
  const last = (e: unknown): void => {
    process.stderr.write(`${name}: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  };
  process.on('uncaughtException', last);
  process.on('unhandledRejection', last);
  process.on('exit', () => {
    killNow(rows(), marker);
    rmSync(dir, { recursive: true, force: true });
  });
  let late = false;
  const timeUp = setTimeout(() => {
    late = true;
    process.stderr.write(`${name}: over ${limitSeconds} s; reporting what was measured\n`);
  }, limitSeconds * 1000);
  const watchdog = setTimeout(bail(`over ${limitSeconds + GRACE_SECONDS} s`, 1), (limitSeconds + GRACE_SECONDS) * 1000);
  return {
    stop,
    done: () => {
      clearTimeout(timeUp);
      clearTimeout(watchdog);
    },
    stopping: () => late || stopping !== undefined,
  };
}
