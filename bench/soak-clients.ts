// `make soak`: the clients, one function per kind of session. Each records what it saw into
// its Session (the client's port as soon as it has one, so that the server's log can be
// matched) and never throws: a failure is recorded, the verdict comes later from the log.
import { spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { now, Reader, secure, tcp, within, WAIT_MS } from './client';
import { makePattern, PatternCheck, patternSlice } from './pattern';
import type { Kind } from './servers';
import type { Expect } from './soak-log';
import { sameSerial } from './soak-log';

const KiB = 1024;
const MiB = 1024 * KiB;
const pattern = makePattern();

export type SessionKind = 'bulk' | 'slow reader' | 'quick' | 'idle' | 'vanish' | 'hostile' | 'openssl s_client' | 'swaks';

export interface Session {
  kind: SessionKind;
  /** The server's row: STARTTLS or implicit. */
  mode: Exclude<Kind, 'plain'>;
  expect: Expect;
  /** Start lines the server had logged before the client connected (see ServerLog.startFrom). */
  mark: number;
  /** The client's port (Node clients) or the app's pid (the external ones). */
  port?: number;
  pid?: number;
  ok: boolean;
  error?: string;
  /** When the TLS handshake began, and the serial of the certificate the client got (as the client and as the app saw it). */
  handshakeAt?: number;
  serial?: string;
  /** What the fault was, for the hostile and vanishing kinds. */
  variant?: string;
}

export interface Target {
  mode: Exclude<Kind, 'plain'>;
  port: number;
  /** The number of start lines its log holds now. */
  mark(): number;
}

export function newSession(kind: SessionKind, t: Target, expect: Expect): Session {
  return { kind, mode: t.mode, expect, mark: t.mark(), ok: false };
}

/** A TCP connection to 127.0.0.1:port, its local port recorded once connected. */
async function connected(port: number, s: Session): Promise<Socket> {
  const sock = tcp(port);
  sock.on('error', () => undefined);
  await within(
    WAIT_MS,
    'connect',
    new Promise<void>((res, rej) => {
      sock.once('connect', () => res());
      sock.once('error', rej);
    }),
  ).catch((e: unknown) => {
    sock.destroy();
    throw e;
  });
  s.port = sock.localPort;
  return sock;
}

/** Up to where the app's protocol runs under TLS: banner, STARTTLS, handshake (or the handshake, then the banner). */
async function openTls(t: Target, s: Session): Promise<{ r: Reader; raw: Socket; tls: TLSSocket }> {
  const raw = await connected(t.port, s);
  try {
    if (t.mode === 'starttls') {
      const plain = new Reader(raw);
      await plain.expect('220 ');
      raw.write('STARTTLS\r\n');
      await plain.expect('220 go');
      if (plain.detach().length > 0) throw new Error('plaintext after 220 go');
    }
    s.handshakeAt = now();
    const tls = await secure({ socket: raw });
    tls.on('error', () => undefined);
    s.serial = tls.getPeerCertificate().serialNumber;
    const r = new Reader(tls);
    if (t.mode === 'implicit') await r.expect('220 ');
    return { r, raw, tls };
  } catch (e) {
    raw.destroy();
    throw e;
  }
}

/** The app's SERIAL answer: SSL_SERVER_M_SERIAL must name the certificate the client got. */
async function checkSerial(r: Reader, s: Session): Promise<void> {
  r.stream.write('SERIAL\r\n');
  const l = await r.expect('250 serial=');
  const app = /^250 serial=(\S*)/.exec(l)![1]!;
  if (!sameSerial(app, s.serial ?? '')) throw new Error(`the app saw serial ${app}, the client ${s.serial}`);
}

async function quit(r: Reader): Promise<void> {
  r.stream.write('QUIT\r\n');
  await r.expect('221 ');
  await r.closed();
}

/** Runs `body` with the session's TLS connection; records success or the error; always closes. */
async function withTls(t: Target, s: Session, ms: number, body: (c: { r: Reader; raw: Socket; tls: TLSSocket }) => Promise<void>): Promise<Session> {
  let c: { r: Reader; raw: Socket; tls: TLSSocket } | undefined;
  try {
    await within(ms, s.kind, (async () => {
      c = await openTls(t, s);
      await body(c);
    })());
    s.ok = true;
  } catch (e) {
    s.error = (e as Error).message;
  } finally {
    c?.raw.destroy();
  }
  return s;
}

/** Handshake, PING, SERIAL, QUIT. */
export function quick(t: Target): Promise<Session> {
  const s = newSession('quick', t, 'finish');
  return withTls(t, s, 30000, async ({ r }) => {
    r.stream.write('PING\r\n');
    await r.expect('250 pong');
    await checkSerial(r, s);
    await quit(r);
  });
}

/** `bytes` to the app (it compares each with the pattern), then `bytes` back (compared here), as fast as both go. */
export function bulk(t: Target, bytes: number): Promise<Session> {
  const s = newSession('bulk', t, 'finish');
  return withTls(t, s, 60000 + bytes / MiB * 2000, async ({ r, tls }) => {
    await checkSerial(r, s);
    tls.write(`RECV ${bytes}\r\n`);
    for (let sent = 0; sent < bytes; ) {
      const b = patternSlice(pattern, sent, Math.min(256 * KiB, bytes - sent));
      sent += b.length;
      if (!tls.write(b)) await new Promise((res) => tls.once('drain', res));
    }
    const verdict = await r.line(30000);
    if (verdict !== '250 ok') throw new Error(`client→app bytes differ: ${verdict}`);
    await receive(r, bytes, Infinity);
    await quit(r);
  });
}

/** `bytes` from the app, read at most `perSecond` bytes a second (the reader pauses the socket: the server must hold back). */
export function slowReader(t: Target, bytes: number, perSecond: number): Promise<Session> {
  const s = newSession('slow reader', t, 'finish');
  return withTls(t, s, 60000 + (bytes / perSecond) * 1000, async ({ r }) => {
    await checkSerial(r, s);
    await receive(r, bytes, perSecond);
    await quit(r);
  });
}

/** SEND `bytes`, checked against the pattern as they arrive, paced to `perSecond`. */
async function receive(r: Reader, bytes: number, perSecond: number): Promise<void> {
  const check = new PatternCheck(pattern);
  const t0 = now();
  const stream = r.stream;
  await new Promise<void>((res, rej) => {
    const ended = (): void => rej(new Error(`connection ended after ${check.bytes} of ${bytes} bytes`));
    stream.once('close', ended);
    r.drainTo((c) => {
      check.update(c);
      if (check.bytes >= bytes) {
        stream.off('close', ended);
        r.sink = undefined;
        // The app writes nothing after the bytes until the next command: more is wrong.
        if (check.bytes > bytes) check.good = false;
        return res();
      }
      const ahead = check.bytes / perSecond * 1000 - (now() - t0);
      if (ahead > 20) {
        stream.pause();
        setTimeout(() => stream.resume(), ahead);
      }
    });
    stream.write(`SEND ${bytes}\r\n`);
  });
  if (!check.good) throw new Error('app→client bytes differ');
}

/** A client that goes away mid-transfer: a reset, or just gone (FIN, no close_notify), while receiving or while sending. */
export function vanish(t: Target): Promise<Session> {
  const s = newSession('vanish', t, 'vanish');
  const variants = ['reset while receiving', 'gone while receiving', 'reset while sending', 'gone while sending'] as const;
  const v = variants[randomInt(variants.length)]!;
  s.variant = v;
  const cut = randomInt(16 * KiB, MiB);
  return withTls(t, s, 30000, async ({ r, raw, tls }) => {
    await checkSerial(r, s);
    if (v.endsWith('receiving')) {
      let got = 0;
      await new Promise<void>((res, rej) => {
        tls.once('close', () => rej(new Error('closed by the server first')));
        r.drainTo((c) => {
          got += c.length;
          if (got >= cut) res();
        });
        tls.write(`SEND ${64 * MiB}\r\n`);
      });
    } else {
      tls.write(`RECV ${64 * MiB}\r\n`);
      for (let sent = 0; sent < cut; ) {
        const b = patternSlice(pattern, sent, Math.min(64 * KiB, cut - sent));
        sent += b.length;
        if (!tls.write(b)) await new Promise((res) => tls.once('drain', res));
      }
    }
    if (v.startsWith('reset')) raw.resetAndDestroy();
    else raw.destroy();
  });
}

/** Bytes that are no TLS handshake where the ClientHello belongs: the server must close, with no TLS and no hang. */
export function hostile(t: Target, timeoutSeconds: number): Promise<Session> {
  const s = newSession('hostile', t, 'hostile');
  const variants = ['garbage', 'truncated record, then EOF', 'truncated record, then silence'] as const;
  // The silent one waits out the handshake timeout: one in six.
  const v = randomInt(6) === 0 ? variants[2] : variants[randomInt(2)]!;
  s.variant = v;
  return (async () => {
    let raw: Socket | undefined;
    try {
      await within((timeoutSeconds + 20) * 1000, 'hostile', (async () => {
        raw = await connected(t.port, s);
        const sock = raw;
        const closed = new Promise<void>((res) => sock.once('close', () => res()));
        sock.on('data', () => undefined);
        if (t.mode === 'starttls') {
          const plain = new Reader(sock);
          await plain.expect('220 ');
          sock.write('STARTTLS\r\n');
          await plain.expect('220 go');
          plain.detach();
          sock.resume();
        }
        if (v === 'garbage') {
          // Anything but a handshake record: its first byte is never 0x16.
          const b = randomBytes(randomInt(1, 4 * KiB));
          if (b[0] === 0x16) b[0] = 0x17;
          sock.write(b);
        } else {
          // A handshake record header announcing 16 KiB, and only part of it.
          sock.write(Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01]), randomBytes(randomInt(10, 2000))]));
          if (v === 'truncated record, then EOF') sock.end();
        }
        await closed;
      })());
      s.ok = true;
    } catch (e) {
      s.error = (e as Error).message;
    } finally {
      raw?.destroy();
    }
    return s;
  })();
}

/** The idle connections: opened, held, pinged now and then, and closed with QUIT at the end. */
export class Idle {
  readonly s: Session;
  private c: { r: Reader; raw: Socket; tls: TLSSocket } | undefined;
  constructor(private readonly t: Target) {
    this.s = newSession('idle', t, 'finish');
  }
  async open(): Promise<boolean> {
    try {
      this.c = await within(30000, 'idle: open', openTls(this.t, this.s));
      await within(WAIT_MS, 'idle: serial', checkSerial(this.c.r, this.s));
      return true;
    } catch (e) {
      return this.fail(e);
    }
  }
  async ping(): Promise<boolean> {
    if (this.c === undefined) return false;
    try {
      this.c.r.stream.write('PING\r\n');
      await this.c.r.expect('250 pong');
      return true;
    } catch (e) {
      return this.fail(e);
    }
  }
  async close(): Promise<void> {
    if (this.c === undefined) return;
    try {
      await quit(this.c.r);
      this.s.ok = true;
    } catch (e) {
      this.fail(e);
    } finally {
      this.c.raw.destroy();
      this.c = undefined;
    }
  }
  private fail(e: unknown): false {
    this.s.error = (e as Error).message;
    this.c?.raw.destroy();
    this.c = undefined;
    return false;
  }
}

/** A command to its end, its output and status; killed after `ms`. */
function run(cmd: string, args: string[], input: string, ms: number): Promise<{ status: number | null; out: string }> {
  return new Promise((res) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
    p.stderr.on('data', (d: Buffer) => (out += d.toString('latin1')));
    p.stdin.on('error', () => undefined);
    p.stdin.end(input);
    const timer = setTimeout(() => p.kill('SIGKILL'), ms);
    p.on('error', (e) => (out += `${cmd}: ${e.message}\n`));
    p.once('close', (status) => {
      clearTimeout(timer);
      res({ status, out });
    });
  });
}

/** openssl s_client (-starttls smtp on the STARTTLS row): PING, SERIAL, QUIT through TLS. */
export async function opensslClient(t: Target): Promise<Session> {
  const s = newSession('openssl s_client', t, 'finish');
  const args = ['s_client', '-connect', `127.0.0.1:${t.port}`, '-servername', 'bench.example.test', '-quiet', '-ign_eof', ...(t.mode === 'starttls' ? ['-starttls', 'smtp'] : [])];
  s.handshakeAt = now();
  const r = await run('openssl', args, 'PING\r\nSERIAL\r\nQUIT\r\n', 30000);
  const serial = /^250 serial=(\S*) pid=(\d+)/m.exec(r.out);
  s.pid = serial !== null ? Number(serial[2]) : undefined;
  s.serial = serial?.[1];
  s.ok = r.status === 0 && /^250 pong\r?$/m.test(r.out) && serial !== null && serial[1] !== '' && /^221 bye\r?$/m.test(r.out);
  if (!s.ok) s.error = `openssl s_client: status ${r.status}: ${r.out.slice(-300)}`;
  return s;
}

/** swaks: one message over STARTTLS (--tls) or implicit TLS (--tls-on-connect). */
export async function swaksClient(t: Target): Promise<Session> {
  const s = newSession('swaks', t, 'finish');
  const args = ['--server', '127.0.0.1', '--port', String(t.port), t.mode === 'starttls' ? '--tls' : '--tls-on-connect', '--to', 'soak@example.test', '--from', 'load@example.test', '--helo', 'client.example.test', '--timeout', '20'];
  s.handshakeAt = now();
  const r = await run('swaks', args, '', 40000);
  const pid = /220 bench ppid=\d+ pid=(\d+)/.exec(r.out);
  s.pid = pid !== null ? Number(pid[1]) : undefined;
  s.ok = r.status === 0 && /250 queued/.test(r.out) && /221 bye/.test(r.out);
  if (!s.ok) s.error = `swaks: status ${r.status}: ${r.out.slice(-300)}`;
  return s;
}

