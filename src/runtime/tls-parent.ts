// The stream under a server-side TLSSocket made by tls.Server from a stream it was handed
// (`server.emit('connection', stream)`): Node keeps it as `_parent`; the public API offers no
// link back. Paid for by correctness: a worker runs every handshake of a certificate through
// one tls.Server, and under 50 clients at once a third of the sessions never got their first
// line while sockets were matched to handshakes by order. test/internals.test.ts fails when a
// Node release changes it.
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';

/**
 * The stream `t` was made over; undefined when this Node does not say. Fallback (the
 * caller's): a lone handshake under way is the one; with several at once, a finished
 * handshake cannot be told apart and its connection is closed.
 */
export function tlsParent(t: TLSSocket): Duplex | undefined {
  const parent = (t as unknown as { _parent?: unknown })._parent;
  return parent != null && typeof (parent as Duplex).pipe === 'function' ? (parent as Duplex) : undefined;
}
