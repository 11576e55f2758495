// Memory with slow readers. The helper's private memory (Private_Clean + Private_Dirty of
// /proc/PID/smaps_rollup) is sampled while the app writes as fast as it can to a client that
// reads at a given pace, and while the client writes as fast as it can to an app that reads
// at a given pace: stalled, 64 KiB/s, 1 MiB/s, and as fast as it can. Whatever the pace, the
// relay adds at most a few MiB to what the helper holds once TLS is up, and the helper holds
// less than 8 MiB more than the Node floor (a Node process that only spawns the app); the
// figures are in the comments. Every byte is
// checked at the end. The app reader keeps four chunks with the peer at most and reuses its
// buffers; bytes the app wrote before TLS go out first; and where V8 gives no collector, the
// relay still runs, byte for byte.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as netConnect, createServer, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { readReused } from '../src/session/app-reader';
import { ChunkSource } from './chunks';
import { baseEnv, freePort, HELPER, Launcher, makeCert, ROOT, sleep, tempDir, waitFor } from './helpers';
import { endStatus, helperLog, helperPid, killLeftovers, leftovers, privateBytes, toStartTls, type Served } from './hostile';

const PACE_APP = [process.execPath, join(ROOT, 'build', 'test', 'apps', 'pace-app.js')];
const KiB = 1024;
const MiB = 1024 * KiB;
/** How long each pace is kept up while memory is sampled. */
const SAMPLE_MS = 3000;
/**
 * What the relay may add to the helper's memory once TLS is up: 8 MiB, less a margin of 2
 * for the slow and stalled readers. A fast transfer also makes V8 compile the relay's path
 * and fill its young generation, once per process, so it gets the 8.
 */
const BOUND = 8 * MiB;
const MARGIN = 2 * MiB;
/** What the helper may hold beyond the Node floor, whatever the pace: 8 MiB, less a margin of 1. */
const ABOVE_FLOOR = 8 * MiB - 1 * MiB;
const FAST = Number.POSITIVE_INFINITY;
const PACES: Array<[string, number]> = [
  ['stalled', 0],
  ['64 KiB/s', 64 * KiB],
  ['1 MiB/s', MiB],
  ['as fast as it can', FAST],
];

// The test runner puts its own module hooks into NODE_OPTIONS of every process it starts,
// which costs each Node process some MiB: `env` sets NODE_OPTIONS as the case wants.

/** tcpserver on 127.0.0.1 running the helper and the pace app, reporting into a folder of its own. */
async function serve(t: Test, env: Record<string, string>, nodeOptions = ''): Promise<Served> {
  const dir = tempDir(t, 'utw-mem-');
  const certs = makeCert(dir);
  const port = await freePort();
  const srv = new Launcher('env', [`NODE_OPTIONS=${nodeOptions}`, 'tcpserver', '-v', '-R', '-H', '-l', 'localhost', '127.0.0.1', String(port), HELPER, '-v', ...PACE_APP], baseEnv(certs, { REPORT: dir, ...env }));
  t.teardown(() => srv.stop());
  t.teardown(() => killLeftovers(dir, srv.proc.pid));
  await srv.ready(port);
  return { dir, port, srv, certs };
}

/** Private memory of an idle Node process that spawned an app with three socket pairs: the Node floor. */
async function nodeFloor(t: Test): Promise<number> {
  const script = "require('node:child_process').spawn('sleep', ['30'], { stdio: [0, 1, 2, 'pipe', 'pipe', 'pipe'] })";
  const floor = spawn('env', ['NODE_OPTIONS=', 'node', '-e', script], { stdio: 'ignore' });
  t.teardown(() => {
    floor.kill();
  });
  await sleep(1500);
  return privateBytes(floor.pid!);
}

async function connectTls(s: Served): Promise<{ tls: TLSSocket; pid: number }> {
  const { sock } = await toStartTls(s.port);
  const pid = await helperPid(s.srv);
  sock.allowHalfOpen = true;
  const tls = tlsConnect({ socket: sock, rejectUnauthorized: false, servername: 'mail.example.test' });
  await new Promise((r) => tls.once('secureConnect', r));
  return { tls, pid };
}

/** Samples the helper's private memory every 50 ms while `busy` runs, for SAMPLE_MS at most. */
async function peakWhile(pid: number, busy: (elapsed: number) => boolean): Promise<number> {
  let peak = 0;
  const started = Date.now();
  while (Date.now() - started < SAMPLE_MS && busy(Date.now() - started)) {
    await sleep(50);
    try {
      peak = Math.max(peak, privateBytes(pid));
    } catch {
      break; // a fast transfer may be over, and the helper gone
    }
  }
  return peak;
}

function judge(t: Test, what: string, rate: number, idle: number, peak: number, floor: number): void {
  const f = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;
  const bound = rate === FAST ? BOUND : BOUND - MARGIN;
  t.comment(`${what}: idle ${f(idle)}, peak ${f(peak)} (idle + ${f(peak - idle)}); Node floor ${f(floor)}, peak = floor + ${f(peak - floor)}`);
  t.ok(peak - idle <= bound, `${what}: the relay added ${f(peak - idle)} to the helper's memory, at most ${f(bound)}`);
  t.ok(peak - floor <= ABOVE_FLOOR, `${what}: the helper holds ${f(peak - floor)} more than the Node floor, at most ${f(ABOVE_FLOOR)}`);
}

t.test('app to client: the client reads at each pace', async (t) => {
  const floor = await nodeFloor(t);
  for (const [pace, rate] of PACES) {
    await t.test(pace, async (t) => {
      const APP_BYTES = 256 * MiB;
      const s = await serve(t, { MODE: 'send', APP_BYTES: String(APP_BYTES), SEED: '5005' });
      const { tls, pid } = await connectTls(s);
      tls.end(); // the client only reads
      await sleep(300);
      const idle = privateBytes(pid);
      process.kill(Number(await waitFor(join(s.dir, 'pid'))), 'SIGUSR1'); // the app starts sending
      const h = createHash('sha256');
      let bytes = 0;
      let ended = false;
      tls.once('end', () => (ended = true));
      const take = (d: Buffer): void => {
        h.update(d);
        bytes += d.length;
      };
      let peak: number;
      if (rate === FAST) {
        tls.on('data', take);
        peak = await peakWhile(pid, () => !ended);
      } else {
        tls.pause();
        peak = await peakWhile(pid, (elapsed) => {
          for (let c: Buffer | null; bytes < (rate * elapsed) / 1000 && (c = tls.read() as Buffer | null) !== null; ) take(c);
          return true;
        });
        tls.on('data', take);
        tls.resume();
      }
      if (!ended) await new Promise((r) => tls.once('end', r));
      judge(t, `app to client, the client reading ${pace}`, rate, idle, peak, floor);
      const app = JSON.parse(await waitFor(join(s.dir, 'pace.json'), 60000)) as { sha: string; bytes: number };
      t.equal(bytes, APP_BYTES, 'every byte arrived');
      t.equal(h.digest('hex'), app.sha, 'the same bytes, in order');
      t.equal(await endStatus(s.srv, pid), 0);
      t.same(await leftovers(s), []);
      tls.destroy();
    });
  }
});

t.test('client to app: the app reads at each pace', async (t) => {
  const floor = await nodeFloor(t);
  for (const [pace, rate] of PACES) {
    await t.test(pace, async (t) => {
      const CLIENT_BYTES = (rate === FAST ? 256 : 64) * MiB;
      const s = await serve(t, { MODE: 'recv', PACE: String(rate === FAST ? 1024 * MiB : rate) });
      const { tls, pid } = await connectTls(s);
      tls.resume();
      await sleep(300);
      const idle = privateBytes(pid);
      let sent: { sha: string; bytes: number } | undefined;
      const sending = new ChunkSource(6006, CLIENT_BYTES, Number.POSITIVE_INFINITY).pipeTo(tls).then((r) => {
        sent = r;
        tls.end();
      });
      const peak = await peakWhile(pid, () => sent === undefined);
      // The app reads the rest as fast as it can (a fast one may have read it all and gone).
      try {
        process.kill(Number(await waitFor(join(s.dir, 'pid'))), 'SIGUSR1');
      } catch {
        t.equal(rate, FAST, 'only a fast app is gone before the signal');
      }
      await sending;
      judge(t, `client to app, the app reading ${pace}`, rate, idle, peak, floor);
      const app = JSON.parse(await waitFor(join(s.dir, 'pace.json'), 60000)) as { sha: string; bytes: number };
      t.equal(app.bytes, CLIENT_BYTES, 'every byte arrived');
      t.equal(app.sha, sent!.sha, 'the same bytes, in order');
      t.equal(await endStatus(s.srv, pid), 0);
      t.same(await leftovers(s), []);
      tls.destroy();
    });
  }
});

t.test('the app reader: at most four chunks with the peer, and its buffers reused', async (t) => {
  const BYTES = 32 * MiB;
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  const from = netConnect(port, '127.0.0.1');
  await new Promise((r) => from.once('connect', r));
  const writer = await accepted;
  const h = createHash('sha256');
  const buffers = new Set<ArrayBufferLike>();
  let bytes = 0;
  let reads = 0;
  let withPeer = 0;
  let most = 0;
  const reader = readReused(from, (chunk, done) => {
    h.update(chunk);
    bytes += chunk.length;
    buffers.add(chunk.buffer);
    most = Math.max(most, ++withPeer);
    // A peer that is sometimes done at once, sometimes late, sometimes very late.
    const wait = reads++ % 7;
    const finish = (): void => {
      withPeer--;
      done();
    };
    if (wait === 0) finish();
    else setTimeout(finish, wait * 3);
  });
  t.ok(reader !== undefined, 'a socket nothing was read from is taken over');
  const ended = new Promise((r) => reader!.socket.once('end', r));
  const sent = await new ChunkSource(9009, BYTES, Number.POSITIVE_INFINITY).pipeTo(writer);
  writer.end();
  await ended;
  t.equal(bytes, BYTES, 'every byte read');
  t.equal(h.digest('hex'), sent.sha, 'the same bytes, in order');
  t.equal(reader!.bytes(), BYTES, 'and counted');
  t.ok(most <= 4, `at most ${most} chunks with the peer at once`);
  t.ok(buffers.size * 8 <= reads, `${reads} reads into ${buffers.size} buffers`);
  reader!.socket.destroy();
  t.equal(readReused(new PassThrough() as unknown as Socket, () => {}), undefined, 'a stream without a handle is left to be piped');
});

t.test('bytes the app wrote before asking for TLS go out first, then the rest, in order', async (t) => {
  const EARLY = 'early bytes from the app\r\n';
  const BYTES = 16 * MiB;
  const s = await serve(t, { MODE: 'send', APP_BYTES: String(BYTES), SEED: '8008', EARLY });
  const { tls, pid } = await connectTls(s);
  tls.end();
  // Once TLS is up the early bytes are in the helper already, before the relay starts.
  process.kill(Number(await waitFor(join(s.dir, 'pid'))), 'SIGUSR1');
  const chunks: Buffer[] = [];
  tls.on('data', (d: Buffer) => chunks.push(d));
  await new Promise((r) => tls.once('end', r));
  const all = Buffer.concat(chunks);
  const app = JSON.parse(await waitFor(join(s.dir, 'pace.json'), 60000)) as { sha: string; bytes: number };
  t.equal(all.subarray(0, EARLY.length).toString('latin1'), EARLY, 'the early bytes first');
  t.equal(all.length - EARLY.length, BYTES, 'then every byte');
  t.equal(createHash('sha256').update(all.subarray(EARLY.length)).digest('hex'), app.sha, 'the same bytes, in order');
  t.equal(await endStatus(s.srv, pid), 0);
  t.match(helperLog(s.srv, pid).at(-1), new RegExp(`^TLS ended: ${BYTES + EARLY.length} bytes to client, 0 bytes to app$`));
  tls.destroy();
});

t.test('a Node whose V8 gives no collector: the relay runs on, byte for byte', async (t) => {
  // The preload makes v8.setFlagsFromString refuse every flag, as a future Node might.
  const dir = tempDir(t, 'utw-nogc-');
  const preload = join(dir, 'no-gc.js');
  writeFileSync(preload, "require('node:v8').setFlagsFromString = () => { throw new Error('refused'); };\n");
  const BYTES = 64 * MiB;
  const s = await serve(t, { MODE: 'send', APP_BYTES: String(BYTES), SEED: '7007' }, `--require ${preload}`);
  const { tls, pid } = await connectTls(s);
  tls.end();
  process.kill(Number(await waitFor(join(s.dir, 'pid'))), 'SIGUSR1');
  const h = createHash('sha256');
  let bytes = 0;
  tls.on('data', (d: Buffer) => {
    h.update(d);
    bytes += d.length;
  });
  await new Promise((r) => tls.once('end', r));
  const app = JSON.parse(await waitFor(join(s.dir, 'pace.json'), 60000)) as { sha: string; bytes: number };
  t.equal(bytes, BYTES, 'every byte arrived');
  t.equal(h.digest('hex'), app.sha, 'the same bytes, in order');
  t.equal(await endStatus(s.srv, pid), 0);
  t.match(helperLog(s.srv, pid).at(-1), new RegExp(`^TLS ended: ${BYTES} bytes to client, 0 bytes to app$`));
  tls.destroy();
});
