// `make bench`: the helper beside the Node floor and stunnel, every figure from this one run.
// Real connections on 127.0.0.1 through tcpserver; the app is bench/app.c.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { makePattern, PatternCheck, patternSlice } from './pattern';
import { implicitRatios, median, table, targets, targetTable, type Row } from './report';

const ROOT = resolve(__dirname, '..', '..');
const APP = join(ROOT, 'build', 'bench', 'app');
const HELPER = join(ROOT, 'bin', 'ucspi-tls-wrap');
const FLOOR = join(ROOT, 'bench', 'node-floor');
const TLS_FLOOR = join(ROOT, 'bench', 'node-tls-floor');

const MiB = 1024 * 1024;
const REPS = { banner: 25, session: 25, throughput: 5 };
const BULK = 256 * MiB;
const SLOW_BULK = 1024 * MiB;
/** The slow client's pace: well below what any of the rows delivers, so buffers fill. */
const SLOW_RATE = 128 * MiB;
const IDLE_CONNECTIONS = 20;
const CONCURRENT = 16;
const RATE_SECONDS = 4;

type Kind = 'starttls' | 'implicit' | 'plain';
interface Mode {
  name: string;
  kind: Kind;
  port: number;
  launcher?: ChildProcess;
  stderr: string;
}

const pattern = makePattern();
const now = (): number => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Lines from a stream, or everything it delivers into a sink once the protocol says so. */
class Reader {
  private buf: Buffer = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  private ended = false;
  sink: ((chunk: Buffer) => void) | undefined;
  constructor(readonly stream: Socket | TLSSocket) {
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('error', this.onEnd);
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
  async line(): Promise<string> {
    for (;;) {
      const i = this.buf.indexOf('\n');
      if (i >= 0) {
        const l = this.buf.subarray(0, i).toString('latin1').replace(/\r$/, '');
        this.buf = this.buf.subarray(i + 1);
        return l;
      }
      if (this.ended) throw new Error(`connection ended; had ${JSON.stringify(this.buf.toString('latin1'))}`);
      await new Promise<void>((r) => this.waiters.push(r));
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
    this.stream.pause();
    return this.buf;
  }
  closed(): Promise<void> {
    return new Promise((r) => (this.stream.destroyed ? r() : this.stream.once('close', () => r())));
  }
}

interface Open {
  r: Reader;
  /** The process in front of the app: the helper, stunnel or the floor. */
  pid: number;
}

function ppidOf(banner: string): number {
  const m = / ppid=(\d+)/.exec(banner);
  if (m === null) throw new Error(`no ppid in ${banner}`);
  return Number(m[1]);
}

function tcp(port: number): Socket {
  const s = connect({ port, host: '127.0.0.1' });
  s.setNoDelay(true);
  return s;
}

function secure(opts: { socket: Socket } | { port: number; host: string }): Promise<TLSSocket> {
  return new Promise((res, rej) => {
    const t = tlsConnect({ ...opts, servername: 'bench.example.test', rejectUnauthorized: false });
    t.setNoDelay(true);
    t.once('secureConnect', () => res(t));
    t.once('error', rej);
  });
}

/** Up to the point where the app's protocol runs under TLS (or, for the floor, after STARTTLS). */
async function open(m: Mode): Promise<Open> {
  if (m.kind === 'implicit') {
    const r = new Reader(await secure({ port: m.port, host: '127.0.0.1' }));
    return { r, pid: ppidOf(await r.expect('220 '))! };
  }
  const s = tcp(m.port);
  const plain = new Reader(s);
  const pid = ppidOf(await plain.expect('220 '));
  s.write('STARTTLS\r\n');
  await plain.expect('220 go');
  if (m.kind === 'plain') return { r: plain, pid };
  const rest = plain.detach();
  if (rest.length > 0) throw new Error('plaintext after 220 go');
  return { r: new Reader(await secure({ socket: s })), pid };
}

async function quit(o: Open): Promise<void> {
  o.r.stream.write('QUIT\r\n');
  await o.r.expect('221 ');
  await o.r.closed();
}

async function bannerMs(m: Mode): Promise<number> {
  const t0 = now();
  const stream = m.kind === 'implicit' ? await secure({ port: m.port, host: '127.0.0.1' }) : tcp(m.port);
  const r = new Reader(stream);
  await r.expect('220 ');
  const t = now() - t0;
  await quit({ r, pid: 0 });
  return t;
}

async function sessionMs(m: Mode): Promise<number> {
  const t0 = now();
  await quit(await open(m));
  return now() - t0;
}

async function toClientMiBs(m: Mode): Promise<number> {
  const o = await open(m);
  const check = new PatternCheck(pattern);
  const done = new Promise<void>((res) =>
    o.r.drainTo((c) => {
      check.update(c);
      if (check.bytes >= BULK) res();
    }),
  );
  const t0 = now();
  o.r.stream.write(`SEND ${BULK}\r\n`);
  await done;
  const t = now() - t0;
  if (!check.good || check.bytes !== BULK) throw new Error(`${m.name}: app→client bytes differ`);
  o.r.sink = undefined;
  await quit(o);
  return BULK / MiB / (t / 1000);
}

async function toAppMiBs(m: Mode): Promise<number> {
  const o = await open(m);
  const w = o.r.stream;
  const t0 = now();
  w.write(`RECV ${BULK}\r\n`);
  for (let sent = 0; sent < BULK; ) {
    const b = patternSlice(pattern, sent, Math.min(256 * 1024, BULK - sent));
    sent += b.length;
    if (!w.write(b)) await new Promise((r) => w.once('drain', r));
  }
  const verdict = await o.r.line();
  const t = now() - t0;
  if (verdict !== '250 ok') throw new Error(`${m.name}: client→app bytes differ: ${verdict}`);
  await quit(o);
  return BULK / MiB / (t / 1000);
}

/** Private_Clean + Private_Dirty, KiB. */
function privateKiB(pid: number): number {
  const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1');
  const get = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(t)?.[1] ?? NaN);
  return get('Private_Clean') + get('Private_Dirty');
}

async function idleKiB(m: Mode): Promise<number> {
  const open20: Open[] = [];
  for (let i = 0; i < IDLE_CONNECTIONS; i++) open20.push(await open(m));
  for (const o of open20) {
    o.r.stream.write('PING\r\n');
    await o.r.expect('250 pong');
  }
  await sleep(1000);
  const kib = open20.map((o) => privateKiB(o.pid));
  await Promise.all(open20.map(quit));
  return median(kib);
}

async function peakKiB(m: Mode): Promise<number> {
  const o = await open(m);
  const check = new PatternCheck(pattern);
  let peak = privateKiB(o.pid);
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, privateKiB(o.pid));
    } catch {
      // gone at the very end
    }
  }, 20);
  const stream = o.r.stream;
  const t0 = now();
  const done = new Promise<void>((res) =>
    o.r.drainTo((c) => {
      check.update(c);
      if (check.bytes >= SLOW_BULK) return res();
      // Ahead of the pace: stop reading until the pace catches up.
      const ahead = check.bytes / SLOW_RATE - (now() - t0) / 1000;
      if (ahead > 0) {
        stream.pause();
        setTimeout(() => stream.resume(), ahead * 1000);
      }
    }),
  );
  stream.write(`SEND ${SLOW_BULK}\r\n`);
  await done;
  clearInterval(sampler);
  if (!check.good || check.bytes !== SLOW_BULK) throw new Error(`${m.name}: slow bytes differ`);
  o.r.sink = undefined;
  await quit(o);
  return peak;
}

async function perSecond(m: Mode): Promise<number> {
  let count = 0;
  const t0 = now();
  const deadline = t0 + RATE_SECONDS * 1000;
  const worker = async (): Promise<void> => {
    while (now() < deadline) {
      await quit(await open(m));
      count++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENT }, worker));
  return count / ((now() - t0) / 1000);
}

function startLauncher(m: Mode, cmd: string[], env: NodeJS.ProcessEnv): void {
  const l = spawn('tcpserver', ['-R', '-H', '-l', 'localhost', '-c', '100', '127.0.0.1', String(m.port), ...cmd], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  l.stderr!.on('data', (d: Buffer) => (m.stderr = (m.stderr + d.toString()).slice(-4000)));
  m.launcher = l;
}

async function listening(port: number): Promise<void> {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
  for (let i = 0; i < 200; i++) {
    if (readFileSync('/proc/net/tcp', 'latin1').split('\n').some((l) => l.includes(hex) && / 0A /.test(l))) return;
    await sleep(25);
  }
  throw new Error(`nothing listens on ${port}`);
}

function machine(): string {
  const stunnel = spawnSync('stunnel4', ['-version'], { encoding: 'utf8' });
  const sv = /stunnel (\S+)/.exec(`${stunnel.stdout}${stunnel.stderr}`)?.[1] ?? '?';
  const model = cpus()[0]?.model.trim() ?? '?';
  return (
    `machine: ${model}, ${cpus().length} cores, ${Math.round(totalmem() / MiB / 1024)} GiB, Linux ${release()}; ` +
    `Node ${process.version}, OpenSSL ${process.versions.openssl}, stunnel ${sv}; load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`
  );
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'utw-bench-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=bench.example.test'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl req: ${r.stderr}`);
  const stunnelConf = join(dir, 'stunnel.conf');
  writeFileSync(stunnelConf, `pid =\nsyslog = no\ndebug = 0\ncert = ${cert}\nkey = ${key}\nexec = ${APP}\nexecArgs = app\nTIMEOUTclose = 0\n`);

  const base = 24000 + (process.pid % 2000) * 5;
  const modes: Mode[] = [
    { name: 'ucspi-tls-wrap (STARTTLS)', kind: 'starttls', port: base, stderr: '' },
    { name: 'ucspi-tls-wrap --implicit', kind: 'implicit', port: base + 1, stderr: '' },
    { name: 'stunnel (implicit, inetd mode)', kind: 'implicit', port: base + 2, stderr: '' },
    { name: 'Node floor (spawn only, no TLS)', kind: 'plain', port: base + 3, stderr: '' },
    { name: 'Node TLS floor (spawn, bare tls)', kind: 'starttls', port: base + 4, stderr: '' },
  ];
  const env = { PATH: process.env.PATH, CERTFILE: cert, KEYFILE: key };
  startLauncher(modes[0]!, [HELPER, APP], { ...env, BENCH_MODE: 'starttls' });
  startLauncher(modes[1]!, [HELPER, '--implicit', APP], env);
  startLauncher(modes[2]!, ['stunnel4', stunnelConf], env);
  startLauncher(modes[3]!, [FLOOR, APP], env);
  startLauncher(modes[4]!, [TLS_FLOOR, APP], { ...env, BENCH_MODE: 'starttls' });
  const stop = (): void => {
    for (const m of modes) m.launcher?.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    stop();
    process.exit(130);
  });

  try {
    await Promise.all(modes.map((m) => listening(m.port)));
    const head = machine();
    console.log(head);
    console.log(`RSA 2048 certificate; TLS as the two ends negotiate it; tcpserver 127.0.0.1; medians of ${REPS.banner} (latency), ${REPS.throughput} (throughput)`);
    // Warm the page cache and each launcher once.
    for (const m of modes) await sessionMs(m);

    const rows: Row[] = modes.map((m) => ({ name: m.name, bannerMs: NaN, sessionMs: NaN, toClient: NaN, toApp: NaN, idleKiB: NaN, peakKiB: NaN, perSecond: NaN }));
    // BENCH_STEPS=banner,session,... runs only those (while working on one figure).
    const only = process.env.BENCH_STEPS?.split(',');
    /** The median of `reps` runs of `measure` per mode, interleaved: a noisy moment hits every row alike. */
    const step = async (what: string, reps: number, measure: (m: Mode) => Promise<number>, set: (row: Row, value: number) => void): Promise<void> => {
      if (only !== undefined && !only.includes(what)) return;
      const t0 = now();
      const got = modes.map((): number[] => []);
      for (let rep = 0; rep < reps; rep++) for (let i = 0; i < modes.length; i++) got[i]!.push(await measure(modes[i]!));
      got.forEach((xs, i) => set(rows[i]!, median(xs)));
      process.stderr.write(`bench: ${what} (${((now() - t0) / 1000).toFixed(1)} s)\n`);
    };
    await step('banner', REPS.banner, bannerMs, (r, v) => (r.bannerMs = v));
    await step('session', REPS.session, sessionMs, (r, v) => (r.sessionMs = v));
    await step('app→client', REPS.throughput, toClientMiBs, (r, v) => (r.toClient = v));
    await step('client→app', REPS.throughput, toAppMiBs, (r, v) => (r.toApp = v));
    await step('idle memory', 1, idleKiB, (r, v) => (r.idleKiB = v));
    await step('slow 1 GiB', 1, peakKiB, (r, v) => (r.peakKiB = v));
    await step('sessions/s', 1, perSecond, (r, v) => (r.perSecond = v));

    console.log('');
    console.log(table(rows));
    console.log('');
    console.log('banner: connect to the app\'s first byte (implicit rows: through the TLS handshake). session: connect, banner, STARTTLS,');
    console.log('handshake, one line, close (floor: the same lines without TLS; implicit rows: handshake, banner, one line, close).');
    console.log(`throughput: ${BULK / MiB} MiB each way, bytes checked (floor: plaintext, the app on the socket). memory: Private_Clean +`);
    console.log(`Private_Dirty of the process in front of the app; idle: median of ${IDLE_CONNECTIONS} open TLS connections; peak: ${SLOW_BULK / MiB} MiB to a client reading ${SLOW_RATE / MiB} MiB/s.`);
    console.log('');
    console.log(targetTable(targets(rows[0]!, rows[3]!, rows[2]!)));
    console.log('');
    console.log('The same targets for the Node TLS floor, the least a Node helper with TLS costs here:');
    console.log('');
    console.log(targetTable(targets(rows[4]!, rows[3]!, rows[2]!)));
    console.log('');
    console.log(implicitRatios(rows[1]!, rows[2]!));
    console.log(`load at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  } catch (e) {
    for (const m of modes) if (m.stderr !== '') process.stderr.write(`${m.name} log:\n${m.stderr}\n`);
    throw e;
  } finally {
    stop();
  }
}

main().catch((e: unknown) => {
  console.error(`bench: ${(e as Error).stack ?? String(e)}`);
  process.exit(1);
});
