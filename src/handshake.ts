// The server handshake on the client stream, with a time limit.
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Duplex } from 'node:stream';
import { readClientHello, type Hello } from './client-hello';

export interface Handshaken {
  tls: TLSSocket;
  /** What the client's hello showed; undefined when it could not be read. */
  hello: Extract<Hello, { kind: 'hello' }> | undefined;
}

export interface HandshakeOptions {
  context: SecureContext;
  timeoutMs: number;
}

/** Resolves with the TLS socket, or rejects with an Error whose message is the log line. */
export function serverHandshake(client: Duplex, opts: HandshakeOptions): Promise<Handshaken> {
  return new Promise((resolve, reject) => {
    let settled = false;
    let tls: TLSSocket | undefined;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      tls?.destroy();
      client.destroy();
      reject(new Error(why));
    };
    const timer =
      opts.timeoutMs > 0
        ? setTimeout(() => fail(`handshake timed out after ${opts.timeoutMs / 1000} s`), opts.timeoutMs)
        : undefined;

    // Read the client's first record ourselves, then hand it back to the stream for OpenSSL.
    let seen: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const hello = readClientHello(seen);
      if (hello.kind === 'need-more') return;
      client.off('data', onData);
      client.off('end', onEarlyEnd);
      client.off('error', onEarlyError);
      client.pause();
      if (hello.kind === 'not-tls') return fail(`handshake failed: client sent ${hello.looksLike}, not a TLS ClientHello`);
      client.unshift(seen);
      start(hello.kind === 'hello' ? hello : undefined);
    };
    const onEarlyEnd = (): void => fail('handshake failed: client closed the connection before its ClientHello');
    const onEarlyError = (e: Error): void => fail(`handshake failed: ${describeError(e)}`);
    client.on('data', onData);
    client.once('end', onEarlyEnd);
    client.once('error', onEarlyError);

    function start(hello: Handshaken['hello']): void {
      const t = new TLSSocket(client, { isServer: true, secureContext: opts.context });
      tls = t;
      t.once('secure', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        t.off('error', onTlsError);
        t.off('close', onTlsClose);
        resolve({ tls: t, hello });
      });
      const onTlsError = (e: Error): void => fail(`handshake failed: ${describeError(e)}`);
      const onTlsClose = (): void => fail('handshake failed: client closed the connection during the handshake');
      t.on('error', onTlsError);
      t.once('close', onTlsClose);
    }
  });
}

export function describeError(e: Error): string {
  const err = e as NodeJS.ErrnoException & { reason?: string };
  if (typeof err.reason === 'string' && err.reason !== '') return err.reason;
  if (err.code === 'ECONNRESET') return 'connection reset by client';
  if (err.code === 'EPIPE') return 'client went away';
  return (err.message || String(err.code)).replace(/^error:[0-9A-F]+:[^:]*:[^:]*:/, '');
}
