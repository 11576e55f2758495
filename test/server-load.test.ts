// ucspi-tls-server under load: 1000 idle TLS connections held at once and all answered
// afterwards; a TLS worker killed with SIGKILL in the middle of transfers loses only its
// own sessions, the others finish byte-exact, and new connections are served.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { type Socket } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import {
  APP, appFds, baseEnv, freePort, hashUntilEnd, Lines, logged, makeCert, readReport, sleep, startTls, tempDir, ucspiTlsServer,
  waitFor, within,
} from './helpers';
import { stopServer } from './modes';
import { fdCount, privateBytes, processesOf } from './hostile';

const IDLE = 1000;

t.test(`${IDLE} idle TLS connections held at once, then every one answered`, async (t) => {
  const dir = tempDir(t, 'utw-idle-');
  const port = await freePort();
  // Each connection holds a few fds in the server: raise its limit as an operator would.
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1', TLS_CMD: 'y' }),
    ['-c', String(IDLE + 100), '-b', '1024', '-w', '2'], [APP], { prefix: ['prlimit', '--nofile=16384:16384'] });
  const idleBytes = [srv.pid, ...srv.workers()].reduce((n, p) => n + privateBytes(p), 0);
  const fdsBefore = [srv.pid, ...srv.workers()].map(fdCount);

  const conns: Array<{ tls: TLSSocket; lines: Lines }> = [];
  const errors: string[] = [];
  const started = Date.now();
  for (let base = 0; base < IDLE && errors.length === 0; base += 50) {
    await Promise.all(Array.from({ length: Math.min(50, IDLE - base) }, async (_, k) => {
      const i = base + k;
      try {
        const tls = await within(startTls(port), 30000, `connection ${i}: STARTTLS`);
        const lines = new Lines(tls as unknown as Socket);
        conns[i] = { tls, lines };
        tls.write(`NOOP ${i}\r\n`);
        if ((await within(lines.line(), 10000, `connection ${i}: a line through TLS`)) !== `250 yes NOOP ${i}`) errors.push(`connection ${i}: wrong answer`);
      } catch (e) {
        errors.push(`connection ${i}: ${(e as Error).message}`);
      }
    }));
  }
  t.same(errors.slice(0, 10), [], `every connection got through STARTTLS and answered (${errors.length} did not)`);
  if (errors.length > 0) {
    for (const c of conns) c?.tls.destroy();
    return;
  }
  t.equal(conns.filter(Boolean).length, IDLE, `${IDLE} TLS connections open`);
  t.comment(`${IDLE} sessions set up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  t.equal(srv.starts().length, IDLE, 'the server started each one');
  t.equal(srv.ends().length, 0, 'and none has ended');
  const workers = srv.workers();
  const apps = processesOf(dir, srv.pid).filter((p) => !workers.includes(p));
  t.ok(apps.length >= IDLE, `${IDLE} apps wait for their clients (${apps.length} processes)`);
  const heldBytes = [srv.pid, ...workers].reduce((n, p) => n + privateBytes(p), 0);
  t.comment(`server processes: ${((heldBytes - idleBytes) / IDLE / 1024).toFixed(1)} KiB private per idle TLS connection`);

  // One more while they are held: its app gets exactly its six fds, nothing of the others.
  const extra = await within(startTls(port), 30000, 'one more connection');
  const extraReport = join(dir, String(extra.localPort));
  await waitFor(join(extraReport, 'fds'));
  t.same(appFds(extraReport), ['0', '1', '2', '3', '4', '5'], `the app of connection ${IDLE + 1} has exactly fds 0-5`);
  extra.destroy();

  t.comment(`held and checked at ${((Date.now() - started) / 1000).toFixed(1)} s`);
  // Every one answers after the wait, then ends cleanly.
  const late: string[] = [];
  await Promise.all(conns.map(async ({ tls, lines }, i) => {
    try {
      tls.write(`NOOP again ${i}\r\n`);
      if ((await within(lines.line(), 30000, `connection ${i}: after the wait`)) !== `250 yes NOOP again ${i}`) late.push(`connection ${i}: wrong answer`);
      tls.write('QUIT\r\n');
      if ((await within(lines.line(), 30000, `connection ${i}: QUIT`)) !== '221 bye') late.push(`connection ${i}: no bye`);
      await new Promise((r) => { tls.once('close', r); tls.end(); });
    } catch (e) {
      late.push(`connection ${i}: ${(e as Error).message}`);
    }
  }));
  t.same(late.slice(0, 10), [], `every connection answered after being held idle (${late.length} did not)`);
  t.comment(`answered and closed at ${((Date.now() - started) / 1000).toFixed(1)} s`);
  await srv.end({ nth: IDLE }, 60000);
  const ends = srv.ends();
  t.equal(ends.filter((e) => e.status === 0 && e.session === 'tls').length, IDLE, 'and ended with exit 0 after TLS');
  t.notMatch(srv.err, /worker \d+ \(pid \d+\) died/, 'no worker died');
  // Every app reaped, every fd of every connection closed again, in the launcher and the workers.
  const after = srv.workers();
  t.same(srv.apps(), [], 'no app (nor a zombie of one) left under the spawner');
  let fdsAfter = [srv.pid, ...after].map(fdCount);
  for (let i = 0; i < 100 && fdsAfter.some((n, k) => n > fdsBefore[k]!); i++) {
    await sleep(50);
    fdsAfter = [srv.pid, ...after].map(fdCount);
  }
  t.same(fdsAfter, fdsBefore, `the launcher and each worker hold as many fds as before the ${IDLE + 1} connections`);
  await stopServer(t, srv);
});

const STREAMS = 16;
const BYTES = 2 << 20;

/** SINK: the client sends BYTES paced (so the kill finds them mid-way), ends, then reads the app's BYTES. */
async function transfer(port: number): Promise<{ client: number; sent: string; got: Promise<{ sha: string; bytes: number }>; done: Promise<void> }> {
  const tls = await within(startTls(port, { allowHalfOpen: true }), 30000, 'STARTTLS');
  tls.on('error', () => {});
  const client = tls.localPort!;
  const lines = new Lines(tls as unknown as Socket);
  tls.write('SINK\r\n');
  if ((await within(lines.line(), 10000, 'SINK')) !== '354 send') throw new Error('no 354');
  lines.detach();
  tls.resume();
  const got = hashUntilEnd(tls).catch(() => ({ sha: 'error', bytes: -1 }));
  const h = createHash('sha256');
  const data = randomBytes(BYTES);
  h.update(data);
  const done = (async () => {
    for (let off = 0; off < BYTES && !tls.destroyed; off += 32 * 1024) {
      if (!tls.write(data.subarray(off, off + 32 * 1024))) await new Promise((r) => { tls.once('drain', r); tls.once('close', r); });
      await sleep(15);
    }
    if (!tls.destroyed) tls.end();
    await new Promise((r) => (tls.destroyed ? r(null) : tls.once('close', r)));
  })();
  return { client, sent: h.digest('hex'), got, done };
}

t.test('a worker killed with SIGKILL mid-transfer: only its sessions end; the rest finish byte-exact; new ones are served', async (t) => {
  const dir = tempDir(t, 'utw-kill-');
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1', BULK: String(BYTES) }), ['-v', '-w', '2'], [APP]);
  const before = srv.workers();
  t.equal(before.length, 2, 'two workers');

  const streams = await Promise.all(Array.from({ length: STREAMS }, () => transfer(port)));
  await sleep(300);
  const victim = before[0]!;
  process.kill(victim, 'SIGKILL');
  t.ok(await logged(srv, new RegExp(`^ucspi-tls-server: worker \\d+ \\(pid ${victim}\\) died on SIGKILL: \\d+ connection\\(s\\) lost; starting another$`, 'm')), 'the launcher logs the crash');
  const died = new RegExp(`^ucspi-tls-server: worker (\\d+) \\(pid ${victim}\\) died on SIGKILL: (\\d+) connection`, 'm').exec(srv.err)!;
  const [index, lost] = [Number(died[1]), Number(died[2])];
  t.ok(await logged(srv, new RegExp(`^ucspi-tls-server: worker ${index} \\(pid \\d+\\) started$`, 'm')), 'and starts another in its place');

  await within(Promise.all(streams.map((s) => s.done)), 60000, 'the transfers');
  const byPort = new Map(srv.starts().map((s) => [s.remotePort, s]));
  let mine = 0;
  let others = 0;
  for (const s of streams) {
    const start = byPort.get(s.client)!;
    const report = join(dir, String(s.client));
    const end = await srv.end({ pid: start.pid });
    const got = await within(s.got, 30000, `connection ${s.client}: the answer`);
    if (start.worker === index) {
      mine++;
      t.equal(end.session, 'worker lost', `connection ${s.client} (worker ${index}): its end line says the worker was lost`);
      t.not(got.bytes, BYTES, `connection ${s.client}: its client did not get a whole answer`);
      t.match(await waitFor(join(report, 'sink.sha')), /^[0-9a-f]{64}\n$/, `connection ${s.client}: its app saw EOF on SSLREADFD`);
      t.equal(end.status, 0, 'and went on to its end');
    } else {
      others++;
      t.equal((await waitFor(join(report, 'sink.sha'))).trim(), s.sent, `connection ${s.client} (worker ${start.worker}): client -> app byte-exact`);
      t.same(got, { sha: readReport(report, 'src.sha').trim(), bytes: BYTES }, `connection ${s.client}: app -> client byte-exact`);
      t.same({ status: end.status, session: end.session }, { status: 0, session: 'tls' });
    }
  }
  t.ok(mine > 0 && others > 0, `sessions on both workers (${mine} on the killed one, ${others} on the other)`);
  t.equal(lost, mine, 'the crash line counts exactly the sessions of that worker');
  // Each of those apps then wrote its answer (cat) into SSLWRITEFD: EPIPE. cat writes its
  // message in pieces, which the server's lines may split; the strerror part stays whole.
  t.ok([...srv.err.matchAll(/Broken pipe/g)].length >= mine, 'their apps got EPIPE on SSLWRITEFD');

  const after = srv.workers();
  t.equal(after.length, 2, 'two workers again');
  t.notOk(after.includes(victim));
  // New connections on both workers (chosen in turn) are served.
  for (let i = 0; i < 2; i++) {
    const tls = await within(startTls(port), 30000, 'a new connection');
    const lines = new Lines(tls as unknown as Socket);
    tls.write('NOOP\r\n');
    t.equal(await within(lines.line(), 10000, 'a new connection: a line'), '250 yes NOOP', `a new connection ${i + 1} is served`);
    tls.write('QUIT\r\n');
    await lines.line();
    tls.destroy();
  }
  await srv.end({ nth: STREAMS + 1 });
  await stopServer(t, srv);
});
