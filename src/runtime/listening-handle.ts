// The listening socket's libuv handle (`net.Server`'s `_handle`): sent to the spawner and back
// over IPC, it comes home as a second fd on the same socket, which keeps the socket (and its
// queue of waiting clients) open while the acceptor closes its server to stop accepting:
// net.Server cannot pause accepting. Paid for by correctness (clients that connect during a
// pause wait in the queue instead of being refused), not by a bench figure.
// test/internals.test.ts fails when a Node release changes it.
import type { Server } from 'node:net';

/** What Node's IPC sends as a raw handle (`net.Native`): a libuv handle object with its fd. */
interface ListenHandle {
  fd: number;
  close(): void;
}

/**
 * The server's listening handle; undefined when not listening, or when this Node's server has
 * no such handle. Fallback: the caller closes the server outright to pause (without a spare fd
 * the socket closes too, and clients connecting during the pause are refused).
 */
export function listeningHandle(server: Server): object | undefined {
  // Node's own field; @types/node does not declare it.
  const h = (server as unknown as { _handle?: Partial<ListenHandle> | null })._handle;
  return h != null && typeof h.fd === 'number' && typeof h.close === 'function' ? h : undefined;
}
