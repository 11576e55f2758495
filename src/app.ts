// Start the app with the fds of the contract, and pass its end on.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import type { Socket } from 'node:net';
import type { Ids } from './options';

export interface AppFds {
  stdin: number;
  stdout: number;
  stderr: number;
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
    stdio: [fds.stdin, fds.stdout, fds.stderr, 'pipe', 'pipe', 'pipe'],
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
