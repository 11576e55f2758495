// The handles Node's IPC still holds for a child that is gone (`_pendingMessage`,
// `_handleQueue` on the ChildProcess, set up by child_process for every IPC channel): Node
// keeps a sent handle open until the child acknowledges it, queues the next ones behind it,
// and closes neither when the child dies. Left open, they hold an app's control socket (the
// app waits for EOF forever) and a client connection. Paid for by correctness, found by `make
// soak` (a worker killed amid new connections left an app blocked and four fds in the
// launcher); test/server-worker-kill.test.ts and test/internals.test.ts fail without it.
import type { ChildProcess } from 'node:child_process';

type Held = { handle?: { destroy?(): void; close?(): void } | null } | null | undefined;
type IpcState = { _pendingMessage?: Held; _handleQueue?: Held[] | null };

/** Feature detection: `child` has an IPC channel with the queue fields this code knows. */
export function hasIpcHandleQueue(child: ChildProcess): boolean {
  const ipc = child as unknown as IpcState;
  return '_pendingMessage' in ipc && '_handleQueue' in ipc && (ipc._handleQueue === null || Array.isArray(ipc._handleQueue));
}

/**
 * Close the handles still held for `child`, which has exited. False when this Node keeps
 * them elsewhere: there is no public way to reach them, and they stay open until the
 * launcher exits (the apps concerned wait for EOF until then).
 */
export function closeUndeliveredHandles(child: ChildProcess): boolean {
  if (!hasIpcHandleQueue(child)) return false;
  const ipc = child as unknown as IpcState;
  for (const held of [ipc._pendingMessage, ...(ipc._handleQueue ?? [])]) {
    const h = held?.handle;
    if (h?.destroy !== undefined) h.destroy();
    else h?.close?.();
  }
  ipc._pendingMessage = null;
  ipc._handleQueue = null;
  return true;
}
