// The ticket-key callback of a tls.Server's context (`_sharedCreds.context`,
// `enableTicketKeyCallback`/`onticketkeycallback`, the one Node's own tests use): Node takes
// a single ticket key, and this lets a server accept tickets of the previous key once after
// a rotation, as nginx and HAProxy do with their lists of keys. Paid for by a feature, not a
// figure: without it each client holding an older ticket makes a full handshake after a
// rotation. test/internals.test.ts fails when a Node release changes it.
import type { Server } from 'node:tls';

export type TicketKeyCallback = (name: Buffer, iv: Buffer, enc: boolean) => [number, Buffer, Buffer, Buffer, Buffer];

interface TicketContext {
  enableTicketKeyCallback(): void;
  onticketkeycallback?: TicketKeyCallback;
}

function ticketContext(server: Server): TicketContext | undefined {
  // The tls.Server's context, set up by createServer.
  const ctx = (server as unknown as { _sharedCreds?: { context?: Partial<TicketContext> } })._sharedCreds?.context;
  return ctx != null && typeof ctx.enableTicketKeyCallback === 'function' ? (ctx as TicketContext) : undefined;
}

/** Feature detection: `server`'s context takes a ticket-key callback. */
export function hasTicketKeyCallback(server: Server): boolean {
  return ticketContext(server) !== undefined;
}

/**
 * OpenSSL asks `callback` for the keys of every ticket `server` makes or reads. False when
 * this Node cannot: the caller keeps the single key of setTicketKeys (public), and tickets of
 * any other key mean a full handshake.
 */
export function setTicketKeyCallback(server: Server, callback: TicketKeyCallback): boolean {
  const ctx = ticketContext(server);
  if (ctx === undefined) return false;
  ctx.onticketkeycallback = callback;
  ctx.enableTicketKeyCallback();
  return true;
}
