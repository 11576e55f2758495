// libuv's process handle and socket pairs, as child_process uses them underneath, to start the
// helper's app without loading child_process: that module brings net, stream and dgram with
// it (3 ms on Node 26 before the app could start) and makes the process that forks larger.
// Paid for by the banner: the helper's start to the app's first byte, bench/RESULTS.md
// ("The app started on libuv's process handle").
//
// A call in a shape the binding does not take is a failed C++ assertion, which ends the
// process and no try/catch sees. So only the two shapes seen in released Nodes are used, on
// the majors they were seen in: an options object (20 and 22) and positional arguments with
// the binding's flag constants (24 and 26). Any other Node, or one without process.binding(),
// gets undefined and the caller uses child_process. test/internals.test.ts fails on a
// supported Node that does not take this path.
import type { Socket } from 'node:net';

interface PipeHandle {
  close(): void;
}

type Stdio = { type: 'fd'; fd: number } | { type: 'pipe'; handle: PipeHandle };

interface ProcessHandle {
  pid: number;
  onexit: (code: number, signal: string) => void;
  spawn(...args: unknown[]): number;
  close(): void;
}

interface Bindings {
  Process: new () => ProcessHandle;
  Pipe: new (type: number) => PipeHandle;
  SOCKET: number;
  shape: Shape;
}

export type Shape = 'options' | 'positional';

/**
 * process.binding() is deprecated for documentation only, yet warns under
 * --pending-deprecation: such a warning must not reach fd 2, which may be the client.
 */
function legacyBinding(name: string): Record<string, unknown> | undefined {
  const binding = (process as unknown as { binding?: (name: string) => Record<string, unknown> }).binding;
  if (typeof binding !== 'function') return undefined;
  const quiet = process.noDeprecation;
  process.noDeprecation = true;
  try {
    return binding.call(process, name);
  } finally {
    process.noDeprecation = quiet;
  }
}

/** The shape of the spawn call this Node takes, from its major and the binding's constants; undefined when unknown. Pure. */
export function spawnShape(nodeVersion: string, flagConstants: unknown): Shape | undefined {
  const major = Number(/^v?(\d+)\./.exec(nodeVersion)?.[1]);
  const flags = flagConstants as { kProcessFlagDetached?: unknown } | undefined;
  if ((major === 24 || major === 26) && typeof flags?.kProcessFlagDetached === 'number') return 'positional';
  if ((major === 20 || major === 22) && flags === undefined) return 'options';
  return undefined;
}

let bindings: Bindings | null | undefined;

function load(): Bindings | null {
  if (bindings !== undefined) return bindings;
  bindings = null;
  try {
    const proc = legacyBinding('process_wrap') as { Process?: unknown; constants?: unknown } | undefined;
    const pipe = legacyBinding('pipe_wrap') as { Pipe?: unknown; constants?: { SOCKET?: unknown } } | undefined;
    if (proc === undefined || pipe === undefined) return bindings;
    const shape = spawnShape(process.version, proc.constants);
    if (shape !== undefined && typeof proc.Process === 'function' && typeof pipe.Pipe === 'function' && typeof pipe.constants?.SOCKET === 'number') {
      bindings = { Process: proc.Process as Bindings['Process'], Pipe: pipe.Pipe as Bindings['Pipe'], SOCKET: pipe.constants.SOCKET, shape };
    }
  } catch {
    // no such binding: child_process
  }
  return bindings;
}

/** Feature detection: the shape this Node's process handle is called in here, or undefined (child_process). */
export function processHandleShape(): Shape | undefined {
  return load()?.shape;
}

export interface HandleChild {
  pid: number;
  /** Whether the exit has been seen (the pid may be another process's after). */
  ended(): boolean;
  /** Each listener is called once, with the code, or the signal that ended it. */
  onExit(listener: (code: number | null, signal: NodeJS.Signals | null) => void): void;
  /** Our end of the child's fd i (a 'pipe'), as child_process makes it: fd 0 not readable. */
  socket(i: number): Socket;
}

const int32 = (n: number | undefined): boolean => n === undefined || (Number.isInteger(n) && n >= -0x80000000 && n <= 0x7fffffff);

/**
 * Start `file` (argv[0] is `file`) with `fds` (ours passed on, or 'pipe' for a new socket
 * pair), as child_process would: the child's PATH search, uid and gid alike. An errno name when
 * it cannot start; undefined when this Node has no known process handle, or the arguments are
 * ones child_process itself refuses (a NUL in a string, an id out of range): the caller then
 * uses child_process, and gets its error.
 */
export function spawnOnHandle(
  file: string,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  fds: ReadonlyArray<number | 'pipe'>,
  ids: { uid?: number; gid?: number },
): HandleChild | { error: string } | undefined {
  const b = load();
  if (b === null) return undefined;
  const argv = [file, ...args];
  const envPairs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  if ([...argv, ...envPairs].some((s) => s.includes('\0')) || !int32(ids.uid) || !int32(ids.gid)) return undefined;
  if (fds.some((fd) => fd !== 'pipe' && !int32(fd))) return undefined;
  const pipes = new Map<number, PipeHandle>();
  const stdio: Stdio[] = fds.map((fd, i) => {
    if (fd !== 'pipe') return { type: 'fd', fd };
    const handle = new b.Pipe(b.SOCKET);
    pipes.set(i, handle);
    return { type: 'pipe', handle };
  });
  const handle = new b.Process();
  let ended: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const listeners: Array<(code: number | null, signal: NodeJS.Signals | null) => void> = [];
  handle.onexit = (code, signal) => {
    const end = signal !== '' ? { code: null, signal: signal as NodeJS.Signals } : { code, signal: null };
    ended = end;
    handle.close();
    for (const l of listeners.splice(0)) l(end.code, end.signal);
  };
  const err =
    b.shape === 'positional'
      ? handle.spawn(file, argv, undefined, envPairs, stdio, 0, ids.uid, ids.gid)
      : handle.spawn({ file, args: argv, envPairs, stdio, ...(ids.uid !== undefined ? { uid: ids.uid } : {}), ...(ids.gid !== undefined ? { gid: ids.gid } : {}) });
  if (err !== 0) {
    handle.close();
    for (const p of pipes.values()) p.close();
    return { error: errorName(err) };
  }
  return {
    pid: handle.pid,
    ended: () => ended !== undefined,
    onExit: (l) => {
      if (ended === undefined) listeners.push(l);
      else l(ended.code, ended.signal);
    },
    socket: (i) => pipeSocket(pipes.get(i)!, i > 0),
  };
}

function errorName(err: number): string {
  // node:util is loaded by Node's own start-up.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('node:util') as typeof import('node:util')).getSystemErrorName(err);
}

/** Our end of a socket pair as a net.Socket, made as child_process makes it; net loads here, once the app runs. */
function pipeSocket(pipe: PipeHandle, readable: boolean): Socket {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Socket: NetSocket } = require('node:net') as typeof import('node:net');
  // `handle` is the option child_process itself uses to wrap its pipes; @types/node omits it.
  return new NetSocket({ handle: pipe, readable } as ConstructorParameters<typeof NetSocket>[0]);
}
