// Start the app with the fds of the contract, and pass its end on.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import type { Socket } from 'node:net';
import type { Ids } from './options';

export interface AppFds {
  stdin: number;
  stdout: number;
  stderr: number;
  /** Passed on as fds 6, 7, ... (tcpclient's connection, for the client side). */
  extra?: number[];
}

export interface App {
  child: ChildProcess;
  /** Our ends of the control socket, the read pipe (we write) and the write pipe (we read). */
  ctl: Socket;
  toApp: Socket;
  fromApp: Socket;
}

export function spawnApp(argv: readonly string[], env: Record<string, string>, fds: AppFds, ids?: Ids): App {
  const [file, ...args] = argv as [string, ...string[]];
  // Index 3, 4, 5 become SSLCTLFD, SSLREADFD, SSLWRITEFD: AF_UNIX stream sockets, blocking on the app's side.
  const child = spawn(file, args, {
    env,
    stdio: [fds.stdin, fds.stdout, fds.stderr, 'pipe', 'pipe', 'pipe', ...(fds.extra ?? [])],
    // libuv also clears the supplementary groups when it changes ids.
    ...(ids !== undefined ? { uid: ids.uid, gid: ids.gid } : {}),
  });
  const s = child.stdio as unknown as Array<Socket | null>;
  return { child, ctl: s[3]!, toApp: s[4]!, fromApp: s[5]! };
}

/** The helper's exit status for the app's end: its code, or 128+N for signal N. Pure. */
export function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  if (signal !== null) return 128 + (constants.signals[signal] ?? 0);
  return 111;
}

/** Status when the app could not be started at all, as a shell would give. Pure. */
export function spawnFailureStatus(code: string | undefined): number {
  return code === 'ENOENT' ? 127 : 126;
}

export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

/**
 * The implicit-TLS mode starts the app before the handshake, so that it is spawned as its
 * own user while the helper can still change users, yet it must get the session's
 * variables in its environment. So a shell waits on fd 3 for them and then becomes the
 * app; empty input means the handshake failed, and the app never runs.
 */
/** Status of the implicit mode when the handshake fails: the app never ran. */
export const EXIT_NO_TLS = 98;

export const IMPLICIT_STUB = `v=$(cat <&3) || exit 111; [ -n "$v" ] || exit ${EXIT_NO_TLS}; eval "$v"; exec 3<&-; exec "$@"`;

export interface ImplicitApp {
  child: ChildProcess;
  /** The app's fd 0 (we write), its fd 1 (we read), and the stub's fd 3 for the variables. */
  toApp: Socket;
  fromApp: Socket;
  vars: Socket;
}

export function spawnImplicitApp(argv: readonly string[], env: Record<string, string>, stderr: number, ids?: Ids): ImplicitApp {
  const child = spawn('/bin/sh', ['-c', IMPLICIT_STUB, 'sh', ...argv], {
    env,
    stdio: ['pipe', 'pipe', stderr, 'pipe'],
    ...(ids !== undefined ? { uid: ids.uid, gid: ids.gid } : {}),
  });
  const s = child.stdio as unknown as Array<Socket | null>;
  return { child, toApp: s[0]!, fromApp: s[1]!, vars: s[3]! };
}

/** `export NAME='value'` lines for the stub: single quotes take every byte but NUL literally. Pure. */
export function shellAssignments(vars: ReadonlyArray<readonly [string, string]>): string {
  return vars
    .filter(([name]) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
    .map(([name, value]) => `export ${name}='${value.replace(/\0/g, '').replace(/'/g, `'\\''`)}'\n`)
    .join('');
}
