// ucspi-tls-server's live figures: on SIGUSR1 a few lines with the connections, the TLS
// sessions and handshake failures by reason, the bytes each way, and each process's memory;
// the same at exit. Checked against sessions whose every byte the test knows.
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { APP, baseEnv, freePort, Lines, logged, makeCert, SERVER, ServerLauncher, sleep, startTls, tempDir, ucspiTlsServer, WITHOUT_TEST_HOOKS } from './helpers';

const MB = String.raw`\d+\.\d MB`;

t.test('SIGUSR1 and exit: connections, TLS started, failures by reason, bytes, memory per worker', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, TLS_MIN_VERSION: '1.3' }), ['-w', '2'], [APP]);

  // 1. A TLS session: 12 bytes to the app, 23 to the client.
  const good = await startTls(port);
  const goodLines = new Lines(good as unknown as Socket);
  good.write('NOOP\r\n');
  t.equal(await goodLines.line(), '250 yes NOOP');
  good.write('QUIT\r\n');
  t.equal(await goodLines.line(), '221 bye');
  good.destroy();
  await srv.end({ nth: 0 });

  // 2. Not TLS after STARTTLS: a protocol failure.
  const plainStart = async (): Promise<{ sock: Socket; lines: Lines }> => {
    const sock = connect({ port, host: '127.0.0.1' });
    sock.on('error', () => {});
    const lines = new Lines(sock);
    await lines.reply('220');
    sock.write('STARTTLS\r\n');
    t.equal(await lines.line(), '220 ready');
    return { sock, lines };
  };
  const garbage = await plainStart();
  garbage.sock.write('HELO not tls\r\n');
  await srv.end({ nth: 1 });
  garbage.sock.destroy();

  // 3. The client goes away instead of its ClientHello.
  const gone = await plainStart();
  gone.sock.end();
  await srv.end({ nth: 2 });

  // 4. TLS 1.2 at most, against TLS_MIN_VERSION=1.3: no shared version.
  await t.rejects(startTls(port, { maxVersion: 'TLSv1.2' }), 'the old client is refused');
  await srv.end({ nth: 3 });

  // 5. Plaintext only.
  const plain = connect({ port, host: '127.0.0.1' });
  const plainLines = new Lines(plain);
  await plainLines.reply('220');
  plain.write('QUIT\r\n');
  t.equal(await plainLines.line(), '221 bye');
  await srv.end({ nth: 4 });
  plain.destroy();

  // 6. A TLS session still running: 6 bytes to the app, 14 to the client so far.
  const live = await startTls(port);
  const liveLines = new Lines(live as unknown as Socket);
  live.write('NOOP\r\n');
  t.equal(await liveLines.line(), '250 yes NOOP');
  const liveWorker = (await srv.start(5)).worker;

  t.same(srv.ends().map((e) => [e.session, e.toClient, e.toApp]), [['tls', 23, 12], ['plaintext', 0, 0], ['plaintext', 0, 0], ['plaintext', 0, 0], ['plaintext', 0, 0]], 'the end lines agree');
  const workers = srv.workers().sort((a, b) => a - b);
  t.equal(workers.length, 2);
  const spawner = srv.spawner();

  const figures = (label: string, now: number, accepted: number, toClients: number, toApps: number, conns: (w: number) => number): RegExp[] => [
    new RegExp(`^ucspi-tls-server: ${label}: connections: ${now} now \\(limit 40\\), ${accepted} accepted, 0 refused, up \\d+ s$`, 'm'),
    new RegExp(`^ucspi-tls-server: ${label}: tls: 2 started, 3 handshakes failed \\(timeout 0, client gone 1, protocol 1, no shared cipher/version 1, certificate required 0, other 0\\)$`, 'm'),
    new RegExp(`^ucspi-tls-server: ${label}: bytes: ${toClients} to clients, ${toApps} to apps$`, 'm'),
    new RegExp(`^ucspi-tls-server: ${label}: acceptor pid ${srv.pid}: rss ${MB}, private ${MB}$`, 'm'),
    new RegExp(`^ucspi-tls-server: ${label}: spawner pid ${spawner}: rss ${MB}, private ${MB}$`, 'm'),
    ...[1, 2].map((i) => new RegExp(`^ucspi-tls-server: ${label}: worker ${i} pid (${workers.join('|')}): ${conns(i)} connections, rss ${MB}, private ${MB}$`, 'm')),
  ];

  srv.proc.kill('SIGUSR1');
  const now = figures('figures', 1, 6, 23 + 14, 12 + 6, (w) => (w === liveWorker ? 1 : 0));
  t.ok(await logged(srv, now[now.length - 1]!), 'the figures are logged');
  for (const re of now) t.match(srv.err, re);
  const workerPids = [...srv.err.matchAll(/figures: worker \d pid (\d+):/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
  t.same(workerPids, workers, 'one line per worker, each with its own pid');
  t.ok(srv.running, 'the server goes on');
  // As `systemctl kill -s USR1` sends it: to every process. Node's default would open the
  // inspector in a worker, whose memory holds the keys.
  for (const w of workers) process.kill(w, 'SIGUSR1');
  await sleep(300);
  t.same(srv.workers().sort((a, b) => a - b), workers, 'the workers ignore SIGUSR1');
  t.notMatch(srv.err, /Debugger listening|inspector/i, 'no inspector opened');

  live.write('QUIT\r\n');
  t.equal(await liveLines.line(), '221 bye');
  live.destroy();
  await srv.end({ nth: 5 });
  srv.proc.kill('SIGTERM');
  t.same(await srv.exit(), { status: 0, signal: null });
  for (const re of figures('figures at exit', 0, 6, 23 + 14 + 9, 12 + 6 + 6, () => 0)) t.match(srv.err, re);
  t.match(srv.err, /ucspi-tls-server: figures at exit: worker 2 pid \d+: [^\n]*\nucspi-tls-server: exiting\n$/, 'the figures, then the last line');
});

t.test('failures by reason, as each failure site names it: a handshake timed out, a client certificate missing', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const certs = makeCert(dir);
  const srv = await ucspiTlsServer(t, port, baseEnv(certs, { REPORT: dir, CAFILE: certs.cert }), ['-w', '1', '-y', '-t', '1'], [APP]);

  // 1. -y, and the client sends no certificate.
  const noCert = await startTls(port, { maxVersion: 'TLSv1.2' }).catch((e: Error) => e);
  t.type(noCert, Error, 'the client without a certificate is refused');
  await srv.end({ nth: 0 });

  // 2. STARTTLS, then no ClientHello within -t 1.
  const silent = connect({ port, host: '127.0.0.1' });
  silent.on('error', () => {});
  const lines = new Lines(silent);
  await lines.reply('220');
  silent.write('STARTTLS\r\n');
  t.equal(await lines.line(), '220 ready');
  await srv.end({ nth: 1 });
  silent.destroy();

  t.match(srv.err, /^ucspi-tls-server: pid \d+: handshake failed: peer did not return a certificate$/m);
  t.match(srv.err, /^ucspi-tls-server: pid \d+: handshake timed out after 1 s$/m);
  srv.proc.kill('SIGTERM');
  t.same(await srv.exit(), { status: 0, signal: null });
  t.match(srv.err, /^ucspi-tls-server: figures at exit: tls: 0 started, 2 handshakes failed \(timeout 1, client gone 0, protocol 0, no shared cipher\/version 0, certificate required 1, other 0\)$/m);
});

t.test('-q: SIGUSR1 logs nothing, as every other line', async (t) => {
  const dir = tempDir(t);
  // Port 0 and -1: the port it prints is its own, and it prints it once listening.
  const srv = new ServerLauncher(WITHOUT_TEST_HOOKS[0]!, [...WITHOUT_TEST_HOOKS.slice(1), SERVER, '-q', '-1', '-w', '1', '127.0.0.1', '0', APP], baseEnv(makeCert(dir), { REPORT: dir }));
  t.teardown(() => srv.stop());
  for (let i = 0; i < 500 && !/^\d+\n$/.test(srv.out) && srv.running; i++) await sleep(20);
  t.match(srv.out, /^\d+\n$/, 'listening');
  srv.proc.kill('SIGUSR1');
  srv.proc.kill('SIGTERM');
  t.same(await srv.exit(), { status: 0, signal: null });
  t.equal(srv.err, '', 'nothing at all');
});
