// Move bytes between the TLS socket and the app's two channels, each direction on its own,
// with backpressure and half-close. Memory per connection is bounded whatever the speeds:
// by the streams' high-water marks, by the app reader's own buffers (app-reader), and for
// the chunks the TLS socket reads, which Node allocates afresh, by the collector (garbage).
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { readReused } from './app-reader';
import { relayed } from './garbage';
import { keepYoungGenerationSmall } from '../runtime/young-generation';
import { describeError } from '../tls/handshake';

export interface RelayEvents {
  /** App to peer finished: close_notify and FIN sent after the last byte, or the peer is gone. */
  outboundDone(): void;
  log(message: string): void;
  /** Failures: shown unless -q. */
  warn(message: string): void;
  /** What the log calls the other end: 'client' or 'server'. */
  peer: string;
}

export interface RelayCounts {
  toApp: number;
  toPeer: number;
}

export interface Relay {
  counts(): RelayCounts;
  /** The app has exited: its write channel must end soon, even if a child of it still holds it. */
  appExited(): void;
}

/** How often, after the app's exit, the helper looks whether its write channel still moves. */
const ORPHAN_CHECK_MS = 500;

export function relay(tls: TLSSocket, toApp: Socket, appChannel: Socket, ev: RelayEvents): Relay {
  // Either direction may be bulk from now on; what relays app→client makes no garbage to count.
  keepYoungGenerationSmall();
  let outDone = false;
  const outbound = (): void => {
    if (!outDone) {
      outDone = true;
      ev.outboundDone();
    }
  };

  // peer -> app
  tls.pipe(toApp);
  tls.on('data', (chunk: Buffer) => relayed(chunk.length));
  toApp.on('error', (e) => {
    // The app closed its read end: it wants no more; drain the peer so TLS keeps going out.
    ev.log(`app stopped reading: ${describeError(e)}`);
    tls.unpipe(toApp);
    tls.resume();
  });

  // app -> peer: end() sends close_notify, then shuts the TCP write side.
  let moved = false;
  const reader = readReused(appChannel, (chunk, done) => {
    moved = true;
    tls.write(chunk, done);
  });
  // The stream path when the channel could not be taken over (the app wrote before TLS).
  const fromApp = reader?.socket ?? appChannel;
  if (reader === undefined) {
    fromApp.pipe(tls);
    fromApp.on('data', (chunk: Buffer) => {
      moved = true;
      relayed(chunk.length);
    });
  } else {
    fromApp.on('end', () => tls.end());
  }
  tls.on('finish', outbound);
  fromApp.on('error', (e) => {
    ev.log(`app write channel: ${describeError(e)}`);
    tls.end();
  });

  let peerGone = false;
  tls.on('error', (e) => {
    if (!peerGone) ev.warn(`${ev.peer} connection: ${describeError(e, ev.peer)}`);
    peerGone = true;
    // Nothing more can reach the peer: the app sees EPIPE on its write channel, EOF on its read one.
    fromApp.destroy();
    if (!toApp.destroyed) toApp.end();
    outbound();
  });
  tls.on('close', () => {
    fromApp.destroy();
    if (!toApp.destroyed && !toApp.writableEnded) toApp.end();
    outbound();
  });

  // A child of the app (a daemon it forked) may hold the write channel open forever. Once the
  // app has exited, the channel is finished when it no longer moves: nothing read since the
  // last look, nothing buffered, no backpressure from the peer.
  const appExited = (): void => {
    const timer = setInterval(() => {
      if (outDone || fromApp.readableEnded) return clearInterval(timer);
      // Chunks the reader handed to TLS and waits for are backpressure too: the reader
      // stops reading until the peer takes them, and the stream's counters may not show it.
      if (moved || tls.writableNeedDrain || fromApp.readableLength > 0 || (reader?.inFlight() ?? 0) > 0) {
        moved = false;
        return;
      }
      clearInterval(timer);
      ev.warn('app exited, but its write channel is still open (held by a child of the app): closing the connection');
      fromApp.unpipe(tls);
      fromApp.destroy();
      tls.end();
    }, ORPHAN_CHECK_MS);
  };

  return { counts: () => ({ toApp: toApp.bytesWritten, toPeer: reader?.bytes() ?? fromApp.bytesRead }), appExited };
}

/** The closing log line, once TLS has run. */
export function summaryLine(r: Relay | undefined, peer: string): string | undefined {
  const c = r?.counts();
  return c && `TLS ended: ${c.toPeer} bytes to ${peer}, ${c.toApp} bytes to app`;
}
