// Each chunk read from a socket is a fresh 64 KiB buffer outside V8's heap, held by a
// handle of a few bytes inside it: V8 sees little garbage and collects late, so tens of
// MiB of relayed chunks wait to be freed. A young-generation collection every few MiB
// (a fraction of a millisecond) bounds that. Needs node's --expose-gc (bin/ucspi-tls-wrap).
const EVERY = 1024 * 1024;

export type Collect = (full?: boolean) => void;

const gcFunction = (globalThis as { gc?: NodeJS.GCFunction }).gc;

/** Counts relayed bytes; a minor collection once EVERY bytes have passed. */
export function byteCollector(): (bytes: number) => void {
  let since = 0;
  return (bytes) => {
    since += bytes;
    if (since >= EVERY && gcFunction !== undefined) {
      since = 0;
      gcFunction({ type: 'minor' });
    }
  };
}

/** A full collection: what start-up and the handshake left behind, before the long idle relay. */
export function collectAll(): void {
  gcFunction?.({ type: 'major' });
}
