// Move bytes between the TLS socket and the app's two pipes, each direction on its own,
// with stream backpressure (memory stays bounded whatever the speeds) and half-close.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { describeError } from './handshake';

export interface RelayEvents {
  /** App to client finished: close_notify and FIN sent after the last byte, or the client is gone. */
  outboundDone(): void;
  log(message: string): void;
}

export interface RelayCounts {
  toApp: number;
  toClient: number;
}

export function relay(tls: TLSSocket, toApp: Socket, fromApp: Socket, ev: RelayEvents): () => RelayCounts {
  let outDone = false;
  const outbound = (): void => {
    if (!outDone) {
      outDone = true;
      ev.outboundDone();
    }
  };

  // client -> app
  tls.pipe(toApp);
  toApp.on('error', (e) => {
    // The app closed its read end: it wants no more; drain the client so TLS keeps going out.
    ev.log(`app stopped reading: ${describeError(e)}`);
    tls.unpipe(toApp);
    tls.resume();
  });

  // app -> client: end() sends close_notify, then shuts the TCP write side.
  fromApp.pipe(tls);
  tls.on('finish', outbound);
  fromApp.on('error', (e) => {
    ev.log(`app write pipe: ${describeError(e)}`);
    tls.end();
  });

  let clientGone = false;
  tls.on('error', (e) => {
    if (!clientGone) ev.log(`client connection: ${describeError(e)}`);
    clientGone = true;
    // Nothing more can reach the client: the app sees EPIPE on its write pipe, EOF on its read pipe.
    fromApp.destroy();
    if (!toApp.destroyed) toApp.end();
    outbound();
  });
  tls.on('close', () => {
    fromApp.destroy();
    if (!toApp.destroyed && !toApp.writableEnded) toApp.end();
    outbound();
  });

  return () => ({ toApp: toApp.bytesWritten, toClient: fromApp.bytesRead });
}
