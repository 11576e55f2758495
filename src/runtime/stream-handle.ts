// A net.Socket's libuv stream handle (`_handle`), for what net.Socket's public API cannot do:
// stop the handle's reads at once (pause() only stops emitting; the handle reads on, up to
// 64 KiB), set the fd non-blocking again, and name the fd. Node 20, 24 and 26 alike;
// test/internals.test.ts fails when a Node release changes the handle.
//
// Paid for by correctness, not speed: the server hands the app's channels and the client
// connection from the launcher to a worker with no byte read on the way (one IPC round trip
// less per STARTTLS session: session - floor 5.5 -> 5.0 ms, bench/RESULTS.md), and reads a
// PROXY header and not one byte past it.
import type { Socket } from 'node:net';

interface StreamHandle {
  reading: boolean;
  readStart(): number;
  readStop(): number;
  setBlocking?(blocking: boolean): number;
  fd?: number;
}

function handleOf(s: Socket): Partial<StreamHandle> | null | undefined {
  // Node's own field; @types/node does not declare it.
  return (s as unknown as { _handle?: Partial<StreamHandle> | null })._handle;
}

function readControl(h: Partial<StreamHandle> | null | undefined): StreamHandle | undefined {
  return h != null && typeof h.readStop === 'function' && typeof h.readStart === 'function' && typeof h.reading === 'boolean' ? (h as StreamHandle) : undefined;
}

/** Feature detection: this Node's open socket `s` has a handle whose reads can be stopped and started. */
export function hasReadControl(s: Socket): boolean {
  return readControl(handleOf(s)) !== undefined;
}

/**
 * Stop the handle's reads before the event loop runs (as child_process does for a socket it
 * passes to a child): the bytes wait in the kernel. Fallback, without the handle's methods:
 * pause(), which stops only the stream; the handle may still read up to 64 KiB ahead, and
 * bytes read so are lost to whoever the fd goes to.
 */
export function stopReading(s: Socket): void {
  const h = readControl(handleOf(s));
  if (h === undefined) return void s.pause();
  h.reading = false;
  h.readStop();
}

/**
 * Reading again, on a socket stopped as it arrived: its stream started a read then (Node
 * starts reading a socket it receives) and waits for that read still, so it would not ask
 * again; the handle must. Fallback: resume(), what the fallback of stopReading needs.
 */
export function resumeReading(s: Socket): void {
  const h = readControl(handleOf(s));
  if (h === undefined) return void s.resume();
  if (h.reading) return;
  h.reading = true;
  h.readStart();
}

/** Feature detection: the handle of `s` can set its fd's O_NONBLOCK. */
export function hasSetBlocking(s: Socket): boolean {
  return typeof handleOf(s)?.setBlocking === 'function';
}

/**
 * O_NONBLOCK belongs to the open socket, shared with any process holding a copy of the fd
 * (libuv makes a child's stdio blocking): set it again, so that reads never block the event
 * loop. False when this Node cannot: there is no public way, and a read of an empty blocking
 * socket would then stall the process's event loop.
 */
export function setNonBlocking(s: Socket): boolean {
  const h = handleOf(s);
  if (typeof h?.setBlocking !== 'function') return false;
  return h.setBlocking(false) === 0;
}

/**
 * The fd of an open socket, to read it with fs.readSync by exact lengths. Undefined when the
 * socket is closed, or this Node's handle names no fd: there is no public way, and a reader
 * that must not take one byte too many cannot use the stream.
 */
export function socketFd(s: Socket): number | undefined {
  const fd = handleOf(s)?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}
