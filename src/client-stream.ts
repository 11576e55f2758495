// The client connection as one duplex stream, whatever the launcher gave us.
import { Duplex, type Readable, type Writable } from 'node:stream';
import { Socket } from 'node:net';
import type { ClientFds } from './client-fds';

/**
 * One socket when fd 0 and fd 1 are the same object (the fast path: TLS runs on the native
 * handle); two streams joined otherwise (two pipes, a socketpair per direction).
 */
export function openClientStream(fds: ClientFds): Duplex {
  if (fds.sameObject) {
    return new Socket({ fd: fds.readFd, readable: true, writable: true, allowHalfOpen: true });
  }
  const r = new Socket({ fd: fds.readFd, readable: true, writable: false, allowHalfOpen: true });
  const w = new Socket({ fd: fds.writeFd, readable: false, writable: true, allowHalfOpen: true });
  return joinStreams(r, w);
}

export function joinStreams(r: Readable, w: Writable): Duplex {
  const d = new Duplex({
    allowHalfOpen: true,
    read() {
      r.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      w.write(chunk, cb);
    },
    final(cb) {
      w.end(cb);
    },
    destroy(err, cb) {
      r.destroy();
      w.destroy();
      cb(err);
    },
  });
  r.pause();
  r.on('data', (chunk: Buffer) => {
    if (!d.push(chunk)) r.pause();
  });
  r.on('end', () => d.push(null));
  r.on('error', (e) => d.destroy(e));
  w.on('error', (e) => d.destroy(e));
  return d;
}
