// Where the client connection is, and what else shares it.
import { closeSync, fstatSync, readdirSync, readFileSync } from 'node:fs';

export const LISTEN_FD = 3;

export type Source = { kind: 'stdio' } | { kind: 'listen'; fd: number } | { kind: 'error'; message: string };

/** systemd's Accept=yes hands the connection as fd 3 with LISTEN_FDS=1 and LISTEN_PID = our pid. Pure. */
export function clientSource(env: Readonly<Record<string, string | undefined>>, pid: number): Source {
  const fds = env.LISTEN_FDS;
  if (fds === undefined || env.LISTEN_PID !== String(pid)) return { kind: 'stdio' };
  if (fds !== '1') return { kind: 'error', message: `LISTEN_FDS=${fds}: expected exactly one connection fd` };
  return { kind: 'listen', fd: LISTEN_FD };
}

export interface ClientFds {
  readFd: number;
  writeFd: number;
  /** read and write fds are one open socket (or one file description). */
  sameObject: boolean;
  /** fd 2 is the connection too (xinetd): never log there. */
  stderrIsClient: boolean;
}

function identity(fd: number): string | undefined {
  try {
    const s = fstatSync(fd);
    return `${s.dev}:${s.ino}`;
  } catch {
    return undefined;
  }
}

/**
 * Whether two fds are one socket; undefined when either is not a socket. Sockets only: by
 * the time this runs Node has opened its own fds (an epoll, eventfds, a signal pipe) at the
 * lowest free numbers, so a free 6 or 7 would look open; none of Node's own is a socket.
 */
export function sameSocket(a: number, b: number): boolean | undefined {
  const x = socketIdentity(a);
  const y = socketIdentity(b);
  return x === undefined || y === undefined ? undefined : x === y;
}

function socketIdentity(fd: number): string | undefined {
  try {
    const s = fstatSync(fd);
    return s.isSocket() ? `${s.dev}:${s.ino}` : undefined;
  } catch {
    return undefined;
  }
}

export function locateClient(source: Exclude<Source, { kind: 'error' }>): ClientFds | string {
  const readFd = source.kind === 'listen' ? source.fd : 0;
  const writeFd = source.kind === 'listen' ? source.fd : 1;
  const r = identity(readFd);
  const w = identity(writeFd);
  if (r === undefined) return `no client connection on fd ${readFd}`;
  if (w === undefined) return `no client connection on fd ${writeFd}`;
  return { readFd, writeFd, sameObject: r === w, stderrIsClient: identity(2) === r };
}

const O_CLOEXEC = 0o2000000;

/** The octal `flags:` of an fd, from its fdinfo; undefined when the fd is gone. */
function fdFlags(fd: number): number | undefined {
  let info: string;
  try {
    // One call into Node's C++ (open, read, close) for each of Node's twenty fds: before
    // the app starts, cheaper than openSync, readSync and closeSync apart (bench/RESULTS.md).
    info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  } catch {
    return undefined; // the directory's own fd, already gone
  }
  const m = /^flags:\s*([0-7]+)/m.exec(info);
  return m ? parseInt(m[1]!, 8) : undefined;
}

/**
 * Close fds the launcher let us inherit without close-on-exec: the app must see only the
 * fds the contract names. Node's own fds are all close-on-exec.
 */
export function closeInheritedFds(keep: ReadonlySet<number>): void {
  let names: string[];
  try {
    names = readdirSync('/proc/self/fd');
  } catch {
    return;
  }
  for (const name of names) {
    const fd = Number(name);
    if (fd <= 2 || keep.has(fd)) continue;
    const flags = fdFlags(fd);
    if (flags !== undefined && (flags & O_CLOEXEC) === 0) {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    }
  }
}
