// Reads the PROXY protocol header of an accepted connection, and not one byte more: what
// follows belongs to the app (STARTTLS: it reads fd 0) or to the worker's TLS (--implicit).
//
// A net.Socket read would not do: libuv reads up to 64 KiB at once. The connection was
// accepted paused, so libuv does not read it; the launcher reads its fd itself, each read
// asking for no more than header.ts says may belong to the header. The fd is
// non-blocking (accept4 made it so, and it is set again below), so a read never blocks the
// event loop: with nothing there it fails with EAGAIN and is tried again on a short timer
// (balancers send the header with the connection, so it is there at once or nearly so).
import { readSync } from 'node:fs';
import type { Socket } from 'node:net';
import { errorWords } from '../../messages';
import { setNonBlocking, socketFd } from '../../runtime/stream-handle';
import { proxyStep, type ProxyHeader } from './header';

export type HeaderRead = { header: ProxyHeader } | { error: string };

/** The longest pause between two tries: the most a slow header's last bytes wait. */
const MAX_POLL_MS = 32;

/**
 * Reads the header within `timeoutMs`, then calls `done` once, later (not if cancelled). Returns
 * the cancel function. The socket is left as it was: paused, open, its data unread.
 */
export function readProxyHeader(sock: Socket, timeoutMs: number, done: (r: HeaderRead) => void): () => void {
  const fd = socketFd(sock);
  let timer: NodeJS.Timeout | undefined;
  let over = false;
  const finish = (r: HeaderRead): void => {
    if (over) return;
    over = true;
    if (timer !== undefined) clearTimeout(timer);
    done(r);
  };
  if (fd === undefined) {
    queueMicrotask(() => finish({ error: 'the connection is gone' }));
    return () => (over = true);
  }
  setNonBlocking(sock);
  const deadline = performance.now() + timeoutMs;
  // One buffer, grown as the header's length becomes known: a header sent a byte at a time
  // costs one copy per growth, not one per byte.
  let store = Buffer.allocUnsafe(64);
  let len = 0;
  let pause = 0;

  const attempt = (): void => {
    timer = undefined;
    if (over) return;
    for (;;) {
      const step = proxyStep(store.subarray(0, len));
      if ('error' in step) return finish(step);
      if ('header' in step) return finish({ header: step.header });
      if (len + step.need > store.length) {
        const grown = Buffer.allocUnsafe(Math.max(len + step.need, store.length * 2));
        store.copy(grown, 0, 0, len);
        store = grown;
      }
      let n: number;
      try {
        n = readSync(fd, store, len, step.need, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK') break;
        if (code === 'EINTR') continue;
        return finish({ error: `reading the PROXY header: ${errorWords(e)}` });
      }
      if (n === 0) {
        return finish({ error: len === 0 ? 'closed before sending a PROXY header' : `closed after ${len} bytes of a PROXY header` });
      }
      len += n;
      pause = 0;
    }
    const left = deadline - performance.now();
    if (left <= 0) return finish({ error: `no complete PROXY header within ${timeoutMs / 1000} s (${len} bytes came)` });
    pause = Math.min(pause === 0 ? 1 : pause * 2, MAX_POLL_MS, Math.ceil(left));
    timer = setTimeout(attempt, pause);
  };
  // Not before the caller holds the cancel function: `done` never runs within this call.
  queueMicrotask(attempt);
  return () => {
    over = true;
    if (timer !== undefined) clearTimeout(timer);
  };
}
