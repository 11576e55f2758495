// Reading a socket made elsewhere into buffers of our own. net.Socket's `onread` option
// (public) exists only in its constructor, and the sockets the app-side channels come as were
// made by child_process: a new Socket on the same libuv handle (`_handle`, passed as the
// undocumented `handle` option, as child_process itself does for its pipes) takes it over.
// Paid for by memory: every read into a fresh 64 KiB buffer that V8 collects late left 35 MiB
// and more above the idle helper under a fast app (commit "Relay memory bounded by
// construction"); with it what the app sends is bounded to 80 KiB per connection and an idle
// connection holds no buffer (idle KiB per server connection, with the young generation's
// setting: 121 -> 87 on Node 20, 175 -> 131 on Node 24, bench/RESULTS.md).
// test/internals.test.ts fails when a Node release changes it.
import { Socket, type OnReadOpts } from 'node:net';

interface ReadHandle {
  readStop(): number;
  reading: boolean;
}

function readHandle(s: Socket): ReadHandle | undefined {
  const h = (s as unknown as { _handle?: Partial<ReadHandle> | null })._handle;
  return h != null && typeof h.readStop === 'function' && typeof h.reading === 'boolean' ? (h as ReadHandle) : undefined;
}

/** Feature detection: the open socket `s` has a handle a new Socket can take over. */
export function canTakeOver(s: Socket): boolean {
  return readHandle(s) !== undefined;
}

/**
 * A new Socket that reads `from`'s handle with `onread`; `from` must not be read again.
 * Undefined when `from` has no such handle (closed, or this Node has none): then the caller
 * reads `from` as a stream, each read in a fresh buffer (the memory above).
 */
export function takeOverReading(from: Socket, onread: OnReadOpts): Socket | undefined {
  const handle = readHandle(from);
  if (handle === undefined) return undefined;
  handle.readStop();
  handle.reading = false;
  // `handle` is the option child_process itself uses to wrap its pipes; @types/node omits it.
  return new Socket({ handle, readable: true, writable: true, onread } as ConstructorParameters<typeof Socket>[0]);
}
