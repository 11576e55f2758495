// Shared by the end-to-end tests: certificates, launchers, clients, reports.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';

export const ROOT = resolve(__dirname, '..', '..');
export const HELPER = join(ROOT, 'bin', 'ucspi-tls-wrap');
export const APP = join(ROOT, 'test', 'apps', 'smtp-app');

export function tempDir(t: { teardown(fn: () => void | Promise<void>): void }, prefix = 'utw-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  // An app of the last session may still be writing its report: try again, each time from
  // the top (rmSync's own retries never list the folder again), for a few seconds at most.
  // A failure here must not skip the teardowns after it (a launcher left running hangs the run).
  t.teardown(async () => {
    for (let i = 0; i < 50; i++) {
      try {
        rmSync(d, { recursive: true, force: true });
        return;
      } catch {
        await sleep(100);
      }
    }
    // a leftover folder in /tmp is harmless
  });
  return d;
}

export interface Certs {
  cert: string;
  key: string;
}

/** A throwaway self-signed RSA certificate, made by openssl(1). */
export function makeCert(dir: string, subject = '/C=DE/O=Example Org/OU=Mail/CN=mail.example.test'): Certs {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const r = spawnSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
    '-days', '30', '-subj', subject, '-addext', 'subjectAltName=DNS:mail.example.test',
  ], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
  return { cert, key };
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => res(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A launcher process (tcpserver, systemd-socket-activate, xinetd, socat) serving on 127.0.0.1. */
export class Launcher {
  out = '';
  err = '';
  readonly proc: ChildProcess;
  private exited: Promise<void>;
  constructor(cmd: string, args: string[], env: NodeJS.ProcessEnv) {
    this.proc = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    this.proc.stderr!.on('data', (d: Buffer) => (this.err += d.toString()));
    this.exited = new Promise((r) => this.proc.once('exit', () => r()));
  }
  async ready(port: number): Promise<void> {
    for (let i = 0; i < 200; i++) {
      // A listening socket shows in /proc/net/tcp as state 0A.
      const hex = port.toString(16).toUpperCase().padStart(4, '0');
      const tcp = readFileSync('/proc/net/tcp', 'utf8');
      if (new RegExp(`^\\s*\\d+: 0100007F:${hex} 00000000:0000 0A`, 'm').test(tcp)) return;
      if (this.proc.exitCode !== null) throw new Error(`launcher exited: ${this.err}`);
      await sleep(25);
    }
    throw new Error(`launcher not listening on ${port}: ${this.err}`);
  }
  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGTERM');
    await this.exited;
  }
}

/**
 * A copy of the test app that another user can run: the checkout may sit in a folder only
 * root may enter (root's home is 0700), and tests that start the app as nobody need one.
 */
export function appForAnyUser(t: { teardown(fn: () => void | Promise<void>): void }): string {
  const dir = tempDir(t, 'utw-app-');
  chmodSync(dir, 0o755);
  const app = join(dir, 'smtp-app');
  copyFileSync(APP, app);
  chmodSync(app, 0o755);
  return app;
}

export function baseEnv(certs: Certs, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, CERTFILE: certs.cert, KEYFILE: certs.key, ...extra };
}

export async function tcpserver(port: number, env: NodeJS.ProcessEnv, cmd: string[]): Promise<Launcher> {
  const l = new Launcher('tcpserver', ['-v', '-R', '-H', '-l', 'localhost', '127.0.0.1', String(port), ...cmd], env);
  await l.ready(port);
  return l;
}

/** A line-reader over a plaintext socket that never reads past what it returns. */
export class Lines {
  private buf: Buffer = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  private ended = false;
  constructor(private readonly sock: Socket) {
    sock.on('data', this.onData);
    sock.on('end', this.onEnd);
    sock.on('error', this.onEnd);
  }
  private onData = (d: Buffer): void => {
    this.buf = Buffer.concat([this.buf, d]);
    this.waiters.splice(0).forEach((w) => w());
  };
  private onEnd = (): void => {
    this.ended = true;
    this.waiters.splice(0).forEach((w) => w());
  };
  async line(): Promise<string> {
    for (;;) {
      const i = this.buf.indexOf('\n');
      if (i >= 0) {
        const l = this.buf.subarray(0, i + 1).toString('latin1');
        this.buf = this.buf.subarray(i + 1);
        return l.replace(/\r?\n$/, '');
      }
      if (this.ended) throw new Error(`connection ended; had ${JSON.stringify(this.buf.toString('latin1'))}`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }
  /** Read lines until one starts with the prefix followed by a space. */
  async reply(code: string): Promise<string[]> {
    const got: string[] = [];
    for (;;) {
      const l = await this.line();
      got.push(l);
      if (l.startsWith(`${code} `)) return got;
      if (!l.startsWith(`${code}-`)) throw new Error(`expected ${code}, got ${JSON.stringify(got)}`);
    }
  }
  /** Stop reading lines; returns what arrived past the last line. */
  detach(): Buffer {
    this.sock.off('data', this.onData);
    this.sock.off('end', this.onEnd);
    this.sock.off('error', this.onEnd);
    this.sock.pause();
    return this.buf;
  }
}

export interface StartTlsOptions {
  servername?: string;
  /** Half-open: the client may end its side and keep reading. */
  allowHalfOpen?: boolean;
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** Anything else for tls.connect: ALPN, ciphers, sigalgs, a client certificate. */
  tls?: ConnectionOptions;
}

/** Node's tls as the client: banner, EHLO, STARTTLS, handshake. */
export async function startTls(port: number, o: StartTlsOptions = {}): Promise<TLSSocket> {
  const sock = connect({ port, host: '127.0.0.1', allowHalfOpen: o.allowHalfOpen ?? false });
  const lines = new Lines(sock);
  await lines.reply('220');
  sock.write('EHLO client.test\r\n');
  await lines.reply('250');
  sock.write('STARTTLS\r\n');
  await lines.reply('220');
  const rest = lines.detach();
  if (rest.length !== 0) throw new Error(`unexpected plaintext after 220: ${JSON.stringify(rest.toString('latin1'))}`);
  return new Promise((res, rej) => {
    const t = tlsConnect({
      socket: sock,
      servername: o.servername ?? 'mail.example.test',
      rejectUnauthorized: false,
      ...(o.maxVersion ? { maxVersion: o.maxVersion } : {}),
      ...o.tls,
    });
    t.once('secureConnect', () => res(t));
    t.once('error', rej);
  });
}

/** Send `bytes` random bytes on a writable, returning their sha256. */
export async function sendRandom(w: NodeJS.WritableStream, bytes: number): Promise<string> {
  const h = createHash('sha256');
  const chunk = 64 * 1024;
  for (let sent = 0; sent < bytes; sent += chunk) {
    const b = randomBytes(Math.min(chunk, bytes - sent));
    h.update(b);
    if (!w.write(b)) await new Promise((r) => w.once('drain', r));
  }
  return h.digest('hex');
}

/** Hash everything a readable delivers until EOF; the bytes after the first `skip` line are hashed. */
export function hashUntilEnd(r: NodeJS.ReadableStream): Promise<{ sha: string; bytes: number }> {
  return new Promise((res, rej) => {
    const h = createHash('sha256');
    let bytes = 0;
    r.on('data', (d: Buffer) => {
      h.update(d);
      bytes += d.length;
    });
    r.once('end', () => res({ sha: h.digest('hex'), bytes }));
    r.once('error', rej);
  });
}

export async function waitFor(file: string, ms = 10000): Promise<string> {
  for (let i = 0; i < ms / 20; i++) {
    if (existsSync(file)) {
      const s = readFileSync(file, 'utf8');
      if (s !== '') return s;
    }
    await sleep(20);
  }
  throw new Error(`no ${file} after ${ms} ms`);
}

export function readReport(dir: string, name: string): string {
  return readFileSync(join(dir, name), 'utf8');
}

/** Variables from the raw `Y` reply. */
export function replyVars(raw: Buffer): Map<string, string> {
  const m = new Map<string, string>();
  for (const item of raw.toString('utf8').split('\0')) {
    if (item === '') break;
    const i = item.indexOf('=');
    m.set(item.slice(0, i), item.slice(i + 1));
  }
  return m;
}

/** The fds the app had, less bash's own copy of its script (fd 255). */
export function appFds(dir: string): string[] {
  return readReport(dir, 'fds')
    .trim()
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((fd) => fd !== '255')
    .sort((a, b) => Number(a) - Number(b));
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** After a session: the app and its helper are gone. */
export async function allGone(pids: number[], ms = 5000): Promise<boolean> {
  for (let i = 0; i < ms / 20; i++) {
    if (pids.every((p) => !alive(p))) return true;
    await sleep(20);
  }
  return false;
}

export interface Session {
  protocol: string | null;
  cipher: string;
  /** The server certificate the client got. */
  cert: Buffer;
  alpn: string | false | null;
  /** The key exchange as the client saw it (Node tells only the client side). */
  keyInfo: ReturnType<TLSSocket['getEphemeralKeyInfo']>;
  /** The app's answer to one line sent through TLS. */
  answer: string;
  vars: Map<string, string>;
}

/** STARTTLS, one line through TLS and its answer, QUIT; with the app's reply variables. */
export async function tlsSession(port: number, dir: string, o: StartTlsOptions = {}): Promise<Session> {
  const t = await startTls(port, o);
  const lines = new Lines(t as unknown as Socket);
  t.write('NOOP\r\n');
  const answer = await lines.line();
  const s: Session = {
    protocol: t.getProtocol(),
    cipher: t.getCipher().name,
    cert: t.getPeerCertificate().raw,
    alpn: t.alpnProtocol,
    keyInfo: t.getEphemeralKeyInfo(),
    answer,
    vars: replyVars(readFileSync(join(dir, 'reply'))),
  };
  t.write('QUIT\r\n');
  await lines.line();
  t.destroy();
  return s;
}

/** The DER of the first certificate in a PEM file. */
export function pemDer(file: string): Buffer {
  const m = /-----BEGIN CERTIFICATE-----([^-]+)-----END CERTIFICATE-----/.exec(readFileSync(file, 'latin1'));
  if (m === null) throw new Error(`no certificate in ${file}`);
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}

/** Wait until a launcher's stderr matches. */
export async function logged(l: Launcher, re: RegExp, ms = 5000): Promise<boolean> {
  for (let i = 0; i < ms / 20; i++) {
    if (re.test(l.err)) return true;
    await sleep(20);
  }
  return false;
}


export const CLIENT = join(ROOT, 'bin', 'ucspi-tls-client');
export const DEMO = join(ROOT, 'demo', 'smtp-demo');
export const RELAY_CLIENT = join(ROOT, 'build', 'test', 'apps', 'relay-client.js');

export interface Finished {
  status: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

/** Run a command to its end (tcpclient and a client app), with a limit. */
export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, ms = 30000): Promise<Finished> {
  return new Promise((res) => {
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), ms);
    p.once('close', (status, signal) => {
      clearTimeout(timer);
      res({ status, signal, out, err });
    });
  });
}

/** tcpclient, ucspi-tls-client and the test client app, to 127.0.0.1:port. */
export function relayClient(port: number, env: NodeJS.ProcessEnv, helperArgs: string[], tcpclientArgs = ['-RH']): Promise<Finished> {
  return run('tcpclient', [...tcpclientArgs, '127.0.0.1', String(port), CLIENT, ...helperArgs, process.execPath, RELAY_CLIENT], env);
}
