// The plaintext connection an app is started with: fds 0/1 under a server-side helper,
// fds 6/7 under a client-side one (tcpclient's convention).
import { Socket } from 'node:net';

export interface Plaintext {
  input: Socket;
  output: Socket;
}

export type Side = 'server' | 'client';

export function plaintextStreams(side: Side = 'server'): Plaintext {
  const [r, w] = side === 'server' ? [0, 1] : [6, 7];
  return {
    input: new Socket({ fd: r, readable: true, writable: false, allowHalfOpen: true }),
    output: new Socket({ fd: w, readable: false, writable: true, allowHalfOpen: true }),
  };
}
