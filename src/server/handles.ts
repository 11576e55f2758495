// The two places where the server reaches below net.Socket's public API, each for a reason
// the public API cannot serve. Both on libuv stream handles, as Node 20 and 24 have them.
import type { Socket } from 'node:net';

interface StreamHandle {
  reading: boolean;
  readStart(): number;
  readStop(): number;
  setBlocking?(blocking: boolean): number;
}

function handleOf(s: Socket): StreamHandle | null {
  // Node's own field; @types/node does not declare it.
  return (s as unknown as { _handle: StreamHandle | null })._handle;
}

/**
 * child_process gives us its end of each 'pipe' as a net.Socket that starts reading at
 * once. The launcher only hands these ends to a worker: a byte it read (the app's `y`)
 * would be lost. So stop the handle before the event loop runs, as child_process itself
 * does for a socket it passes to a child; the bytes wait in the kernel for the worker.
 */
export function stopReading(s: Socket): void {
  const h = handleOf(s);
  if (h === null) return;
  h.reading = false;
  h.readStop();
}

/**
 * Reading again, on a socket stopped as it arrived: its stream started a read then (Node
 * starts reading a socket it receives) and waits for that read still, so it would not ask
 * again; the handle must.
 */
export function resumeReading(s: Socket): void {
  const h = handleOf(s);
  if (h === null || h.reading) return;
  h.reading = true;
  h.readStart();
}

/**
 * O_NONBLOCK belongs to the open socket, shared by the app's fds 0/1 and the worker's copy,
 * and libuv made it blocking for the app. The worker's handle must not block the event
 * loop: set it non-blocking again, before the loop reads from it.
 */
export function setNonBlocking(s: Socket): void {
  handleOf(s)?.setBlocking?.(false);
}

/**
 * The listening socket's libuv handle: sent to a worker and back, it comes home as a second
 * fd on the same socket, which keeps the socket (and its queue of waiting clients) open
 * while the launcher closes its server to stop accepting. net.Server cannot pause accepting.
 */
export function listeningHandle(server: import('node:net').Server): unknown {
  return (server as unknown as { _handle: unknown })._handle;
}
