// ucspi-tls-server's graceful stop: SIGTERM stops accepting at once, sessions run on for
// the grace period (--grace), then their apps get SIGTERM, then SIGKILL; a second signal
// cuts the grace period short; the server exits 0 with nothing left running.
import type { Socket } from 'node:net';
import { connect } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { allGone, APP, baseEnv, freePort, hashUntilEnd, Lines, logged, makeCert, sendRandom, startTls, tempDir, treeOf, ucspiTlsServer, waitFor, type ServerLauncher } from './helpers';

async function serve(t: Test, flags: string[], app: string[] = [APP]): Promise<{ srv: ServerLauncher; port: number; dir: string }> {
  const dir = tempDir(t);
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, BULK: String(1 << 20) }), ['-v', '-w', '1', ...flags], app);
  return { srv, port, dir };
}

/** A plaintext session up to the banner. */
async function plain(port: number): Promise<{ sock: Socket; lines: Lines }> {
  const sock = connect({ port, host: '127.0.0.1' });
  sock.on('error', () => {});
  const lines = new Lines(sock);
  await lines.line();
  return { sock, lines };
}

/** How a connection attempt now ends: refused, or what it read before its end. `connected`: once the kernel has accepted it. */
function attempt(port: number, connected?: () => void): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect({ port, host: '127.0.0.1' }, connected);
    let got = '';
    sock.on('data', (d: Buffer) => (got += d.toString('latin1')));
    sock.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    sock.on('end', () => {
      sock.destroy();
      resolve(`end after ${JSON.stringify(got)}`);
    });
  });
}

/** Whether each pattern matches, each after the one before it (other processes' lines may come between). */
function inOrder(log: string, res: RegExp[]): boolean {
  let at = 0;
  for (const re of res) {
    const m = re.exec(log.slice(at));
    if (m === null) return false;
    at += m.index + m[0].length;
  }
  return true;
}

/** The server's exit, the time it took from `since`, and whether all it started is gone. */
async function exited(srv: ServerLauncher, tree: number[], since: number): Promise<{ status: number | null; signal: string | null; seconds: number; left: boolean }> {
  const r = await srv.exit();
  const seconds = (performance.now() - since) / 1000;
  return { ...r, seconds, left: !(await allGone(tree)) };
}

t.test('SIGTERM: no new connection, a TLS session runs on to its end byte for byte, then exit 0', async (t) => {
  const { srv, port, dir } = await serve(t, ['--grace', '20']);
  const tls = await startTls(port, { allowHalfOpen: true });
  const lines = new Lines(tls as unknown as Socket);
  const tree = treeOf(srv.pid);
  const since = performance.now();
  srv.proc.kill('SIGTERM');
  t.ok(await logged(srv, /^ucspi-tls-server: SIGTERM: no longer accepting; 1 session\(s\) left, 20 s to end$/m), 'one line: how many sessions are left, and for how long');
  t.equal(await attempt(port), 'ECONNREFUSED', 'a new connection is refused at once');

  tls.write('SINK\r\n');
  t.equal(await lines.line(), '354 send', 'the session goes on');
  lines.detach();
  tls.resume();
  const received = hashUntilEnd(tls);
  const sent = await sendRandom(tls, 1 << 20);
  tls.end();
  const got = await received;
  t.equal((await waitFor(join(dir, 'sink.sha'))).trim(), sent, 'client -> app: every byte, after the SIGTERM');
  t.equal(got.sha, (await waitFor(join(dir, 'src.sha'))).trim(), 'app -> client: every byte');
  t.equal(got.bytes, 1 << 20);

  const r = await exited(srv, tree, since);
  t.same([r.status, r.signal], [0, null], 'exit 0 once the session is over');
  t.ok(r.seconds < 20, `before the grace period is over (${r.seconds.toFixed(1)} s)`);
  t.notOk(r.left, 'nothing left running');
  t.match(srv.err, /: end: exit 0, tls, 1048586 bytes to client, 1048582 bytes to app, /, 'the app ended on its own');
  t.notMatch(srv.err, /SIGTERM sent/, 'no app was signalled');
  t.match(srv.err, /ucspi-tls-server: exiting\n$/);
});

t.test('the grace period over: the apps left get SIGTERM, the server exits 0', async (t) => {
  const { srv, port } = await serve(t, ['--grace', '1']);
  const { sock } = await plain(port);
  const tree = treeOf(srv.pid);
  const since = performance.now();
  srv.proc.kill('SIGTERM');
  const r = await exited(srv, tree, since);
  t.same([r.status, r.signal], [0, null], 'exit 0');
  t.ok(r.seconds >= 1, `not before the grace period is over (${r.seconds.toFixed(1)} s)`);
  t.notOk(r.left, 'nothing left running');
  t.ok(inOrder(srv.err, [/^ucspi-tls-server: SIGTERM: no longer accepting; 1 session\(s\) left, 1 s to end$/m, /^ucspi-tls-server: grace period over: 1 session\(s\) left, SIGTERM sent to 1 app\(s\)$/m]), 'each step logged');
  t.match(srv.err, /: end: signal SIGTERM, plaintext, /);
  sock.destroy();
});

t.test('an app that ignores SIGTERM gets SIGKILL 5 s later; the server exits 0, no zombie', async (t) => {
  const stubborn = ['/bin/sh', '-c', `trap '' TERM; printf '220 stubborn\\r\\n'; exec sleep 60`];
  const { srv, port } = await serve(t, ['--grace', '1'], stubborn);
  const { sock } = await plain(port);
  const tree = treeOf(srv.pid);
  const since = performance.now();
  srv.proc.kill('SIGTERM');
  const r = await exited(srv, tree, since);
  t.same([r.status, r.signal], [0, null], 'exit 0');
  t.ok(r.seconds >= 6, `grace period, then 5 s after SIGTERM (${r.seconds.toFixed(1)} s)`);
  t.notOk(r.left, 'nothing left running');
  t.ok(inOrder(srv.err, [/^ucspi-tls-server: grace period over: 1 session\(s\) left, SIGTERM sent to 1 app\(s\)$/m, /^ucspi-tls-server: 1 session\(s\) left 5 s after SIGTERM: SIGKILL sent to 1 app\(s\)$/m]), 'each step logged');
  t.match(srv.err, /: end: signal SIGKILL, plaintext, /);
  sock.destroy();
});

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`a second ${sig} ends the grace period at once`, async (t) => {
    const { srv, port } = await serve(t, []);
    const { sock } = await plain(port);
    const tree = treeOf(srv.pid);
    srv.proc.kill(sig);
    t.ok(await logged(srv, new RegExp(`^ucspi-tls-server: ${sig}: no longer accepting; 1 session\\(s\\) left, 30 s to end$`, 'm')), 'the default grace period: 30 s');
    const since = performance.now();
    srv.proc.kill(sig);
    const r = await exited(srv, tree, since);
    t.same([r.status, r.signal], [0, null], 'exit 0');
    t.ok(r.seconds < 10, `at once (${r.seconds.toFixed(1)} s)`);
    t.notOk(r.left, 'nothing left running');
    t.match(srv.err, new RegExp(`^ucspi-tls-server: ${sig} again: 1 session\\(s\\) left, SIGTERM sent to 1 app\\(s\\)$`, 'm'));
    t.match(srv.err, /: end: signal SIGTERM, plaintext, /);
    sock.destroy();
  });
}

t.test('connections waiting to be accepted (at the -c limit) are closed at once; the session goes on', async (t) => {
  const { srv, port } = await serve(t, ['-c', '1']);
  const first = await plain(port);
  // Accepted by the kernel, queued: the server is at its limit and not accepting.
  t.ok(await logged(srv, /1 connections: accepting paused/), 'at the limit');
  let queued!: () => void;
  const inQueue = new Promise<void>((r) => (queued = r));
  const waiting = attempt(port, queued);
  await inQueue;
  srv.proc.kill('SIGTERM');
  // Reset from the kernel's queue, or closed by the launcher if it took it before pausing.
  t.match(await waiting, /^(ECONNRESET|end after "")$/, 'the waiting connection is closed, never served');
  first.sock.write('NOOP\r\n');
  t.equal(await first.lines.line(), '250 no NOOP', 'the running session goes on');
  first.sock.write('QUIT\r\n');
  t.equal(await first.lines.line(), '221 bye');
  t.same(await srv.exit(), { status: 0, signal: null }, 'exit 0 once it is over');
  t.equal(srv.starts().length, 1, 'one app was ever started');
});
