// ucspi-tls-server end to end, briefly: a STARTTLS session and an implicit one, the -c
// limit, a worker killed mid-session, SIGTERM, systemd's socket, bad configuration.
import t, { type Test } from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import {
  allGone, APP, appFds, baseEnv, freePort, hashUntilEnd, Lines, makeCert, readReport, ROOT, run, sendRandom, sleep, startTls, tempDir, waitFor, WITHOUT_TEST_HOOKS,
} from './helpers';

const SERVER = join(ROOT, 'bin', 'ucspi-tls-server');

/** The server on 127.0.0.1, a free port (-1 prints it). */
class Server {
  out = '';
  err = '';
  readonly proc: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** `more`: the server's fds from 3 on ('ignore': not open). */
  constructor(args: string[], env: NodeJS.ProcessEnv, cmd: string = SERVER, more: Array<'ignore' | 'pipe'> = []) {
    // Without the test runner's hooks, which the workers (nobody) could not load from a private checkout.
    this.proc = spawn(WITHOUT_TEST_HOOKS[0]!, [...WITHOUT_TEST_HOOKS.slice(1), cmd, ...args], { env, stdio: ['ignore', 'pipe', 'pipe', ...more] });
    this.proc.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    this.proc.stderr!.on('data', (d: Buffer) => (this.err += d.toString()));
    this.exited = new Promise((r) => this.proc.once('exit', (code, signal) => r({ code, signal })));
  }
  async port(): Promise<number> {
    for (let i = 0; i < 400; i++) {
      const m = /^(\d+)\n/.exec(this.out);
      if (m) return Number(m[1]);
      if (this.proc.exitCode !== null) throw new Error(`server exited: ${this.err}`);
      await sleep(25);
    }
    throw new Error(`server not listening: ${this.err}`);
  }
  async logged(re: RegExp, ms = 10000): Promise<RegExpExecArray> {
    for (let i = 0; i < ms / 20; i++) {
      const m = re.exec(this.err);
      if (m) return m;
      await sleep(20);
    }
    throw new Error(`no ${re} in the log:\n${this.err}`);
  }
  /** The server's workers: the children of its spawner (its child) that run the worker entry. */
  workers(): number[] {
    const children = (pid: number, entry: string): number[] =>
      spawnSync('ps', ['-o', 'pid=,args=', '--ppid', String(pid)], { encoding: 'utf8' })
        .stdout.split('\n')
        .filter((l) => l.includes(entry))
        .map((l) => Number(l.trim().split(/\s+/)[0]));
    return children(this.proc.pid!, 'ucspi-tls-server-spawner').flatMap((s) => children(s, 'ucspi-tls-server-worker'));
  }
  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGTERM');
    await this.exited;
  }
}

async function serve(t: Test, env: NodeJS.ProcessEnv, flags: string[], app: string[] = [APP]): Promise<{ srv: Server; port: number }> {
  const srv = new Server(['-v', '-1', ...flags, '127.0.0.1', '0', ...app], env);
  t.teardown(() => srv.stop());
  return { srv, port: await srv.port() };
}

function plainClient(port: number): Promise<{ sock: Socket; lines: Lines }> {
  return new Promise((res, rej) => {
    const sock = netConnect({ port, host: '127.0.0.1' }, () => res({ sock, lines: new Lines(sock) }));
    sock.once('error', rej);
  });
}

t.test('STARTTLS: the contract fds, tcpserver variables, Y reply, log lines matched by the app pid', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const { srv, port } = await serve(t, baseEnv(certs, { REPORT: dir, TCPREMOTEHOST: 'forged.example' }), ['-w', '2', '-l', 'mx.example.test']);
  const tls = await startTls(port);
  const lines = new Lines(tls as unknown as Socket);
  tls.write('NOOP\r\n');
  t.equal(await lines.line(), '250 yes NOOP', 'the app answers through TLS');
  tls.write('QUIT\r\n');
  t.equal(await lines.line(), '221 bye');
  tls.end();

  t.same(appFds(dir), ['0', '1', '2', '3', '4', '5'], 'exactly fds 0-5');
  t.equal(parseInt(readReport(dir, 'fd0-flags'), 8) & 0o4000, 0, 'fd 0 is blocking while plaintext');
  const env = readReport(dir, 'env');
  t.match(env, /^PROTO=TCP$/m);
  t.match(env, /^TCPREMOTEIP=127\.0\.0\.1$/m);
  t.match(env, new RegExp(`^TCPLOCALPORT=${port}$`, 'm'));
  t.match(env, /^TCPREMOTEPORT=\d+$/m);
  t.match(env, /^TCPLOCALIP=127\.0\.0\.1$/m);
  t.match(env, /^TCPLOCALHOST=mx\.example\.test$/m, '-l');
  t.match(env, /^SSLCTLFD=3$/m);
  t.notMatch(env, /^(CERTFILE|KEYFILE|TCPREMOTEHOST|LISTEN_FDS)=/m, 'no secrets, no stale tcpserver names');
  const reply = readFileSync(join(dir, 'reply'), 'latin1');
  t.match(reply, /SSL_PROTOCOL=TLSv1\.3\0/);
  t.match(reply, /SSL_VERSION_INTERFACE=ucspi-tls-server\/\d/);

  const pid = readReport(dir, 'pid').trim();
  const end = await srv.logged(new RegExp(`pid ${pid}: end: exit 0, tls, (\\d+) bytes to client, (\\d+) bytes to app, \\d+\\.\\d{3} s`));
  t.ok(Number(end[1]) > 0 && Number(end[2]) > 0, 'bytes each way');
  t.match(srv.err, new RegExp(`pid ${pid}: start: 127\\.0\\.0\\.1 port \\d+ -> 127\\.0\\.0\\.1 port ${port}, worker [12], 1 of 40\\n`));
  t.match(srv.err, new RegExp(`pid ${pid}: app asked for TLS \\(Y\\)\\n[^]*pid ${pid}: TLS started: TLSv1\\.3 `));
  t.match(srv.err, /listening on 127\.0\.0\.1 port \d+, 2 workers, at most 40 connections/);
  t.ok(await allGone([Number(pid)]), 'the app is gone');
});

t.test('STARTTLS: a megabyte each way, byte-exact (hash both ends), half-close both ways', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const { srv, port } = await serve(t, baseEnv(certs, { REPORT: dir, BULK: String(1 << 20) }), []);
  // The client sends, half-closes, then takes the app's megabyte.
  const tls = await startTls(port, { allowHalfOpen: true });
  const lines = new Lines(tls as unknown as Socket);
  tls.write('SINK\r\n');
  t.equal(await lines.line(), '354 send');
  const rest = lines.detach();
  const got = hashUntilEnd(tls);
  tls.resume(); // the line reader paused it
  const sent = await sendRandom(tls, 1 << 20);
  tls.end();
  const r = await got;
  t.equal(await waitFor(join(dir, 'sink.sha')), `${sent}\n`, 'client to app, exact');
  t.equal(rest.length, 0);
  t.equal(r.bytes, 1 << 20);
  t.equal(`${r.sha}\n`, readReport(dir, 'src.sha'), 'app to client, exact');
  await srv.logged(/end: exit 0, tls, 10\d{5} bytes to client, 10\d{5} bytes to app/);
});

t.test('--implicit: the handshake first, then the app with fds 0-2 and SSL_* in its environment', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const { srv, port } = await serve(t, baseEnv(certs, { REPORT: dir, SSL_CLIENT_VERIFY: 'SUCCESS' }), ['--implicit']);
  const tls = await new Promise<TLSSocket>((res, rej) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'mail.example.test', rejectUnauthorized: false });
    s.once('secureConnect', () => res(s));
    s.once('error', rej);
  });
  const lines = new Lines(tls as unknown as Socket);
  t.equal(await lines.line(), '220 test ESMTP');
  tls.write('QUIT\r\n');
  t.equal(await lines.line(), '221 bye');
  t.same(appFds(dir), ['0', '1', '2']);
  const env = readReport(dir, 'env');
  t.match(env, /^SSL_PROTOCOL=TLSv1\.3$/m);
  t.match(env, /^SSL_TLS_SNI=mail\.example\.test$/m);
  t.match(env, /^TCPREMOTEIP=127\.0\.0\.1$/m);
  t.notMatch(env, /^(SSLCTLFD|CERTFILE|SSL_CLIENT_VERIFY)=/m);
  const pid = readReport(dir, 'pid').trim();
  await srv.logged(new RegExp(`pid ${pid}: end: exit 0, tls, \\d+ bytes to client, \\d+ bytes to app`));

  // A client that is not TLS: the app never runs, the stub exits 98.
  const { sock } = await plainClient(port);
  sock.write('EHLO plain\r\n');
  await srv.logged(/^ucspi-tls-server: connection from 127\.0\.0\.1 port \d+: handshake failed: client sent [^\n]*; no app started \([\d.]+ s\)$/m);
  sock.destroy();
});

t.test('-c 1: the second client waits in the listen queue, unanswered, until the first ends', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const { srv, port } = await serve(t, baseEnv(certs, { REPORT: dir }), ['-c', '1', '-w', '1']);
  const first = await plainClient(port);
  t.equal(await first.lines.line(), '220 test ESMTP');
  await srv.logged(/1 connections: accepting paused/);
  const second = await plainClient(port); // the kernel completes the TCP handshake
  let early = '';
  second.sock.on('data', (d: Buffer) => (early += d.toString()));
  await sleep(500);
  t.equal(early, '', 'no banner while the first connection runs');
  t.equal((srv.err.match(/: start: /g) ?? []).length, 1, 'not accepted by the server');
  first.sock.write('QUIT\r\n');
  t.equal(await first.lines.line(), '221 bye');
  for (let i = 0; i < 100 && !early.includes('220'); i++) await sleep(50);
  t.equal(early, '220 test ESMTP\r\n', 'served once the first ended');
  await srv.logged(/accepting resumed/);
  second.sock.destroy();
});

t.test('a worker killed mid-session: its sessions end, the launcher starts another, new sessions are served', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const { srv, port } = await serve(t, baseEnv(certs, { REPORT: dir }), ['-w', '1']);
  const tls = await startTls(port);
  const lines = new Lines(tls as unknown as Socket);
  tls.write('NOOP\r\n');
  t.equal(await lines.line(), '250 yes NOOP');
  const [worker] = srv.workers();
  t.ok(worker !== undefined, 'one worker');
  const closed = new Promise((r) => tls.once('close', r));
  process.kill(worker!, 'SIGKILL');
  await closed;
  t.pass('the client sees its connection closed');
  const pid = readReport(dir, 'pid').trim();
  await srv.logged(new RegExp(`worker 1 \\(pid ${worker}\\) died on SIGKILL: 1 connection\\(s\\) lost; starting another`));
  await srv.logged(new RegExp(`pid ${pid}: end: exit \\d+, worker lost`));
  await srv.logged(/worker 1 \(pid \d+\) started/);
  const again = await startTls(port);
  const l2 = new Lines(again as unknown as Socket);
  again.write('NOOP\r\n');
  t.equal(await l2.line(), '250 yes NOOP', 'a new session is served');
  again.destroy();
});

t.test('SIGTERM with --grace 0: no longer accepting, SIGTERM to the apps, exit 0 once they are gone, nothing left', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const { srv, port } = await serve(t, baseEnv(certs, { REPORT: dir }), ['-w', '2', '--grace', '0']);
  const c = await plainClient(port);
  t.equal(await c.lines.line(), '220 test ESMTP');
  const pid = Number(readReport(dir, 'pid'));
  const workers = srv.workers();
  t.equal(workers.length, 2);
  srv.proc.kill('SIGTERM');
  const r = await srv.exited;
  t.same(r, { code: 0, signal: null }, 'exit 0');
  t.match(srv.err, /SIGTERM: no longer accepting; 1 session\(s\) left, SIGTERM sent to 1 app\(s\)/);
  t.match(srv.err, new RegExp(`pid ${pid}: end: signal SIGTERM, plaintext`));
  t.match(srv.err, /exiting\n$/);
  t.ok(await allGone([pid, ...workers]), 'app and workers gone');
  c.sock.destroy();
});

t.test('systemd Accept=no: the listening socket from LISTEN_FDS (systemd-socket-activate)', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  // Ports the kernel just handed out, not a guess that another test may hold.
  const ports = new Set<number>();
  while (ports.size < 4) ports.add(await freePort());
  const [port, ...others] = [...ports] as [number, ...number[]];
  // Four sockets, fds 3 to 6, none close-on-exec: the apps must see none of them.
  const more = others.flatMap((p) => ['-l', `127.0.0.1:${p}`]);
  const srv = new Server(['-l', `127.0.0.1:${port}`, ...more, '-E', 'CERTFILE', '-E', 'KEYFILE', '-E', 'REPORT', SERVER, '-v', APP], baseEnv(certs, { REPORT: dir }), 'systemd-socket-activate');
  t.teardown(() => srv.stop());
  await srv.logged(/Listening on/);
  const tls = await startTls(port);
  const lines = new Lines(tls as unknown as Socket);
  tls.write('QUIT\r\n');
  t.equal(await lines.line(), '221 bye');
  await srv.logged(/end: exit 0, tls/);
  t.match(srv.err, new RegExp(`listening on 127\\.0\\.0\\.1 port ${port}, 127\\.0\\.0\\.1 port ${others[0]}, `), 'every socket served');
  t.notMatch(readReport(dir, 'env'), /^LISTEN_/m);
  t.same(appFds(dir), ['0', '1', '2', '3', '4', '5'], 'no listening socket leaked into the app');
});

t.test('an fd inherited without close-on-exec reaches no app', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  // fd 7 of the server: a pipe without close-on-exec, as a careless supervisor might leave.
  const srv = new Server(['-1', '--implicit', '127.0.0.1', '0', APP], baseEnv(certs, { REPORT: dir }), SERVER, ['ignore', 'ignore', 'ignore', 'ignore', 'pipe']);
  t.teardown(() => srv.stop());
  const port = await srv.port();
  const tls = await new Promise<TLSSocket>((res, rej) => {
    const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    s.once('secureConnect', () => res(s));
    s.once('error', rej);
  });
  const lines = new Lines(tls as unknown as Socket);
  t.equal(await lines.line(), '220 test ESMTP');
  tls.write('QUIT\r\n');
  await lines.line();
  t.same(appFds(dir), ['0', '1', '2'], 'fd 7 closed at start');
});

t.test('bad input: one line and a defined status, before listening', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const cases: Array<[string[], NodeJS.ProcessEnv, number, RegExp]> = [
    [['127.0.0.1', '0', APP], baseEnv(certs, { KEYFILE: join(dir, 'missing.pem') }), 111, /fatal: cannot read KEYFILE .*missing\.pem: no such file/],
    [['127.0.0.1', '0', APP], { PATH: process.env.PATH }, 111, /fatal: .*CERTFILE/],
    [['--bogus', '127.0.0.1', '0', APP], baseEnv(certs), 100, /^ucspi-tls-server: pid \d+: fatal: unknown option --bogus \(see ucspi-tls-server --help\)$/m],
    [['-c', '0', '127.0.0.1', '0', APP], baseEnv(certs), 100, /fatal: -c needs a whole number/],
    [['mail.example.test', '25', APP], baseEnv(certs), 100, /fatal: host must be an IP address/],
    [['127.0.0.1', '0'], baseEnv(certs), 100, /fatal: no app to run/],
    [['127.0.0.1', '0', join(dir, 'nope')], baseEnv(certs), 127, /fatal: cannot run .*nope: no such file/],
  ];
  for (const [args, env, status, re] of cases) {
    const r = await run(WITHOUT_TEST_HOOKS[0]!, [...WITHOUT_TEST_HOOKS.slice(1), SERVER, ...args], env);
    t.equal(r.status, status, `${args.join(' ')}: exit ${status}`);
    t.match(r.err, re);
    t.equal(r.err.trim().split('\n').length, 1, 'one line');
  }
  // The port is taken: exit 111, and no worker is left behind.
  const { port } = await serve(t, baseEnv(certs, { REPORT: dir }), []);
  const r = await run(WITHOUT_TEST_HOOKS[0]!, [...WITHOUT_TEST_HOOKS.slice(1), SERVER, '127.0.0.1', String(port), APP], baseEnv(certs));
  t.equal(r.status, 111);
  t.match(r.err, /^ucspi-tls-server: pid \d+: fatal: cannot listen on 127\.0\.0\.1 port \d+: address already in use$/m);
  // Workers of a server that failed would be orphans (parent 1) running our worker entry.
  const orphans = spawnSync('ps', ['-eo', 'ppid=,args='], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((l) => /^\s*1\s/.test(l) && / ucspi-tls-server-(worker|spawner)(\.js)?$/.test(l));
  t.same(orphans, [], 'no worker nor spawner left behind');
});

t.test('50 handshakes at once on one worker: each session gets its own TLS socket and its first line', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const { srv, port } = await serve(t, baseEnv(certs, { REPORT: dir, TLS_CMD: 'y' }), ['-w', '1', '-c', '100']);
  // Each client records every byte it decrypts, to its end: its own answers, each once.
  const one = async (i: number): Promise<string> => {
    const tls = await startTls(port);
    let got = '';
    tls.on('data', (d: Buffer) => (got += d.toString('latin1')));
    const ended = new Promise((r) => tls.once('end', r));
    tls.write(`NOOP ${i}\r\nQUIT\r\n`); // likely in one segment with the client's Finished
    await Promise.race([ended, sleep(15000)]);
    tls.destroy();
    return got;
  };
  const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => one(i).catch((e: Error) => e.message)));
  t.same(answers, Array.from({ length: 50 }, (_, i) => `250 yes NOOP ${i}\r\n221 bye\r\n`), 'every client its own answers, each once');
  t.notMatch(srv.err, /handshake|died|worker lost/, 'no handshake failed');
});

t.test('apps that close the control socket and exit at once: each decline is logged, before its end line', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  // The worker gets the app's three channels in three messages, and may see the control
  // socket's EOF before it has the other two, or the app's exit in the same turn.
  const app = join(dir, 'decline');
  writeFileSync(app, '#!/bin/sh\nexec 3>&-\nexit 4\n', { mode: 0o755 });
  const { srv, port } = await serve(t, baseEnv(certs), ['-w', '1', '-c', '100'], [app]);
  const N = 50;
  await Promise.all(
    Array.from({ length: N }, async () => {
      const { sock } = await plainClient(port);
      sock.resume();
      await new Promise((r) => sock.once('close', r));
    }),
  );
  const ends = () => [...srv.err.matchAll(/^ucspi-tls-server: pid (\d+): end: exit 4, plaintext, /gm)].map((m) => m[1]!);
  for (let i = 0; i < 250 && ends().length < N; i++) await sleep(20);
  t.equal(ends().length, N, 'every connection ended');
  for (const pid of ends()) {
    const declined = srv.err.indexOf(`ucspi-tls-server: pid ${pid}: app closed the control socket: no TLS\n`);
    t.ok(declined >= 0 && declined < srv.err.indexOf(`ucspi-tls-server: pid ${pid}: end: `), `pid ${pid}: the decline, then the end`);
  }
});

t.test('a node the workers cannot run (in a private folder): one line, exit 111, nothing left', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const hidden = join(dir, 'private');
  mkdirSync(hidden, { mode: 0o700 });
  copyFileSync(process.execPath, join(hidden, 'node'));
  chmodSync(join(hidden, 'node'), 0o755);
  const r = await run(WITHOUT_TEST_HOOKS[0]!, [...WITHOUT_TEST_HOOKS.slice(1), SERVER, '127.0.0.1', '0', APP], baseEnv(certs, { PATH: `${hidden}:${process.env.PATH}` }));
  t.equal(r.status, 111);
  t.match(r.err, new RegExp(`^ucspi-tls-server: pid \\d+: fatal: cannot start a TLS worker \\(${hidden}/node as 65534:65534\\): permission denied\\n$`));
});
