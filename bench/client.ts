// The bench's client side: connections as a mail client makes them, on 127.0.0.1, each wait
// bounded in time.
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Kind } from './servers';

/** No single wait of the bench (a line, a handshake, a drain) lasts longer. */
export const WAIT_MS = 10000;

export const now = (): number => Number(process.hrtime.bigint()) / 1e6;
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Lines from a stream, or everything it delivers into a sink once the protocol says so. */
export class Reader {
  /** The app's parent, from its banner: the process in front of it (per-connection rows). */
  ppid = NaN;
  private buf: Buffer = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  private ended = false;
  sink: ((chunk: Buffer) => void) | undefined;
  constructor(readonly stream: Socket | TLSSocket) {
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('error', this.onEnd);
    stream.on('close', this.onEnd);
  }
  private onData = (d: Buffer): void => {
    if (this.sink !== undefined) return this.sink(d);
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    this.wake();
  };
  private onEnd = (): void => {
    this.ended = true;
    this.wake();
  };
  private wake(): void {
    this.waiters.splice(0).forEach((w) => w());
  }
  async line(ms = WAIT_MS): Promise<string> {
    const deadline = now() + ms;
    for (;;) {
      const i = this.buf.indexOf('\n');
      if (i >= 0) {
        const l = this.buf.subarray(0, i).toString('latin1').replace(/\r$/, '');
        this.buf = this.buf.subarray(i + 1);
        return l;
      }
      if (this.ended) throw new Error(`connection ended; had ${JSON.stringify(this.buf.toString('latin1'))}`);
      const left = deadline - now();
      if (left <= 0) throw new Error(`no line in ${ms} ms; had ${JSON.stringify(this.buf.toString('latin1').slice(0, 80))}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }
  async expect(prefix: string): Promise<string> {
    const l = await this.line();
    if (!l.startsWith(prefix)) throw new Error(`expected ${prefix}, got ${JSON.stringify(l)}`);
    return l;
  }
  /** Everything from now on goes to `sink`, starting with what is buffered. */
  drainTo(sink: (chunk: Buffer) => void): void {
    this.sink = sink;
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    if (rest.length > 0) sink(rest);
  }
  detach(): Buffer {
    this.stream.off('data', this.onData);
    this.stream.off('end', this.onEnd);
    this.stream.off('error', this.onEnd);
    this.stream.off('close', this.onEnd);
    this.stream.pause();
    return this.buf;
  }
  closed(ms = WAIT_MS): Promise<void> {
    return within(ms, 'close', new Promise((r) => (this.stream.destroyed ? r() : this.stream.once('close', () => r()))));
  }
}

/** `p`, or an error after `ms`. */
export function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: nothing in ${ms} ms`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(t));
}

export function tcp(port: number): Socket {
  const s = connect({ port, host: '127.0.0.1' });
  s.setNoDelay(true);
  return s;
}

export function secure(opts: { socket: Socket } | { port: number; host: string }): Promise<TLSSocket> {
  const t = tlsConnect({ ...opts, servername: 'bench.example.test', rejectUnauthorized: false });
  t.setNoDelay(true);
  return within(
    WAIT_MS,
    'TLS handshake',
    new Promise<TLSSocket>((res, rej) => {
      t.once('secureConnect', () => res(t));
      t.once('error', rej);
    }),
  ).catch((e: unknown) => {
    t.destroy();
    throw e;
  });
}

/** Up to the point where the app's protocol runs under TLS (or, for the floors, after STARTTLS). */
export async function open(kind: Kind, port: number): Promise<Reader> {
  if (kind === 'implicit') {
    const r = new Reader(await secure({ port, host: '127.0.0.1' }));
    r.ppid = ppidOf(await r.expect('220 ').catch(fail(r)));
    return r;
  }
  const s = tcp(port);
  const plain = new Reader(s);
  let ppid = NaN;
  try {
    ppid = ppidOf(await plain.expect('220 '));
    s.write('STARTTLS\r\n');
    await plain.expect('220 go');
  } catch (e) {
    s.destroy();
    throw e;
  }
  plain.ppid = ppid;
  if (kind === 'plain') return plain;
  const rest = plain.detach();
  if (rest.length > 0) {
    s.destroy();
    throw new Error('plaintext after 220 go');
  }
  const r = new Reader(await secure({ socket: s }));
  r.ppid = ppid;
  return r;
}

/** The pid in the app's banner, "220 bench ppid=N". */
function ppidOf(banner: string): number {
  return Number(/ ppid=(\d+)/.exec(banner)?.[1] ?? NaN);
}

const fail =
  (r: Reader) =>
  (e: unknown): never => {
    r.stream.destroy();
    throw e;
  };

export async function quit(r: Reader): Promise<void> {
  r.stream.write('QUIT\r\n');
  await r.expect('221 ').catch(fail(r));
  await r.closed();
}

export async function ping(r: Reader): Promise<void> {
  r.stream.write('PING\r\n');
  await r.expect('250 pong').catch(fail(r));
}

/** `fn(i)` for i < n, at most `width` at a time; stops starting new ones after the first error. */
export async function pool(n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let error: unknown;
  const worker = async (): Promise<void> => {
    while (error === undefined && next < n) {
      const i = next++;
      try {
        await fn(i);
      } catch (e) {
        error ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, n) }, worker));
  if (error !== undefined) throw error;
}
