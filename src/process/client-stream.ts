// The network connection as one duplex stream, whatever the launcher gave us.
import type { Duplex } from 'node:stream';
import { Socket } from 'node:net';
import { joinStreams } from './join-streams';

export interface ConnectionFds {
  readFd: number;
  writeFd: number;
  /** read and write fds are one open socket (or one file description). */
  sameObject: boolean;
}

/**
 * One socket when the two fds are the same object (the fast path: TLS runs on the native
 * handle); two streams joined otherwise (two pipes, a socketpair per direction).
 */
export function openClientStream(fds: ConnectionFds): Duplex {
  // No Nagle delay on TCP (a no-op on other sockets): a handshake flight or a reply written
  // in two pieces must not wait for the client's delayed ACK (40 ms).
  if (fds.sameObject) {
    return new Socket({ fd: fds.readFd, readable: true, writable: true, allowHalfOpen: true }).setNoDelay(true);
  }
  const r = new Socket({ fd: fds.readFd, readable: true, writable: false, allowHalfOpen: true });
  const w = new Socket({ fd: fds.writeFd, readable: false, writable: true, allowHalfOpen: true }).setNoDelay(true);
  return joinStreams(r, w);
}
