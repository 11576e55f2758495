// The app's write channel, read into a few buffers of our own that every read reuses
// (net.Socket's `onread` option). A plain socket reads each chunk into a fresh buffer
// outside V8's heap, which only V8's collector frees, and it collects late: tens of MiB of
// relayed chunks would wait. Here what the app sends leaves no garbage, and the memory it
// takes is bounded by construction: IN_FLIGHT + 1 buffers of CHUNK bytes per connection,
// 80 KiB, kept for the connection's life (letting spares go when a burst ends would make
// them garbage again, burst after burst).
import { Socket } from 'node:net';

/** One read: the most plaintext one TLS record carries. */
const CHUNK = 16 * 1024;
/** Chunks handed to the peer and not yet done with: reading stops at this many. */
const IN_FLIGHT = 4;

/** The part of libuv's stream handle a net.Socket keeps as `_handle`. */
interface StreamHandle {
  readStop(): number;
  reading: boolean;
}

export interface AppReader {
  /** The socket that now reads the channel (same handle, our buffers). */
  socket: Socket;
  /** Bytes read from the app. */
  bytes(): number;
  /** Chunks handed to the peer and not yet done with: the peer is still taking them. */
  inFlight(): number;
}

/**
 * Takes over the reading of `from`, a socket nobody has read from yet, and hands each chunk
 * to `write`, which must call `done` once the chunk's bytes are no longer needed (the TLS
 * socket's write callback: OpenSSL has encrypted them). Undefined when `from` cannot be
 * taken over (no handle, bytes or EOF already read): then the caller pipes it as a stream.
 */
export function readReused(from: Socket, write: (chunk: Buffer, done: () => void) => void): AppReader | undefined {
  // `onread` is an option of the constructor only, and the socket was made elsewhere (by
  // child_process, or over the pipe handle the app was spawned with): a new Socket on the
  // same handle takes it over. `_handle` is the handle any net.Socket keeps.
  const handle = (from as unknown as { _handle?: Partial<StreamHandle> | null })._handle;
  if (handle == null || typeof handle.readStop !== 'function' || typeof handle.reading !== 'boolean') return undefined;
  if (from.destroyed || from.readableEnded || from.readableLength > 0) return undefined;
  handle.readStop();
  handle.reading = false;

  const free: Buffer[] = [];
  let inFlight = 0;
  let stopped = false;
  let bytes = 0;
  const socket: Socket = new Socket({
    handle,
    readable: true,
    writable: true,
    onread: {
      buffer: () => free.pop() ?? Buffer.allocUnsafeSlow(CHUNK),
      callback: (n: number, buf: Uint8Array): boolean => {
        bytes += n;
        inFlight++;
        const chunk = buf as Buffer;
        write(chunk.subarray(0, n), () => {
          inFlight--;
          free.push(chunk);
          if (stopped && inFlight < IN_FLIGHT && !socket.destroyed) {
            stopped = false;
            socket.resume();
          }
        });
        // false stops reading until a chunk is done with: no more buffers than IN_FLIGHT + 1.
        stopped = inFlight >= IN_FLIGHT;
        return !stopped;
      },
    },
    // `handle` is the option child_process itself uses to wrap its pipes; @types/node omits it.
  } as ConstructorParameters<typeof Socket>[0]);
  return { socket, bytes: () => bytes, inFlight: () => inFlight };
}
