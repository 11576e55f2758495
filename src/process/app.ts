// Start the app with the fds of the contract, and pass its end on.
import type { Socket } from 'node:net';
import { spawnProcess, type AppProcess, type ChildFd } from './app-process';
import type { Ids } from './ids';
import { EXIT_CANNOT_RUN, EXIT_CONFIG, EXIT_NO_TLS, EXIT_NOT_FOUND } from '../contract/exit-codes';

export interface AppFds {
  stdin: number;
  stdout: number;
  stderr: number;
  /** Passed on as fds 6, 7, ... (tcpclient's connection, for the client side). */
  extra?: number[];
}

export interface App {
  child: AppProcess;
  /** Our ends of the control socket, the read pipe (we write) and the write pipe (we read). */
  ctl: Socket;
  toApp: Socket;
  fromApp: Socket;
}

/** Why the app could not start: the errno name, e.g. ENOENT. */
export class SpawnError extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

function start(file: string, args: readonly string[], env: Record<string, string>, fds: readonly ChildFd[], ids?: Ids): { child: AppProcess; socket(fd: number): Socket } {
  // libuv also clears the supplementary groups when it changes ids.
  const r = spawnProcess(file, args, { env, fds, ...(ids !== undefined ? { uid: ids.uid, gid: ids.gid } : {}) });
  if (!r.ok) throw new SpawnError(r.code);
  return { child: r.process, socket: r.socket };
}

/** Start the app; a SpawnError when it cannot be started. */
export function spawnApp(argv: readonly string[], env: Record<string, string>, fds: AppFds, ids?: Ids): App {
  const [file, ...args] = argv as [string, ...string[]];
  // Index 3, 4, 5 become SSLCTLFD, SSLREADFD, SSLWRITEFD: AF_UNIX stream sockets, blocking on the app's side.
  const { child, socket } = start(file, args, env, [fds.stdin, fds.stdout, fds.stderr, 'pipe', 'pipe', 'pipe', ...(fds.extra ?? [])], ids);
  return { child, ctl: socket(3), toApp: socket(4), fromApp: socket(5) };
}

/** The helper's exit status for the app's end: its code, or 128+N for signal N. Pure. */
export function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  // node:os only here, at the end: loading it is a quarter of a millisecond before the app's start.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  if (signal !== null) return 128 + ((require('node:os') as typeof import('node:os')).constants.signals[signal] ?? 0);
  return 111;
}

/** Status when the app could not be started at all, as a shell would give. Pure. */
export function spawnFailureStatus(code: string | undefined): number {
  return code === 'ENOENT' ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN;
}

export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

/**
 * The implicit-TLS mode starts the app before the handshake, so that it is spawned as its
 * own user while the helper can still change users, yet it must get the session's
 * variables in its environment. So a shell waits on fd 3 for them and then becomes the
 * app; empty input means the handshake failed, and the app never runs.
 */
export const IMPLICIT_STUB = `v=$(cat <&3) || exit ${EXIT_CONFIG}; [ -n "$v" ] || exit ${EXIT_NO_TLS}; eval "$v"; exec 3<&-; exec "$@"`;

export interface ImplicitApp {
  child: AppProcess;
  /** The app's fd 0 (we write), its fd 1 (we read), and the stub's fd 3 for the variables. */
  toApp: Socket;
  fromApp: Socket;
  vars: Socket;
}

export function spawnImplicitApp(argv: readonly string[], env: Record<string, string>, stderr: number, ids?: Ids): ImplicitApp {
  const { child, socket } = start('/bin/sh', ['-c', IMPLICIT_STUB, 'sh', ...argv], env, ['pipe', 'pipe', stderr, 'pipe'], ids);
  return { child, toApp: socket(0), fromApp: socket(1), vars: socket(3) };
}

/** `export NAME='value'` lines for the stub: single quotes take every byte but NUL literally. Pure. */
export function shellAssignments(vars: ReadonlyArray<readonly [string, string]>): string {
  return vars
    .filter(([name]) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
    .map(([name, value]) => `export ${name}='${value.replace(/\0/g, '').replace(/'/g, `'\\''`)}'\n`)
    .join('');
}
