// ucspi-tls-server: a worker killed while connections are being handed to it. The handles on
// their way to the dead worker must be closed by the spawner, so that each of its apps sees
// EOF on the control socket and ends: no app waits forever, no fd stays in the spawner. The
// same for a worker started in place of a dead one and killed before it is ready: it has
// connections already, and it is replaced in turn. And a worker still starting gets its
// connections only once it can take them as they are (unread, their EOF not yet seen).
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { APP, baseEnv, freePort, Lines, makeCert, sleep, tempDir, ucspiTlsServer, within, type ServerLauncher } from './helpers';
import { fdCount } from './hostile';
import { stopServer } from './modes';

const ROUNDS = 4;
const BURST = 40;

/** Banner, EHLO, STARTTLS: the app then asks for TLS and waits for the control socket's EOF. */
async function askForTls(port: number, socks: Socket[]): Promise<void> {
  const s = connect({ port, host: '127.0.0.1' });
  s.on('error', () => undefined);
  socks.push(s);
  const lines = new Lines(s);
  try {
    await lines.reply('220');
    s.write('EHLO client.test\r\n');
    await lines.reply('250');
    s.write('STARTTLS\r\n');
    await lines.reply('220');
  } catch {
    // its worker died under it: the connection may end anywhere
  }
}

/** Until the spawner runs `n` workers again (a dead one is replaced within a second or so). */
async function workersBack(t: Test, srv: ServerLauncher, n: number, what: string): Promise<number[]> {
  for (let i = 0; i < 500 && srv.workers().length < n; i++) await sleep(20);
  const workers = srv.workers();
  t.equal(workers.length, n, `${what}: ${n} workers running`);
  return workers;
}

/** A process's fd count once it is back to `n`, or after 5 s (a worker may be starting meanwhile). */
async function fdsSettled(pid: number, n: number): Promise<number> {
  for (let i = 0; i < 250 && fdCount(pid) !== n; i++) await sleep(20);
  return fdCount(pid);
}

/** A process's children, from its own list (quicker to read than a scan of /proc). */
function children(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1').split(' ').filter((w) => w !== '').map(Number);
}

/**
 * The spawner's next child not in `known`, as soon as it runs the worker: sooner than the
 * worker can say it is ready. (Not before its exec: the spawner waits for that.)
 */
async function nextWorker(pid: number, known: number[]): Promise<number> {
  for (;;) {
    for (const p of children(pid).filter((c) => !known.includes(c))) {
      try {
        if (readFileSync(`/proc/${p}/cmdline`, 'latin1').split('\0').includes('ucspi-tls-server-worker')) return p;
      } catch {
        // gone
      }
    }
    await new Promise((r) => setImmediate(r));
  }
}

t.test('a worker killed amid a burst of STARTTLS commands: every connection ends, no process of the server keeps an fd of them', async (t) => {
  const dir = tempDir(t, 'utw-kill-burst-');
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1', TLS_CMD: 'y' }), ['-w', '2', '-c', '200'], [APP]);
  while (srv.workers().length < 2) await sleep(20);
  await sleep(300);
  const spawner = srv.spawner()!;
  const fdsBefore = fdCount(srv.pid);
  const spawnerFdsBefore = fdCount(spawner);
  for (let round = 1; round <= ROUNDS; round++) {
    const socks: Socket[] = [];
    const opened = Promise.all(Array.from({ length: BURST }, () => askForTls(port, socks)));
    // While the spawner is handing the connections over.
    await sleep(10 + round * 15);
    const victim = srv.workers()[0]!;
    process.kill(victim, 'SIGKILL');
    await within(opened, 30000, `round ${round}: the burst`).catch((e: Error) => {
      // What the server said, to tell which connection waits and where.
      t.comment(srv.err.slice(-6000));
      throw e;
    });
    for (const s of socks) s.destroy();
    const starts = BURST * round;
    for (let i = 0; i < 500 && srv.ends().length < starts; i++) await sleep(20);
    t.equal(srv.ends().length, srv.starts().length, `round ${round}: every connection started has ended (${srv.starts().length})`);
    await workersBack(t, srv, 2, `round ${round}`);
    t.same(srv.apps(), [], `round ${round}: no app left under the spawner`);
    t.equal(fdCount(srv.pid), fdsBefore, `round ${round}: the acceptor holds as many fds as before`);
    t.equal(await fdsSettled(spawner, spawnerFdsBefore), spawnerFdsBefore, `round ${round}: so does the spawner`);
    if (srv.ends().length !== srv.starts().length) break;
  }
  t.ok([...srv.err.matchAll(/died on SIGKILL: (\d+) connection/g)].some((m) => Number(m[1]) > 0), 'a worker died with connections of its own');
  await stopServer(t, srv);
});

t.test('a replacement worker killed before it is ready: its connections end, it is reported and replaced', async (t) => {
  const dir = tempDir(t, 'utw-kill-unready-');
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1', TLS_CMD: 'y' }), ['-w', '2', '-c', '200'], [APP]);
  let workers = await workersBack(t, srv, 2, 'at the start');
  await sleep(300);
  const spawner = srv.spawner()!;
  const fdsBefore = fdCount(spawner);
  // A worker killed, then its replacement stopped as soon as it runs: it cannot say it is
  // ready, while the spawner hands it connections. Stopped too late (it said so already), it
  // is killed as any worker and the next replacement is tried.
  let unready: number | undefined;
  for (let attempt = 1; attempt <= 5 && unready === undefined; attempt++) {
    const known = children(spawner);
    process.kill(workers[0]!, 'SIGKILL');
    const fresh = await within(nextWorker(spawner, known), 10000, `attempt ${attempt}: the replacement`);
    process.kill(fresh, 'SIGSTOP');
    const socks: Socket[] = [];
    await within(Promise.all(Array.from({ length: 6 }, () => askForTls(port, socks))), 30000, `attempt ${attempt}: the connections`);
    process.kill(fresh, 'SIGKILL');
    for (let i = 0; i < 500 && !new RegExp(`\\(pid ${fresh}\\) died on SIGKILL`).test(srv.err); i++) await sleep(20);
    if (!new RegExp(`\\(pid ${fresh}\\) started`).test(srv.err)) unready = fresh;
    for (const s of socks) s.destroy();
    workers = await workersBack(t, srv, 2, `attempt ${attempt}`);
  }
  t.ok(unready !== undefined, 'a replacement was killed before it was ready');
  const lost = new RegExp(`\\(pid ${unready}\\) died on SIGKILL: (\\d+) connection\\(s\\) lost; starting another`).exec(srv.err);
  t.ok(lost !== null && Number(lost[1]) > 0, `its death is logged, with the connections handed to it: ${lost?.[0] ?? 'no such line'}`);
  for (let i = 0; i < 500 && srv.ends().length < srv.starts().length; i++) await sleep(20);
  t.equal(srv.ends().length, srv.starts().length, `every connection started has ended (${srv.starts().length})`);
  t.same(srv.apps(), [], 'no app left under the spawner');
  t.equal(await fdsSettled(spawner, fdsBefore), fdsBefore, 'the spawner holds as many fds as before');
  await stopServer(t, srv);
});

t.test('connections handed to a worker still starting: it takes each as it is, and each ends', async (t) => {
  const dir = tempDir(t, 'utw-kill-starting-');
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1', TLS_CMD: 'y' }), ['-w', '2', '-c', '200'], [APP]);
  const workers = await workersBack(t, srv, 2, 'at the start');
  await sleep(300);
  const spawner = srv.spawner()!;
  const fdsBefore = fdCount(spawner);
  const known = children(spawner);
  process.kill(workers[0]!, 'SIGKILL');
  // Held while its node starts, then let go: it starts up as a replacement does on a busy
  // machine, with connections (and their clients' EOF) already waiting for it.
  const fresh = await within(nextWorker(spawner, known), 10000, 'the replacement');
  process.kill(fresh, 'SIGSTOP');
  const socks: Socket[] = [];
  await within(Promise.all(Array.from({ length: 12 }, () => askForTls(port, socks))), 30000, 'the connections');
  for (const s of socks) s.destroy();
  await sleep(300);
  process.kill(fresh, 'SIGCONT');
  for (let i = 0; i < 500 && srv.ends().length < srv.starts().length; i++) await sleep(20);
  t.equal(srv.ends().length, srv.starts().length, `every connection started has ended (${srv.starts().length})`);
  t.same(srv.ends().filter((e) => e.session === 'worker lost'), [], 'none as lost: no worker died under a connection');
  const now = await workersBack(t, srv, 2, 'at the end');
  t.ok(now.includes(fresh), 'the replacement runs');
  t.same(srv.apps(), [], 'no app left under the spawner');
  t.equal(await fdsSettled(spawner, fdsBefore), fdsBefore, 'the spawner holds as many fds as before');
  await stopServer(t, srv);
});
