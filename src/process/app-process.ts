// Start a process through child_process, with the fds it is given and a socket pair for each
// 'pipe', and report its exit once. The public API on purpose: libuv's process handle, taken
// from Node's internal bindings, started the app 2 to 3 ms sooner on Node 20, but Node 24
// changed its arguments and aborts the whole process (a failed C++ assertion, which no
// try/catch sees).
import type { ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { commandMissing } from './command-path';

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
  const stdio = child.stdio as unknown as Array<Socket | null>;
  return {
    ok: true,
    process: {
      pid,
      kill(signal) {
        // Once reaped, the pid may be another process's.
        if (ended) return undefined;
        try {
          process.kill(pid, signal);
          return undefined;
        } catch (e) {
          return (e as NodeJS.ErrnoException).code ?? 'error';
        }
      },
      onExit: (l) =>
        child.once('exit', (code, signal) => {
          ended = true;
          l(code, signal);
        }),
    },
    socket: (i) => stdio[i]!,
  };
}
