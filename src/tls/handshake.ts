// The server handshake on the client stream, with a time limit.
import type { Server, TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { tlsParent } from '../runtime/tls-parent';
import { reasonText } from './client-auth';
import { highestOffered, readClientHello, type HelloInfo } from './client-hello';
import { errorReason, HandshakeError, type FailureReason } from './failure';

export interface Handshaken<T> {
  tls: TLSSocket;
  /** What the client's hello showed; undefined when it could not be read. */
  hello: HelloInfo | undefined;
  /** What choose() returned for this client. */
  chosen: T;
}

/** From the client's hello, the server to hand the connection to, or why the client is refused. */
export type Chooser<T> = (hello: HelloInfo | undefined) => { server: Server; chosen: T } | { refused: string };

export interface HandshakeOptions<T> {
  choose: Chooser<T>;
  timeoutMs: number;
}

/** A fatal unrecognized_name alert, in the clear as alerts before ServerHello are. */
const UNRECOGNIZED_NAME_ALERT = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70]);

/** Resolves with the TLS socket, or rejects with a HandshakeError: the log line and its bucket. */
export function serverHandshake<T>(client: Duplex, opts: HandshakeOptions<T>): Promise<Handshaken<T>> {
  return new Promise((resolve, reject) => {
    let settled = false;
    let unregister = (): void => {};
    const fail = (why: string, reason: FailureReason): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      unregister();
      client.destroy();
      reject(new HandshakeError(why, reason));
    };
    const timer =
      opts.timeoutMs > 0
        ? setTimeout(() => fail(`handshake timed out after ${opts.timeoutMs / 1000} s`, 'timeout'), opts.timeoutMs)
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
      if (hello.kind === 'not-tls') return fail(`handshake failed: client sent ${hello.looksLike}, not a TLS ClientHello`, 'protocol');
      const info = hello.kind === 'hello' ? hello : undefined;
      const pick = opts.choose(info);
      if ('refused' in pick) {
        client.end(UNRECOGNIZED_NAME_ALERT);
        return fail(`handshake refused: ${pick.refused}`, 'protocol');
      }
      client.unshift(seen);
      start(pick.server, info, pick.chosen);
    };
    const onEarlyEnd = (): void => fail('handshake failed: client closed the connection before its ClientHello', 'client gone');
    const onEarlyError = (e: Error): void => fail(`handshake failed: ${describeError(e)}`, errorReason(e));
    client.on('data', onData);
    client.once('end', onEarlyEnd);
    client.once('error', onEarlyError);

    function start(s: Server, hello: HelloInfo | undefined, chosen: T): void {
      // The TLS socket takes allowHalfOpen from the client stream. Half-open during the
      // handshake, it would wait forever for the rest of a handshake after the client's EOF
      // (a client that closes right after its Finished, or before it): closed, Node reports
      // the hang-up at once. Half-close is wanted only once TLS is up.
      const halfOpen = client.allowHalfOpen;
      unregister = awaitHandshake(s, client, {
        secure: (t) => {
          unregister();
          t.allowHalfOpen = halfOpen;
          if (settled) return t.destroy();
          settled = true;
          clearTimeout(timer);
          resolve({ tls: t, hello, chosen });
        },
        error: (e, t) => {
          unregister();
          // A required client certificate that failed verification: Node drops the socket
          // (a "hang up"), and only the socket says why.
          const why: unknown = t.authorizationError;
          t.destroy();
          if (typeof why === 'string') fail(`client certificate refused: ${reasonText(why)}`, 'certificate required');
          else fail(`handshake failed: ${describeError(e)}${versionNote(e, hello)}`, errorReason(e));
        },
      });
      client.allowHalfOpen = false;
      s.emit('connection', client);
      client.allowHalfOpen = halfOpen;
    }
  });
}

interface Waiter {
  secure(t: TLSSocket): void;
  error(e: Error, t: TLSSocket): void;
}

/** The handshakes under way on each tls.Server, by the client stream they run on. */
const waiting = new WeakMap<Server, Map<Duplex, Waiter>>();

/**
 * One tls.Server serves every handshake of its certificate at once in a resident server:
 * its 'secureConnection' and 'tlsClientError' must reach the handshake of that very
 * socket, never the first one listening. Returns the call that stops waiting.
 */
function awaitHandshake(s: Server, client: Duplex, w: Waiter): () => void {
  let byClient = waiting.get(s);
  if (byClient === undefined) {
    const m = new Map<Duplex, Waiter>();
    byClient = m;
    waiting.set(s, m);
    s.on('secureConnection', (t: TLSSocket) => {
      const waiter = m.get(clientOf(t, m) as Duplex);
      if (waiter !== undefined) waiter.secure(t);
      else t.destroy(); // its handshake gave up (timed out) meanwhile
    });
    s.on('tlsClientError', (e: Error, t: TLSSocket) => {
      const waiter = m.get(clientOf(t, m) as Duplex);
      if (waiter !== undefined) waiter.error(e, t);
      else t.destroy();
    });
  }
  byClient.set(client, w);
  const m = byClient;
  return () => void m.delete(client);
}

/**
 * The client stream under a server-side TLSSocket (see runtime/tls-parent.ts). Failing
 * that, a lone handshake under way is the one.
 */
function clientOf(t: TLSSocket, under: Map<Duplex, Waiter>): Duplex | undefined {
  const parent = tlsParent(t);
  if (parent !== undefined && under.has(parent)) return parent;
  return under.size === 1 ? under.keys().next().value : undefined;
}

/** For a refused version: what the client offered (an old client, or a scanner probing). */
function versionNote(e: Error, hello: HelloInfo | undefined): string {
  const reason = (e as { reason?: unknown }).reason;
  if (hello === undefined || typeof reason !== 'string' || !/^(unsupported protocol|version too low)$/.test(reason)) return '';
  const v = highestOffered(hello);
  return v === undefined ? '' : ` (the client offers ${v} at most)`;
}

export function describeError(e: Error, peer = 'client'): string {
  const err = e as NodeJS.ErrnoException & { reason?: string };
  if (typeof err.reason === 'string' && err.reason !== '') return err.reason;
  // Node's words for an EOF before the handshake completed (server side, client side).
  if (err.code === 'ECONNRESET' && /^(socket hang up|Client network socket disconnected)/.test(err.message)) {
    return `${peer} closed the connection during the handshake`;
  }
  if (err.code === 'ECONNRESET') return `connection reset by ${peer}`;
  if (err.code === 'EPIPE') return `${peer} went away`;
  return (err.message || String(err.code)).replace(/^error:[0-9A-F]+:[^:]*:[^:]*:/, '');
}
