// Every row of the contract in interop.md, the bad ones included, under tcpserver.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import {
  allGone, APP, appFds, baseEnv, freePort, HELPER, Launcher, Lines, makeCert, readReport, tcpserver, tempDir,
} from './helpers';

const O_NONBLOCK = 0o4000;

interface Setup {
  dir: string;
  port: number;
  srv: Launcher;
}

async function setup(t: Test, env: Record<string, string> = {}, flags: string[] = []): Promise<Setup> {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const port = await freePort();
  const srv = await tcpserver(port, baseEnv(certs, { REPORT: dir, ...env }), [HELPER, '-v', ...flags, APP]);
  t.teardown(() => srv.stop());
  return { dir, port, srv };
}

/** Plaintext up to the app's `220 ready` after STARTTLS. */
async function toStartTls(port: number): Promise<{ sock: Socket; lines: Lines }> {
  const sock = connect({ port, host: '127.0.0.1' });
  const lines = new Lines(sock);
  await lines.reply('220');
  sock.write('STARTTLS\r\n');
  await lines.reply('220');
  return { sock, lines };
}

/** Wait for tcpserver's end line; returns the helper's exit status. */
async function endStatus(srv: Launcher): Promise<number> {
  for (let i = 0; i < 500; i++) {
    const m = /end \d+ status (\d+)/.exec(srv.err);
    if (m) return Number(m[1]) >> 8 || Number(m[1]) & 0x7f;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no end line: ${srv.err}`);
}

/** The app saw TLS fail: EOF with no reply, EOF on its read pipe, EPIPE on its write pipe. */
function assertFailureSeen(t: Test, dir: string): void {
  t.equal(readReport(dir, 'state').trim(), 'failed');
  t.equal(readFileSync(join(dir, 'reply')).length, 0, 'no reply on the control socket, just EOF');
  t.match(readReport(dir, 'read-pipe'), /^eof/, 'EOF on the read pipe');
  t.equal(readReport(dir, 'write-pipe').trim(), 'failed', 'the write pipe fails');
  t.match(readReport(dir, 'write-pipe-err'), /Broken pipe/, '... with EPIPE');
}

t.test('y: handshake, no reply, the control socket closes (EOF)', async (t) => {
  const s = await setup(t, { TLS_CMD: 'y' });
  const { sock } = await toStartTls(s.port);
  const tls = (await import('node:tls')).connect({ socket: sock, rejectUnauthorized: false });
  await new Promise((r) => tls.once('secureConnect', r));
  const lines = new Lines(tls as unknown as Socket);
  tls.write('NOOP\r\n');
  t.equal(await lines.line(), '250 yes NOOP');
  t.equal(readFileSync(join(s.dir, 'reply')).length, 0, 'y gets no variables');
  tls.destroy();
});

t.test('EOF on the control socket before a command: the app goes on in plaintext', async (t) => {
  const s = await setup(t, { TLS_CMD: 'none', QUIT_STATUS: '4' });
  const { sock, lines } = await toStartTls(s.port);
  sock.write('NOOP\r\n');
  t.equal(await lines.line(), '250 no NOOP', 'still plaintext, nothing consumed by the helper');
  sock.write('QUIT\r\n');
  t.equal(await lines.line(), '221 bye');
  t.equal(await endStatus(s.srv), 4);
  t.match(s.srv.err, /app closed the control socket: no TLS/);
  t.equal(parseInt(readReport(s.dir, 'fd0-flags'), 8) & O_NONBLOCK, 0);
});

t.test('unknown command byte: one log line, control closed, the network untouched', async (t) => {
  const s = await setup(t, { TLS_CMD: 'x' });
  const { sock } = await toStartTls(s.port);
  const rest: Buffer[] = [];
  sock.on('data', (d: Buffer) => rest.push(d));
  await new Promise((r) => sock.once('close', r));
  t.equal(Buffer.concat(rest).length, 0, 'not one byte (no TLS alert) went to the client');
  t.equal(await endStatus(s.srv), 7, "the app's status");
  t.match(s.srv.err, /ucspi-tls-wrap: pid \d+: unknown command 'x' \(0x78\) on the control socket: TLS not started\n/);
  assertFailureSeen(t, s.dir);
  t.equal(parseInt(readReport(s.dir, 'fd0-flags-after'), 8) & O_NONBLOCK, 0, 'fd 0 never touched (still blocking)');
});

t.test('garbage instead of a ClientHello: handshake fails, the app sees it', async (t) => {
  const s = await setup(t);
  const { sock } = await toStartTls(s.port);
  sock.write('GET / HTTP/1.0\r\n\r\n');
  await new Promise((r) => sock.once('close', r));
  t.equal(await endStatus(s.srv), 7);
  t.match(s.srv.err, /handshake failed: client sent an HTTP request, not a TLS ClientHello/);
  assertFailureSeen(t, s.dir);
});

t.test('a TLS record that is not a valid ClientHello: OpenSSL refuses it', async (t) => {
  const s = await setup(t);
  const { sock } = await toStartTls(s.port);
  const body = Buffer.alloc(60, 0x41);
  sock.write(Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, body.length]), body]));
  await new Promise((r) => sock.once('close', r));
  t.equal(await endStatus(s.srv), 7);
  t.match(s.srv.err, /handshake failed: /);
  assertFailureSeen(t, s.dir);
});

t.test('client gone mid-handshake', async (t) => {
  const s = await setup(t);
  const { sock } = await toStartTls(s.port);
  sock.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])); // a hello's first bytes
  sock.destroy();
  t.equal(await endStatus(s.srv), 7);
  t.match(s.srv.err, /handshake failed: client closed the connection before its ClientHello/);
  assertFailureSeen(t, s.dir);
});

t.test('handshake timeout (-t 1)', async (t) => {
  const s = await setup(t, {}, ['-t', '1']);
  const { sock } = await toStartTls(s.port);
  const started = Date.now();
  t.equal(await endStatus(s.srv), 7);
  t.ok(Date.now() - started >= 900, 'not before the limit');
  t.match(s.srv.err, /handshake timed out after 1 s/);
  assertFailureSeen(t, s.dir);
  sock.destroy();
});

t.test('the app exits without a command: its status', async (t) => {
  const s = await setup(t, { QUIT_STATUS: '5' });
  const sock = connect({ port: s.port, host: '127.0.0.1' });
  const lines = new Lines(sock);
  await lines.reply('220');
  sock.write('QUIT\r\n');
  t.equal(await lines.line(), '221 bye');
  t.equal(await endStatus(s.srv), 5);
  const pid = Number(readReport(s.dir, 'pid'));
  t.ok(await allGone([pid]));
});

t.test('the app killed by a signal: 128+N', async (t) => {
  const s = await setup(t, { KILL_SIG: 'USR1' });
  const sock = connect({ port: s.port, host: '127.0.0.1' });
  const lines = new Lines(sock);
  await lines.reply('220');
  sock.write('KILL\r\n');
  t.equal(await endStatus(s.srv), 128 + 10);
  t.match(s.srv.err, /app exited on SIGUSR1/);
});

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  t.test(`${sig} to the helper reaches the app`, async (t) => {
    const s = await setup(t);
    const sock = connect({ port: s.port, host: '127.0.0.1' });
    const lines = new Lines(sock);
    await lines.reply('220');
    sock.write('SLEEP\r\n');
    await lines.line();
    const helperPid = Number(/ok (\d+) /.exec(s.srv.err)?.[1]);
    process.kill(helperPid, sig);
    const n = { SIGTERM: 15, SIGINT: 2, SIGHUP: 1 }[sig];
    t.equal(await endStatus(s.srv), 128 + n);
    t.ok(await allGone([helperPid, Number(readReport(s.dir, 'pid'))]), 'nothing left running');
    sock.destroy();
  });
}

t.test('missing CERTFILE: one line, exit 111, the app never runs', async (t) => {
  const dir = tempDir(t);
  const r = spawnSync(HELPER, [APP], {
    env: { PATH: process.env.PATH, CERTFILE: join(dir, 'nope.pem'), REPORT: dir },
    stdio: ['pipe', 'pipe', 'pipe'],
    encoding: 'utf8',
  });
  t.equal(r.status, 111);
  t.match(r.stderr, /^ucspi-tls-wrap: pid \d+: fatal: cannot read CERTFILE \S+nope\.pem: no such file\n$/);
  t.notOk(existsSync(join(dir, 'pid')), 'the app did not run');
});

t.test('unreadable KEYFILE: exit 111, the app never runs', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const r = spawnSync(HELPER, [APP], {
    env: { PATH: process.env.PATH, CERTFILE: certs.cert, KEYFILE: dir, REPORT: dir },
    stdio: ['pipe', 'pipe', 'pipe'],
    encoding: 'utf8',
  });
  t.equal(r.status, 111);
  t.match(r.stderr, /cannot read KEYFILE \S+: is a directory\n$/);
  t.notOk(existsSync(join(dir, 'pid')));
});

t.test('usage errors: exit 100; --help and --version: exit 0', async (t) => {
  const env = { PATH: process.env.PATH, CERTFILE: '/dev/null' };
  const none = spawnSync(HELPER, [], { env, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  t.equal(none.status, 100);
  t.equal(none.stderr, `ucspi-tls-wrap: pid ${none.pid}: fatal: no app to run (see ucspi-tls-wrap --help)\n`);
  const bad = spawnSync(HELPER, ['--bogus', 'cat'], { env, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  t.equal(bad.status, 100);
  t.equal(bad.stderr, `ucspi-tls-wrap: pid ${bad.pid}: fatal: unknown option --bogus (see ucspi-tls-wrap --help)\n`);
  const help = spawnSync(HELPER, ['--help'], { env, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  t.equal(help.status, 0);
  t.match(help.stdout, /^usage: ucspi-tls-wrap /);
  const version = spawnSync(HELPER, ['-V'], { env, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  t.equal(version.stdout, `ucspi-tls-wrap ${JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')).version}\n`);
});

t.test('the app cannot be run: 127, one line', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const r = spawnSync(HELPER, [join(dir, 'no-such-app')], {
    env: baseEnv(certs),
    stdio: ['pipe', 'pipe', 'pipe'],
    encoding: 'utf8',
  });
  t.equal(r.status, 127);
  t.match(r.stderr, /^ucspi-tls-wrap: pid \d+: fatal: cannot run \S+no-such-app: no such file\n$/);
});

t.test('the app is not executable: 126, one line', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const app = join(dir, 'not-executable');
  writeFileSync(app, '#!/bin/sh\necho never\n', { mode: 0o644 });
  const r = spawnSync(HELPER, [app], { env: baseEnv(certs), stdio: ['pipe', 'pipe', 'pipe'], encoding: 'utf8' });
  t.equal(r.status, 126);
  t.equal(r.stdout, '');
  t.match(r.stderr, /^ucspi-tls-wrap: pid \d+: fatal: cannot run \S+not-executable: permission denied\n$/);
});

t.test('fds the launcher leaked are not passed on to the app', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const port = await freePort();
  // fd 7 open without close-on-exec in tcpserver, so in the helper too.
  const l = new Launcher('bash', ['-c', `exec 7</dev/null; exec tcpserver 127.0.0.1 ${port} "$@"`, 'bash', HELPER, APP],
    baseEnv(certs, { REPORT: dir }));
  t.teardown(() => l.stop());
  await l.ready(port);
  const sock = connect({ port, host: '127.0.0.1' });
  const lines = new Lines(sock);
  await lines.reply('220');
  t.same(appFds(dir), ['0', '1', '2', '3', '4', '5']);
  sock.destroy();
});

t.test('-q: failures are not logged; without -v progress is not logged', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const port = await freePort();
  const srv = await tcpserver(port, baseEnv(certs, { REPORT: dir, TLS_CMD: 'x' }), [HELPER, '-q', APP]);
  t.teardown(() => srv.stop());
  const { sock } = await toStartTls(port);
  await new Promise((r) => sock.once('close', r));
  await endStatus(srv);
  t.notMatch(srv.err, /ucspi-tls-wrap/);
});
