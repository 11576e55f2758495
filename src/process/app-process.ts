// Start a process on libuv's own process handle, as child_process does underneath. Loading
// child_process (and the net and stream modules it pulls in) and going through its option
// handling costs a few milliseconds before every app's start; this costs a fraction of one.
// The socket pairs made here become net.Sockets only once the app runs. A Node without
// process.binding() gets child_process.
import type { Socket } from 'node:net';
import { commandMissing } from './command-path';

/** libuv's uv_pipe_t, as Node's pipe_wrap binding makes it. */
export interface PipeHandle {
  readonly __pipe: unique symbol;
  close(): void;
}

interface ProcessHandle {
  pid: number;
  onexit: (code: number, signal: string) => void;
  spawn(options: {
    file: string;
    args: string[];
    envPairs: string[];
    stdio: Array<{ type: 'fd'; fd: number } | { type: 'pipe'; handle: PipeHandle }>;
    uid?: number;
    gid?: number;
  }): number;
  close(): void;
}

interface Bindings {
  Process: new () => ProcessHandle;
  Pipe: new (type: number) => PipeHandle;
  SOCKET: number;
}

/**
 * process.binding() is deprecated for documentation only, yet warns under
 * --pending-deprecation: such a warning must not reach fd 2, which may be the client.
 */
function legacyBinding(name: string): Record<string, unknown> {
  const quiet = process.noDeprecation;
  process.noDeprecation = true;
  try {
    // Not in @types/node; the objects are native modules, typed where used.
    return (process as unknown as { binding(name: string): Record<string, unknown> }).binding(name);
  } finally {
    process.noDeprecation = quiet;
  }
}

/** The bindings, or null where this Node does not give them. */
function load(): Bindings | null {
  try {
    const pipe = legacyBinding('pipe_wrap') as { Pipe: Bindings['Pipe']; constants: { SOCKET: number } };
    const proc = legacyBinding('process_wrap') as { Process: Bindings['Process'] };
    const ok = typeof proc.Process === 'function' && typeof pipe.Pipe === 'function' && typeof pipe.constants.SOCKET === 'number';
    return ok ? { Process: proc.Process, Pipe: pipe.Pipe, SOCKET: pipe.constants.SOCKET } : null;
  } catch {
    return null;
  }
}

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
      /** Our end of the child's fd i (a 'pipe'); `readable` false for one we only write to. */
      socket(i: number, readable: boolean): Socket;
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
  const b = load();
  if (b === null) return spawnChildProcess(file, args, o);
  const handle = new b.Process();
  const pipes = new Map<number, PipeHandle>();
  const stdio = o.fds.map((fd, i) => {
    if (fd !== 'pipe') return { type: 'fd' as const, fd };
    const pipe = new b.Pipe(b.SOCKET);
    pipes.set(i, pipe);
    return { type: 'pipe' as const, handle: pipe };
  });
  let ended: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let listener: ((code: number | null, signal: NodeJS.Signals | null) => void) | undefined;
  handle.onexit = (code, signal) => {
    ended = signal !== '' ? { code: null, signal: signal as NodeJS.Signals } : { code, signal: null };
    handle.close();
    listener?.(ended.code, ended.signal);
  };
  const err = handle.spawn({
    file,
    args: [file, ...args],
    envPairs: Object.entries(o.env).map(([k, v]) => `${k}=${v}`),
    stdio,
    ...(o.uid !== undefined ? { uid: o.uid } : {}),
    ...(o.gid !== undefined ? { gid: o.gid } : {}),
  });
  if (err !== 0) {
    handle.close();
    for (const p of pipes.values()) p.close();
    return { ok: false, code: errorName(err) };
  }
  return {
    ok: true,
    process: appProcess(handle.pid, () => ended !== undefined, (l) => (listener = l)),
    socket: (i, readable) => pipeSocket(pipes.get(i)!, readable),
  };
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

function spawnChildProcess(file: string, args: readonly string[], o: SpawnOptions): Spawned {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { spawn } = require('node:child_process') as typeof import('node:child_process');
  let child: import('node:child_process').ChildProcess;
  try {
    child = spawn(file, args, { env: o.env, stdio: [...o.fds], ...(o.uid !== undefined ? { uid: o.uid } : {}), ...(o.gid !== undefined ? { gid: o.gid } : {}) });
  } catch (e) {
    return { ok: false, code: (e as NodeJS.ErrnoException).code ?? 'error' };
  }
  // A command that is missing or not executable is reported by an 'error' event on the next
  // tick; the path search says which it was now.
  child.on('error', () => {});
  if (child.pid === undefined) return { ok: false, code: commandMissing(file, o.env.PATH) ?? 'error' };
  let ended = false;
  const stdio = child.stdio as unknown as Array<Socket | null>;
  return {
    ok: true,
    process: appProcess(
      child.pid,
      () => ended,
      (l) =>
        child.once('exit', (code, signal) => {
          ended = true;
          l(code, signal);
        }),
    ),
    socket: (i) => stdio[i]!,
  };
}

function errorName(err: number): string {
  // util is loaded by Node's own start-up: no cost here.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('node:util') as typeof import('node:util')).getSystemErrorName(err);
}

/** Our end of a socket pair as a net.Socket; `readable` false as child_process makes the child's fd 0. */
function pipeSocket(pipe: PipeHandle, readable: boolean): Socket {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Socket: NetSocket } = require('node:net') as typeof import('node:net');
  // `handle` is the option child_process itself uses to wrap its pipes; @types/node omits it.
  return new NetSocket({ handle: pipe, readable, writable: true } as ConstructorParameters<typeof NetSocket>[0]);
}
