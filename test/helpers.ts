// Shared by the end-to-end tests: certificates, launchers, clients, reports.
import type { Test } from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { constants as osConstants, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';

export const ROOT = resolve(__dirname, '..', '..');
export const HELPER = join(ROOT, 'bin', 'ucspi-tls-wrap');
export const APP = join(ROOT, 'test', 'apps', 'smtp-app');

export function tempDir(t: { teardown(fn: () => void | Promise<void>): void }, prefix = 'utw-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  // Searchable by every user: the server's acceptor reads a rules file here as the workers' user.
  chmodSync(d, 0o755);
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

/** A promise that rejects after `ms`: a stuck step fails its test instead of hanging the run. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

/** A launcher process (tcpserver, systemd-socket-activate, xinetd, socat) serving on 127.0.0.1. */
export class Launcher {
  out = '';
  err = '';
  readonly proc: ChildProcess;
  /** Set when the process could not be started at all. */
  private gone = false;
  private exited: Promise<void>;
  constructor(cmd: string, args: string[], env: NodeJS.ProcessEnv) {
    this.proc = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    this.proc.stderr!.on('data', (d: Buffer) => (this.err += d.toString()));
    this.exited = new Promise((r) => {
      this.proc.once('exit', () => r());
      // Not started at all (no such program): one line in its log, as a shell would say.
      this.proc.once('error', (e) => {
        this.err += `${cmd}: ${e.message}\n`;
        this.gone = true;
        r();
      });
    });
  }
  get running(): boolean {
    return !this.gone && this.proc.exitCode === null && this.proc.signalCode === null;
  }
  async ready(port: number, host: '127.0.0.1' | '::1' = '127.0.0.1'): Promise<void> {
    // A listening socket shows in /proc/net/tcp(6) as state 0A; the address is printed as
    // 32-bit words in the machine's byte order.
    const hex = port.toString(16).toUpperCase().padStart(4, '0');
    const [table, address] = host === '::1' ? ['/proc/net/tcp6', '00000000000000000000000001000000'] : ['/proc/net/tcp', '0100007F'];
    const listening = new RegExp(`^\\s*\\d+: ${address}:${hex} 0+:0000 0A`, 'm');
    for (let i = 0; i < 400; i++) {
      if (listening.test(readFileSync(table, 'utf8'))) return;
      if (!this.running) throw new Error(`launcher exited: ${this.err}`);
      await sleep(25);
    }
    throw new Error(`launcher not listening on ${port}: ${this.err}`);
  }
  get pid(): number {
    return this.proc.pid!;
  }
  /** The launcher's exit: its status, or the signal that ended it. */
  async exit(): Promise<{ status: number | null; signal: NodeJS.Signals | null }> {
    await this.exited;
    return { status: this.proc.exitCode, signal: this.proc.signalCode };
  }
  async stop(): Promise<void> {
    if (this.running) this.proc.kill('SIGTERM');
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

/** tcpserver -v -R -H -l localhost 127.0.0.1 PORT CMD...; `prefix`: words before it (a shell that opens fds first). */
export async function tcpserver(port: number, env: NodeJS.ProcessEnv, cmd: string[], prefix: string[] = []): Promise<Launcher> {
  const [exe, ...args] = [...prefix, 'tcpserver', '-v', '-R', '-H', '-l', 'localhost', '127.0.0.1', String(port), ...cmd] as [string, ...string[]];
  const l = new Launcher(exe, args, env);
  await l.ready(port);
  return l;
}

export const SERVER = join(ROOT, 'bin', 'ucspi-tls-server');

/**
 * The test runner hooks every Node it starts through NODE_OPTIONS, and the hook writes into
 * the checkout at exit: a server's workers, run as nobody, cannot. The server runs as an
 * operator runs it, without the runner's hooks.
 */
export const WITHOUT_TEST_HOOKS = ['env', '-u', 'NODE_OPTIONS'];

/** One `end:` line of ucspi-tls-server: how a connection's app ended and what was relayed. */
export interface ServerEnd {
  /** The app's pid, which names the connection in the log. */
  pid: number;
  /** The app's exit code, or 128+N when signal N ended it (as a shell reports it). */
  status: number;
  signal: string | null;
  session: 'tls' | 'plaintext' | 'worker lost';
  toClient: number;
  toApp: number;
  seconds: number;
}

/** One `start:` line: the app's pid, the client's port and the worker that serves it. */
export interface ServerStart {
  pid: number;
  remotePort: number;
  worker: number;
}

/** Children of a process, from /proc. */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

/** A process and all it started (while they are its children). */
export function treeOf(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...childrenOf(out[i]!));
  return out;
}

/** Real, effective and saved uid of a process. */
export function uidsOf(pid: number): string {
  return /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))!.slice(1).join(' ');
}

/** ucspi-tls-server, started as tcpserver is, its log collected; its connections read from the log. */
export class ServerLauncher extends Launcher {
  /** Children of `pid` that run the same executable (node) as the acceptor does. */
  private nodeChildren(pid: number): number[] {
    const exe = readlinkSync(`/proc/${this.pid}/exe`);
    return childrenOf(pid).filter((p) => {
      try {
        return readlinkSync(`/proc/${p}/exe`) === exe;
      } catch {
        return false;
      }
    });
  }
  /** The spawner: the acceptor's one child, which starts the workers and the apps. */
  spawner(): number | undefined {
    return this.nodeChildren(this.pid)[0];
  }
  /** The TLS workers: the spawner's children that run node. */
  workers(): number[] {
    const s = this.spawner();
    return s === undefined ? [] : this.nodeChildren(s);
  }
  /** The apps running now (and zombies of them): the spawner's other children. */
  apps(): number[] {
    const s = this.spawner();
    if (s === undefined) return [];
    const workers = this.workers();
    return childrenOf(s).filter((p) => !workers.includes(p));
  }
  // Not anchored at the start of a line: the apps share the server's fd 2, and an app's
  // message written in pieces (GNU cat's 'cat: ' then the rest) may enclose a line of ours.
  starts(): ServerStart[] {
    return [...this.err.matchAll(/ucspi-tls-server: pid (\d+): start: \S+ port (\d+) -> \S+ port \d+, worker (\d+), \d+ of \d+$/gm)]
      .map((m) => ({ pid: Number(m[1]), remotePort: Number(m[2]), worker: Number(m[3]) }));
  }
  ends(): ServerEnd[] {
    const re = /ucspi-tls-server: pid (\d+): end: (exit (\d+)|signal (SIG[A-Z0-9]+)), (tls|plaintext|worker lost), (\d+) bytes to client, (\d+) bytes to app, ([\d.]+) s$/gm;
    return [...this.err.matchAll(re)].map((m) => ({
      pid: Number(m[1]),
      status: m[3] !== undefined ? Number(m[3]) : 128 + (osConstants.signals[m[4] as NodeJS.Signals] ?? 0),
      signal: m[4] ?? null,
      session: m[5] as ServerEnd['session'],
      toClient: Number(m[6]),
      toApp: Number(m[7]),
      seconds: Number(m[8]),
    }));
  }
  /** The end of the connection whose app has this pid, or else of the nth connection to end. */
  async end(which: { pid?: number; nth?: number } = {}, ms = 20000): Promise<ServerEnd> {
    for (let i = 0; i < ms / 20; i++) {
      const ends = this.ends();
      const e = which.pid !== undefined ? ends.find((x) => x.pid === which.pid) : ends[which.nth ?? 0];
      if (e !== undefined) return e;
      await sleep(20);
    }
    throw new Error(`no end line for ${JSON.stringify(which)} after ${ms} ms: ${this.err}`);
  }
  async start(nth = 0, ms = 20000): Promise<ServerStart> {
    for (let i = 0; i < ms / 20; i++) {
      const s = this.starts()[nth];
      if (s !== undefined) return s;
      await sleep(20);
    }
    throw new Error(`no start line ${nth} after ${ms} ms: ${this.err}`);
  }
  /**
   * SIGTERM, as an operator stops it: the launcher exits 0, and nothing it started (workers,
   * apps, their children) is left running. Returns what was still there, for the assertion.
   */
  async shutdown(ms = 15000): Promise<{ status: number | null; signal: NodeJS.Signals | null; left: number[] }> {
    const tree = this.running ? treeOf(this.pid) : [];
    await this.terminate();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), ms);
    const r = await this.exit();
    clearTimeout(timer);
    await allGone(tree, 5000);
    return { ...r, left: tree.filter(alive) };
  }
  /**
   * SIGTERM, and once the server says it stopped accepting a second one, as an operator in a
   * hurry: the apps get SIGTERM at once rather than after the grace period (--grace).
   */
  async terminate(): Promise<void> {
    if (!this.running) return;
    this.proc.kill('SIGTERM');
    for (let i = 0; i < 250 && this.running && !/ucspi-tls-server: SIGTERM: no longer accepting/.test(this.err); i++) await sleep(20);
    if (this.running && !/ucspi-tls-server: exiting$/m.test(this.err)) this.proc.kill('SIGTERM');
  }
  /** After a failed test: nothing of it may outlive the run. */
  override async stop(): Promise<void> {
    const tree = this.running ? treeOf(this.pid) : [];
    await this.terminate();
    await this.exit();
    if (!(await allGone(tree, 3000))) for (const p of tree.filter(alive)) process.kill(p, 'SIGKILL');
  }
}

export interface ServerOptions {
  host?: '127.0.0.1' | '::1';
  /** Words before the server's own: prlimit, or a shell that opens fds first. */
  prefix?: string[];
}

/** ucspi-tls-server FLAGS HOST PORT APP..., listening when this returns; stopped at teardown. */
export async function ucspiTlsServer(
  t: { teardown(fn: () => void | Promise<void>): void },
  port: number, env: NodeJS.ProcessEnv, flags: string[], app: string[], o: ServerOptions = {},
): Promise<ServerLauncher> {
  const host = o.host ?? '127.0.0.1';
  const argv = [...WITHOUT_TEST_HOOKS, SERVER, ...flags, host, String(port), ...app];
  const [cmd, ...args] = [...(o.prefix ?? []), ...argv] as [string, ...string[]];
  const l = new ServerLauncher(cmd, args, env);
  t.teardown(() => l.stop());
  await l.ready(port, host);
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
  /** 127.0.0.1 unless given. */
  host?: string;
  /** The client's own address (another loopback address, to tell it from a balancer's). */
  localAddress?: string;
  servername?: string;
  /** Half-open: the client may end its side and keep reading. */
  allowHalfOpen?: boolean;
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** Anything else for tls.connect: ALPN, ciphers, sigalgs, a client certificate. */
  tls?: ConnectionOptions;
  /** Sent first, before the banner comes: a PROXY protocol header, say. */
  first?: string;
}

/** Node's tls as the client: banner, EHLO, STARTTLS, handshake. */
export async function startTls(port: number, o: StartTlsOptions = {}): Promise<TLSSocket> {
  const sock = connect({ port, host: o.host ?? '127.0.0.1', allowHalfOpen: o.allowHalfOpen ?? false, ...(o.localAddress !== undefined ? { localAddress: o.localAddress } : {}) });
  if (o.first !== undefined) sock.write(o.first);
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

/**
 * The test app's SINK exchange over TLS: `bytes` random bytes to the app, then end (close_notify
 * and FIN), while the app's own bytes are hashed until its EOF. `sent` is the hash of what went.
 */
export async function sinkExchange(t: Test, tls: TLSSocket, bytes: number): Promise<{ sent: string; received: Promise<{ sha: string; bytes: number }> }> {
  const lines = new Lines(tls as unknown as Socket);
  tls.write('SINK\r\n');
  t.equal(await lines.line(), '354 send');
  lines.detach();
  tls.resume();
  const received = hashUntilEnd(tls);
  const sent = await sendRandom(tls, bytes);
  tls.end();
  return { sent, received };
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
