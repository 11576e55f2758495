// Start a process with the fds it is given and a socket pair for each 'pipe', and report its
// exit once: on libuv's process handle where this Node's is known (src/runtime/process-handle.ts,
// the app's banner about 3 ms sooner), through child_process where it is not.
import type { ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { commandMissing } from './command-path';
import { spawnOnHandle } from '../runtime/process-handle';

export interface AppProcess {
  readonly pid: number;
  /** Send a signal; the error code when it could not be sent. After the exit, nothing is sent. */
  kill(signal: NodeJS.Signals): string | undefined;
  /** Called once, when the process has ended: its code, or the signal that ended it. */
  onExit(listener: (code: number | null, signal: NodeJS.Signals | null) => void): void;
}

/** Each fd of the child: one of ours passed on, or 'pipe' for a new socket pair. */
export type ChildFd = number | 'pipe';

export type Spawned =
  | {
      ok: true;
      process: AppProcess;
      /** Our end of the child's fd i (a 'pipe'). */
      socket(i: number): Socket;
    }
  | { ok: false; code: string };

export interface SpawnOptions {
  env: Record<string, string>;
  fds: readonly ChildFd[];
  uid?: number;
  gid?: number;
}

/** Start `file` with `args` (argv[0] is `file`). The 'pipe' fds come back as our ends, by the child's fd. */
export function spawnProcess(file: string, args: readonly string[], o: SpawnOptions): Spawned {
  const h = spawnOnHandle(file, args, o.env, o.fds, { uid: o.uid, gid: o.gid });
  if (h !== undefined) {
    if ('error' in h) return { ok: false, code: h.error };
    return { ok: true, process: appProcess(h.pid, h.ended, h.onExit), socket: h.socket };
  }
  return spawnChildProcess(file, args, o);
}

function spawnChildProcess(file: string, args: readonly string[], o: SpawnOptions): Spawned {
  // Loaded here, after the checks that may end the helper before any app is started.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { spawn } = require('node:child_process') as typeof import('node:child_process');
  let child: ChildProcess;
  try {
    child = spawn(file, args, { env: o.env, stdio: [...o.fds], ...(o.uid !== undefined ? { uid: o.uid } : {}), ...(o.gid !== undefined ? { gid: o.gid } : {}) });
  } catch (e) {
    return { ok: false, code: (e as NodeJS.ErrnoException).code ?? 'error' };
  }
  // A command that is missing or not executable is reported by an 'error' event on the next
  // tick; the path search says which it was now.
  child.on('error', () => {});
  const pid = child.pid;
  if (pid === undefined) return { ok: false, code: commandMissing(file, o.env.PATH) ?? 'error' };
  let ended = false;
  child.once('exit', () => (ended = true));
  const stdio = child.stdio as unknown as Array<Socket | null>;
  return { ok: true, process: appProcess(pid, () => ended, (l) => child.once('exit', l)), socket: (i) => stdio[i]! };
}

function appProcess(pid: number, ended: () => boolean, onExit: AppProcess['onExit']): AppProcess {
  return {
    pid,
    kill(signal) {
      // Once reaped, the pid may be another process's.
      if (ended()) return undefined;
      try {
        process.kill(pid, signal);
        return undefined;
      } catch (e) {
        return (e as NodeJS.ErrnoException).code ?? 'error';
      }
    },
    onExit,
  };
}
