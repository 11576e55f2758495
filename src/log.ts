// One line per event on the log fd, every line `program: pid N: message`. Synchronous
// writes: process.stderr would wrap fd 2 in a stream and may set O_NONBLOCK on it, which
// xinetd shares with the client socket.
import { writeSync } from 'node:fs';
import type { Verbosity } from './contract/verbosity';

export interface Logger {
  /** Failures and refusals: shown unless -q. */
  warn(message: string): void;
  /** Progress: shown with -v. */
  info(message: string): void;
}

/** The form of every line, fatal or not; `pid` names the process or connection, null for none. */
export function logLine(program: string, message: string, pid: number | null = process.pid): string {
  return `${program}: ${pid === null ? '' : `pid ${pid}: `}${message.replace(/\n/g, ' ')}`;
}

function writeLine(fd: number, line: string): void {
  try {
    writeSync(fd, `${line}\n`);
  } catch {
    // A log that cannot be written must not stop the connection.
  }
}

/** `pid` names the connection in each line: the helper's own, or the server's app for it; null for none. */
export function createLogger(fd: number | undefined, verbosity: Verbosity, program: string, pid: number | null = process.pid): Logger {
  const write = (message: string): void => {
    if (fd !== undefined) writeLine(fd, logLine(program, message, pid));
  };
  return {
    warn: verbosity >= 1 ? write : () => {},
    info: verbosity >= 2 ? write : () => {},
  };
}

/**
 * A fatal line, shown whatever the verbosity. With no log fd (under xinetd fd 2 is the
 * client, and the -l file may be what failed) it goes to syslog, so that it is seen somewhere.
 * No default for fd: an undefined argument would take it.
 */
export function fatalLine(message: string, program: string, fd: number | undefined): void {
  const line = logLine(program, `fatal: ${message}`);
  if (fd !== undefined) writeLine(fd, line);
  else toSyslog(program, line.slice(program.length + 2));
}

/**
 * Through logger(1) (util-linux, on every Debian system) to /dev/log, facility daemon: Node
 * has no datagram sockets on AF_UNIX. Its PATH is fixed, not the launcher's: the helper may
 * run as root. stderr is closed, since under xinetd it is the client.
 */
function toSyslog(program: string, message: string): void {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
    spawnSync('logger', ['-t', program, '-p', 'daemon.err', '--', message], {
      stdio: 'ignore',
      env: { PATH: '/usr/bin:/bin' },
      timeout: 5000,
    });
  } catch {
    // nowhere left to tell it
  }
}
