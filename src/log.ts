// One line per event on the log fd. Synchronous writes: process.stderr would wrap fd 2 in a
// stream and may set O_NONBLOCK on it, which xinetd shares with the client socket.
import { writeSync } from 'node:fs';
import { PROGRAM, type Verbosity } from './helper/options';

export interface Logger {
  /** Failures and refusals: shown unless -q. */
  warn(message: string): void;
  /** Progress: shown with -v. */
  info(message: string): void;
}

/** `pid` names the connection in each line: the helper's own, or the server's app for it; null for none. */
export function createLogger(fd: number | undefined, verbosity: Verbosity, program = PROGRAM, pid: number | null = process.pid): Logger {
  const prefix = pid === null ? `${program}: ` : `${program}: pid ${pid}: `;
  const write = (message: string): void => {
    if (fd === undefined) return;
    try {
      writeSync(fd, `${prefix}${message.replace(/\n/g, ' ')}\n`);
    } catch {
      // A log that cannot be written must not stop the connection.
    }
  };
  return {
    warn: verbosity >= 1 ? write : () => {},
    info: verbosity >= 2 ? write : () => {},
  };
}

/** Before a logger exists (usage errors): straight to fd 2. */
export function fatalLine(message: string, program = PROGRAM): void {
  try {
    writeSync(2, `${program}: fatal: ${message}\n`);
  } catch {
    // nothing left to tell it to
  }
}
