// Shared by the hostile-conditions tests: one launcher per case, the helper's own log lines,
// its exit status, and what is left running afterwards.
import type { Test } from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { APP, baseEnv, freePort, HELPER, Launcher, Lines, makeCert, sleep, tcpserver, tempDir, type Certs } from './helpers';


/**
 * OpenSSL's words for some errors, which the helper logs as OpenSSL gives them: OpenSSL 3.5
 * (Node 22.20 and later, 24, 26) says what 3.0 (Node 20) said in other words.
 */
export const OPENSSL_WORDS = process.versions.openssl.startsWith('3.0.')
  ? { handshakeFailureAlert: 'sslv3 alert handshake failure', recordTooLong: 'packet length too long' }
  : { handshakeFailureAlert: 'ssl/tls alert handshake failure', recordTooLong: 'encrypted length too long' };

export interface Served {
  dir: string;
  port: number;
  srv: Launcher;
  certs: Certs;
}

/** tcpserver on 127.0.0.1 running the helper (with `flags`) and an app that reports into `dir`. */
export async function serve(t: Test, env: Record<string, string> = {}, flags: string[] = [], app: string[] = [APP]): Promise<Served> {
  const dir = tempDir(t, 'utw-hostile-');
  const certs = makeCert(dir);
  const port = await freePort();
  const srv = await tcpserver(port, baseEnv(certs, { REPORT: dir, ...env }), [HELPER, ...flags, ...app]);
  t.teardown(() => srv.stop());
  t.teardown(() => killLeftovers(dir, srv.proc.pid));
  return { dir, port, srv, certs };
}

/** The pid tcpserver gave the nth connection (the helper's pid). */
export async function helperPid(srv: Launcher, nth = 0, ms = 10000): Promise<number> {
  for (let i = 0; i < ms / 20; i++) {
    const all = [...srv.err.matchAll(/^tcpserver: ok (\d+) /gm)];
    if (all.length > nth) return Number(all[nth]![1]);
    await sleep(20);
  }
  throw new Error(`no connection ${nth} in ${srv.err}`);
}

/** The helper's exit status, from tcpserver's `end PID status S` (a wait status). */
export async function endStatus(srv: Launcher, pid: number, ms = 20000): Promise<number> {
  const re = new RegExp(`^tcpserver: end ${pid} status (\\d+)$`, 'm');
  for (let i = 0; i < ms / 20; i++) {
    const m = re.exec(srv.err);
    if (m) {
      const w = Number(m[1]);
      return (w & 0x7f) !== 0 ? -(w & 0x7f) : w >> 8;
    }
    await sleep(20);
  }
  throw new Error(`helper ${pid} still running after ${ms} ms: ${srv.err}`);
}

/** What the helper with this pid logged, without the `ucspi-tls-wrap: pid N: ` prefix. */
export function helperLog(srv: Launcher, pid: number): string[] {
  const prefix = `ucspi-tls-wrap: pid ${pid}: `;
  return srv.err
    .split('\n')
    .filter((l) => l.startsWith(prefix))
    .map((l) => l.slice(prefix.length));
}

/** Every process whose environment carries REPORT=dir (the app, its children, a helper), but the launcher. */
export function processesOf(dir: string, launcher?: number): number[] {
  const needle = Buffer.from(`\0REPORT=${dir}\0`);
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const env = Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${name}/environ`), Buffer.from([0])]);
      if (env.includes(needle) && Number(name) !== launcher) out.push(Number(name));
    } catch {
      // gone, or a kernel thread
    }
  }
  return out;
}

/** Wait until nothing of this case runs any more (but its launcher); returns what is still there. */
export async function leftovers(s: { dir: string; srv: Launcher }, ms = 5000): Promise<number[]> {
  let left = processesOf(s.dir, s.srv.proc.pid);
  for (let i = 0; i < ms / 50 && left.length > 0; i++) {
    await sleep(50);
    left = processesOf(s.dir, s.srv.proc.pid);
  }
  return left;
}

export function killLeftovers(dir: string, launcher?: number): void {
  for (const pid of processesOf(dir, launcher)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Plaintext up to the app's `220 ready` after STARTTLS. */
export async function toStartTls(port: number): Promise<{ sock: Socket; lines: Lines }> {
  const sock = connect({ port, host: '127.0.0.1' });
  sock.on('error', () => {});
  const lines = new Lines(sock);
  await lines.reply('220');
  sock.write('STARTTLS\r\n');
  await lines.reply('220');
  lines.detach();
  return { sock, lines };
}

export function closed(sock: Socket): Promise<void> {
  // Paused, a socket never sees its EOF.
  sock.resume();
  return new Promise((r) => (sock.destroyed ? r() : sock.once('close', () => r())));
}

/** Private_Clean + Private_Dirty of a process, in bytes. */
export function privateBytes(pid: number): number {
  const s = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  let kb = 0;
  for (const m of s.matchAll(/^Private_(?:Clean|Dirty):\s+(\d+) kB$/gm)) kb += Number(m[1]);
  return kb * 1024;
}

/** Open fds of a process. */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

export { childrenOf } from './helpers';
export { prng } from './prng';

export interface HelloSpec {
  /** The record layer's version. */
  recordVersion?: number;
  /** ClientHello.client_version. */
  clientVersion?: number;
  suites?: number[];
  /** Extensions as [type, data]; the default: server name, groups, point formats, signature algorithms. */
  extensions?: Array<[number, Buffer]>;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

/** A ClientHello in one record, written byte by byte: for the versions Node's own client will not send. */
export function clientHello(spec: HelloSpec = {}): Buffer {
  const name = Buffer.from('mail.example.test');
  const extensions = spec.extensions ?? [
    [0x0000, Buffer.concat([u16(name.length + 3), Buffer.from([0]), u16(name.length), name])],
    [0x000a, Buffer.concat([u16(4), u16(0x001d), u16(0x0017)])],
    [0x000b, Buffer.from([1, 0])],
    [0x000d, Buffer.concat([u16(6), u16(0x0401), u16(0x0804), u16(0x0201)])],
  ];
  const ext = Buffer.concat(extensions.map(([type, data]) => Buffer.concat([u16(type), u16(data.length), data])));
  const suites = spec.suites ?? [0xc02f, 0xc013, 0x002f, 0x00ff];
  const body = Buffer.concat([
    u16(spec.clientVersion ?? 0x0303),
    Buffer.alloc(32, 7), // random
    Buffer.from([0]), // no session id
    u16(suites.length * 2),
    ...suites.map(u16),
    Buffer.from([1, 0]), // null compression
    ...(ext.length > 0 ? [u16(ext.length), ext] : []),
  ]);
  const hs = Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([0x16]), u16(spec.recordVersion ?? 0x0301), u16(hs.length), hs]);
}
