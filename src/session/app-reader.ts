// The app's write channel, read without garbage and without a buffer per connection
// (net.Socket's read-into-our-buffer option; see runtime/socket-takeover.ts). A plain socket reads each chunk into a fresh buffer
// outside V8's heap, which only V8's collector frees, and it collects late: tens of MiB of
// relayed chunks would wait. Here every channel of the process reads into one landing
// buffer (reads run one at a time, on the event loop, each handed over before the next),
// and each read is copied into a chunk of a pool the whole process shares, back in the pool
// once the peer is done with it. An idle connection holds no buffer at all: in a resident
// server with hundreds of idle connections, buffers kept per connection were most of what
// each one cost. A copy of at most 16 KiB per read costs far less than its encryption.
import type { Socket } from 'node:net';
import { takeOverReading } from '../runtime/socket-takeover';
import { relayed } from './garbage';

/** One read: the most plaintext one TLS record carries. */
const CHUNK = 16 * 1024;
/** Chunks handed to the peer and not yet done with, per connection: reading stops at this many. */
const IN_FLIGHT = 4;
/**
 * Chunks the pool keeps for the next reads: enough for 16 connections relaying at once.
 * Beyond it, chunks done with are left to the collector, and counted as such (garbage).
 */
const POOLED = 64;

let landing: Buffer | undefined;
const pool: Buffer[] = [];

function landingBuffer(): Buffer {
  landing ??= Buffer.allocUnsafeSlow(CHUNK);
  return landing;
}

function takeChunk(): Buffer {
  const c = pool.pop();
  if (c !== undefined) return c;
  relayed(CHUNK);
  return Buffer.allocUnsafeSlow(CHUNK);
}

function giveBack(c: Buffer): void {
  if (pool.length < POOLED) pool.push(c);
}

/** Chunks the process's pool holds now, for the next reads of any connection. */
export function pooledChunks(): number {
  return pool.length;
}

export interface AppReader {
  /** The socket that now reads the channel (same handle, the shared buffers). */
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
  // The socket was made elsewhere (by child_process): a new Socket on its handle reads it.
  if (from.destroyed || from.readableEnded || from.readableLength > 0) return undefined;

  let inFlight = 0;
  let stopped = false;
  let bytes = 0;
  const socket: Socket | undefined = takeOverReading(from, {
    // Asked for again after every read: the handle is armed with the landing buffer.
    buffer: landingBuffer,
    callback: (n: number, buf: Uint8Array): boolean => {
      bytes += n;
      inFlight++;
      // Copied before anything else runs: the next read of any channel lands in `buf`.
      const chunk = takeChunk();
      chunk.set(buf.subarray(0, n));
      write(chunk.subarray(0, n), () => {
        inFlight--;
        giveBack(chunk);
        if (stopped && inFlight < IN_FLIGHT && socket !== undefined && !socket.destroyed) {
          stopped = false;
          socket.resume();
        }
      });
      // false stops reading until a chunk is done with: at most IN_FLIGHT chunks each.
      stopped = inFlight >= IN_FLIGHT;
      return !stopped;
    },
  });
  if (socket === undefined) return undefined;
  return { socket, bytes: () => bytes, inFlight: () => inFlight };
}
