// Every row of the contract in interop.md, the bad ones included, in both modes: the helper
// under tcpserver and the resident server. One suite: a row differs only where the modes do.
import t, { type Test } from 'tap';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import {
  allGone, APP, appFds, baseEnv, HELPER, Lines, logged, makeCert, readReport, replyVars, SERVER, sleep, startTls, tempDir,
} from './helpers';
import { closed } from './hostile';
import { MODES, type Mode, type Served } from './modes';

const O_NONBLOCK = 0o4000;
const VERSION = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')).version as string;

/** Plaintext up to the app's `220 ready` after STARTTLS. */
async function toStartTls(port: number): Promise<{ sock: Socket; lines: Lines }> {
  const sock = connect({ port, host: '127.0.0.1' });
  const lines = new Lines(sock);
  await lines.reply('220');
  sock.write('STARTTLS\r\n');
  await lines.reply('220');
  return { sock, lines };
}

/** The app saw TLS fail: EOF with no reply, EOF on its read pipe, EPIPE on its write pipe. */
function assertFailureSeen(t: Test, dir: string): void {
  t.equal(readReport(dir, 'state').trim(), 'failed');
  t.equal(readFileSync(join(dir, 'reply')).length, 0, 'no reply on the control socket, just EOF');
  t.match(readReport(dir, 'read-pipe'), /^eof/, 'EOF on the read pipe');
  t.equal(readReport(dir, 'write-pipe').trim(), 'failed', 'the write pipe fails');
  t.match(readReport(dir, 'write-pipe-err'), /Broken pipe/, '... with EPIPE');
}

function rows(t: Test, mode: Mode): void {
  const line = (message: string): RegExp => new RegExp(`^${mode.conn}${message}$`, 'm');
  const setup = (t: Test, env: Record<string, string> = {}, flags: string[] = []): Promise<Served> => mode.serve(t, env, ['-v', ...flags]);

  t.test('y: handshake, no reply, the control socket closes (EOF)', async (t) => {
    const s = await setup(t, { TLS_CMD: 'y' });
    const { sock } = await toStartTls(s.port);
    const tls = tlsConnect({ socket: sock, rejectUnauthorized: false });
    await new Promise((r) => tls.once('secureConnect', r));
    const lines = new Lines(tls as unknown as Socket);
    tls.write('NOOP\r\n');
    t.equal(await lines.line(), '250 yes NOOP');
    t.equal(readFileSync(join(s.dir, 'reply')).length, 0, 'y gets no variables');
    tls.write('QUIT\r\n');
    t.equal(await lines.line(), '221 bye');
    t.equal(await s.appStatus(), 0);
    t.match(s.log(), line('TLS started: TLSv1\\.3 \\S+( .*)?'));
    tls.destroy();
    await s.finish(t);
  });

  t.test('Y: handshake, the variables NUL-terminated then EOF; plaintext fd 0 was blocking; no secrets in the app', async (t) => {
    const s = await setup(t);
    const tls = await startTls(s.port, { servername: 'mail.example.test' });
    const lines = new Lines(tls as unknown as Socket);
    tls.write('NOOP\r\n');
    t.equal(await lines.line(), '250 yes NOOP');
    const raw = readFileSync(join(s.dir, 'reply'));
    t.equal(raw.subarray(-2).toString('hex'), '0000', 'VAR=val\\0 ... \\0: the reply ends with two NULs (then EOF: the app read on to it)');
    const v = replyVars(raw);
    t.equal(v.get('SSL_PROTOCOL'), tls.getProtocol());
    t.equal(v.get('SSL_CIPHER'), tls.getCipher().name);
    t.equal(v.get('SSL_TLS_SNI'), 'mail.example.test');
    t.equal(v.get('SSL_SERVER_S_DN_CN'), 'mail.example.test');
    t.equal(v.get('SSL_VERSION_INTERFACE'), `${mode.program}/${VERSION}`);
    t.same(appFds(s.dir), ['0', '1', '2', '3', '4', '5'], 'exactly fds 0-5');
    t.equal(parseInt(readReport(s.dir, 'fd0-flags'), 8) & O_NONBLOCK, 0, 'fd 0 blocking in plaintext');
    const env = readReport(s.dir, 'env');
    t.match(env, /^SSLCTLFD=3$/m);
    t.match(env, /^SSLREADFD=4$/m);
    t.match(env, /^SSLWRITEFD=5$/m);
    t.notMatch(env, /^(CERTFILE|KEYFILE)=/m, 'no TLS configuration in the app environment');
    tls.write('QUIT\r\n');
    t.equal(await lines.line(), '221 bye');
    t.equal(await s.appStatus(), 0);
    tls.destroy();
    await s.finish(t);
  });

  t.test('EOF on the control socket before a command: the app goes on in plaintext', async (t) => {
    const s = await setup(t, { TLS_CMD: 'none', QUIT_STATUS: '4' });
    const { sock, lines } = await toStartTls(s.port);
    sock.write('NOOP\r\n');
    t.equal(await lines.line(), '250 no NOOP', 'still plaintext, nothing consumed by the helper');
    sock.write('QUIT\r\n');
    t.equal(await lines.line(), '221 bye');
    t.equal(await s.appStatus(), 4);
    t.ok(await logged(s.launcher, line('app closed the control socket: no TLS')), 'one line says the app declined');
    t.equal(parseInt(readReport(s.dir, 'fd0-flags'), 8) & O_NONBLOCK, 0);
    await s.finish(t);
  });

  t.test('unknown command byte: one log line, control closed, the network untouched', async (t) => {
    const s = await setup(t, { TLS_CMD: 'x' });
    const { sock } = await toStartTls(s.port);
    const rest: Buffer[] = [];
    sock.on('data', (d: Buffer) => rest.push(d));
    await new Promise((r) => sock.once('close', r));
    t.equal(Buffer.concat(rest).length, 0, 'not one byte (no TLS alert) went to the client');
    t.equal(await s.appStatus(), 7, "the app's status");
    t.match(s.log(), line("unknown command 'x' \\(0x78\\) on the control socket: TLS not started"));
    assertFailureSeen(t, s.dir);
    t.equal(parseInt(readReport(s.dir, 'fd0-flags-after'), 8) & O_NONBLOCK, 0, 'fd 0 never touched (still blocking)');
    await s.finish(t);
  });

  t.test('garbage instead of a ClientHello: handshake fails, the app sees it', async (t) => {
    const s = await setup(t);
    const { sock } = await toStartTls(s.port);
    sock.write('GET / HTTP/1.0\r\n\r\n');
    await new Promise((r) => sock.once('close', r));
    t.equal(await s.appStatus(), 7);
    t.match(s.log(), line('handshake failed: client sent an HTTP request, not a TLS ClientHello'));
    assertFailureSeen(t, s.dir);
    await s.finish(t);
  });

  t.test('a TLS record that is not a valid ClientHello: OpenSSL refuses it', async (t) => {
    const s = await setup(t);
    const { sock } = await toStartTls(s.port);
    const body = Buffer.alloc(60, 0x41);
    sock.write(Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, body.length]), body]));
    await new Promise((r) => sock.once('close', r));
    t.equal(await s.appStatus(), 7);
    t.match(s.log(), line('handshake failed: .+'));
    assertFailureSeen(t, s.dir);
    await s.finish(t);
  });

  t.test('client gone mid-handshake', async (t) => {
    const s = await setup(t);
    const { sock } = await toStartTls(s.port);
    sock.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])); // a hello's first bytes
    sock.destroy();
    t.equal(await s.appStatus(), 7);
    t.match(s.log(), line('handshake failed: client closed the connection before its ClientHello'));
    assertFailureSeen(t, s.dir);
    await s.finish(t);
  });

  t.test('handshake timeout (-t 1)', async (t) => {
    const s = await setup(t, {}, ['-t', '1']);
    const { sock } = await toStartTls(s.port);
    const started = Date.now();
    t.equal(await s.appStatus(), 7);
    t.ok(Date.now() - started >= 900, 'not before the limit');
    t.match(s.log(), line('handshake timed out after 1 s'));
    assertFailureSeen(t, s.dir);
    sock.destroy();
    await s.finish(t);
  });

  t.test('the app exits without a command: its status', async (t) => {
    const s = await setup(t, { QUIT_STATUS: '5' });
    const sock = connect({ port: s.port, host: '127.0.0.1' });
    const lines = new Lines(sock);
    await lines.reply('220');
    sock.write('QUIT\r\n');
    t.equal(await lines.line(), '221 bye');
    t.equal(await s.appStatus(), 5);
    t.ok(await allGone([Number(readReport(s.dir, 'pid'))]));
    await closed(sock);
    await s.finish(t);
  });

  t.test('the app killed by a signal: 128+N', async (t) => {
    const s = await setup(t, { KILL_SIG: 'USR1' });
    const sock = connect({ port: s.port, host: '127.0.0.1' });
    const lines = new Lines(sock);
    await lines.reply('220');
    sock.write('KILL\r\n');
    t.equal(await s.appStatus(), 128 + 10);
    t.match(s.log(), mode.appEnded('SIGUSR1'));
    sock.destroy();
    await s.finish(t);
  });

  // The helper passes each signal on to the app and exits as the app did. The server, an
  // operator's daemon, ends every app with SIGTERM on a second SIGTERM or SIGINT (the first
  // lets sessions run for the grace period) and exits 0 once they are gone; on SIGHUP it
  // reads its files again, with a line, and goes on.
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    const n = { SIGTERM: 15, SIGINT: 2, SIGHUP: 1 }[sig];
    t.test(mode.program === 'ucspi-tls-wrap' ? `${sig} to the helper reaches the app` : `${sig} to the server`, async (t) => {
      const s = await setup(t);
      const sock = connect({ port: s.port, host: '127.0.0.1' });
      sock.on('error', () => {});
      const lines = new Lines(sock);
      await lines.reply('220');
      sock.write('SLEEP\r\n');
      await lines.line();
      const app = Number(readReport(s.dir, 'pid'));
      if (mode.program === 'ucspi-tls-wrap') {
        const helper = Number(/ok (\d+) /.exec(s.log())?.[1]);
        process.kill(helper, sig);
        t.equal(await s.appStatus(), 128 + n);
        t.ok(await allGone([helper, app]), 'nothing left running');
        sock.destroy();
        await s.finish(t);
      } else if (sig === 'SIGHUP') {
        process.kill(s.launcher.pid, sig);
        t.ok(await logged(s.launcher, /^ucspi-tls-server: reloaded \(SIGHUP\): 1 certificate, serial [0-9A-F]+$/m), 'one line says so');
        await sleep(300);
        t.ok(s.launcher.running, 'the server goes on');
        t.ok(readFileSync(`/proc/${app}/status`, 'utf8').includes('State:\tS'), 'the app goes on');
        await s.finish(t);
        t.equal(await s.appStatus(), 128 + 15, 'SIGTERM to the server ends the app with SIGTERM');
        sock.destroy();
      } else {
        // The first signal starts the grace period (--grace); a second one ends it.
        process.kill(s.launcher.pid, sig);
        t.ok(await logged(s.launcher, /^ucspi-tls-server: SIG(TERM|INT): no longer accepting; 1 session\(s\) left, 30 s to end$/m), 'the session may go on');
        process.kill(s.launcher.pid, sig);
        const r = await s.launcher.exit();
        t.same(r, { status: 0, signal: null }, 'the server exits 0 once the app is gone');
        t.equal(await s.appStatus(), 128 + 15, 'the app got SIGTERM');
        t.match(s.log(), /^ucspi-tls-server: SIG(TERM|INT) again: 1 session\(s\) left, SIGTERM sent to 1 app\(s\)$/m);
        t.ok(await allGone([app]), 'the app is gone');
        await closed(sock);
        await s.finish(t);
      }
    });
  }

  t.test('missing CERTFILE: one line, exit 111, the app never runs', async (t) => {
    const dir = tempDir(t);
    const r = await mode.runAlone([], [APP], { PATH: process.env.PATH, CERTFILE: join(dir, 'nope.pem'), REPORT: dir });
    t.equal(r.status, 111);
    t.match(r.stderr, new RegExp(`^${mode.fatal}cannot read CERTFILE \\S+nope\\.pem: no such file\n$`));
    t.notOk(existsSync(join(dir, 'pid')), 'the app did not run');
  });

  t.test('unreadable KEYFILE: exit 111, the app never runs', async (t) => {
    const dir = tempDir(t);
    const certs = makeCert(dir);
    const r = await mode.runAlone([], [APP], { PATH: process.env.PATH, CERTFILE: certs.cert, KEYFILE: dir, REPORT: dir });
    t.equal(r.status, 111);
    t.match(r.stderr, new RegExp(`^${mode.fatal}cannot read KEYFILE \\S+: is a directory\n$`));
    t.notOk(existsSync(join(dir, 'pid')));
  });

  t.test('usage errors: exit 100; --help and --version: exit 0', async (t) => {
    const env = { PATH: process.env.PATH, CERTFILE: '/dev/null' };
    const exe = mode.program === 'ucspi-tls-wrap' ? HELPER : SERVER;
    const run = (args: string[]): SpawnSyncReturns<string> =>
      spawnSync('env', ['-u', 'NODE_OPTIONS', exe, ...args], { env, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], timeout: 10000 });
    const none = run([]);
    t.equal(none.status, 100);
    if (mode.program === 'ucspi-tls-wrap') {
      t.match(none.stderr, /^ucspi-tls-wrap: pid \d+: fatal: no app to run \(see ucspi-tls-wrap --help\)\n$/);
    } else {
      t.match(none.stderr, /^ucspi-tls-server: pid \d+: fatal: give host and port \(or run from a systemd socket unit\) \(see ucspi-tls-server --help\)\n$/);
      const noApp = run(['127.0.0.1', '2525']);
      t.equal(noApp.status, 100);
      t.match(noApp.stderr, /^ucspi-tls-server: pid \d+: fatal: no app to run \(see ucspi-tls-server --help\)\n$/);
    }
    const bad = run(['--bogus', 'cat']);
    t.equal(bad.status, 100);
    t.match(bad.stderr, new RegExp(`^${mode.program}: pid \\d+: fatal: unknown option --bogus \\(see ${mode.program} --help\\)\n$`));
    const help = run(['--help']);
    t.equal(help.status, 0);
    t.match(help.stdout, new RegExp(`^usage: ${mode.program} `));
    const version = run(['-V']);
    t.equal(version.stdout, `${mode.program} ${VERSION}\n`);
  });

  t.test('the app cannot be run: 127, one line', async (t) => {
    const dir = tempDir(t);
    const r = await mode.runAlone([], [join(dir, 'no-such-app')], baseEnv(makeCert(dir)));
    t.equal(r.status, 127);
    t.match(r.stderr, new RegExp(`^${mode.fatal}cannot run \\S+no-such-app: no such file\n$`));
  });

  t.test('the app is not executable: 126, one line', async (t) => {
    const dir = tempDir(t);
    const app = join(dir, 'not-executable');
    writeFileSync(app, '#!/bin/sh\necho never\n', { mode: 0o644 });
    const r = await mode.runAlone([], [app], baseEnv(makeCert(dir)));
    t.equal(r.status, 126);
    t.equal(r.stdout, '');
    t.match(r.stderr, new RegExp(`^${mode.fatal}cannot run \\S+not-executable: permission denied\n$`));
  });

  t.test('fds the launcher inherited are not passed on to the app', async (t) => {
    // fd 7 open without close-on-exec in the launcher (and so in the helper).
    const s = await mode.serve(t, {}, [], { prefix: ['bash', '-c', 'exec 7</dev/null; exec "$@"', 'bash'] });
    const sock = connect({ port: s.port, host: '127.0.0.1' });
    const lines = new Lines(sock);
    await lines.reply('220');
    t.same(appFds(s.dir), ['0', '1', '2', '3', '4', '5']);
    sock.write('QUIT\r\n');
    await lines.line();
    await closed(sock);
    await s.finish(t);
  });

  t.test('-q: failures are not logged; without -v progress is not logged', async (t) => {
    const s = await mode.serve(t, { TLS_CMD: 'x' }, ['-q']);
    const { sock } = await toStartTls(s.port);
    await new Promise((r) => sock.once('close', r));
    t.ok(await allGone([Number(readReport(s.dir, 'pid'))]), 'the app has ended');
    await sleep(100);
    t.notMatch(s.log(), new RegExp(mode.program));
    await s.finish(t);
  });
}

for (const mode of MODES) t.test(mode.name, async (t) => rows(t, mode));


