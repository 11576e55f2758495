// The same STARTTLS session under every launcher an operator uses, with several clients.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  allGone, APP, appFds, baseEnv, freePort, HELPER, Launcher, Lines, makeCert, readReport, replyVars, startTls,
  tempDir, waitFor,
} from './helpers';

/** One session with Node's tls client: a line through TLS, then QUIT. */
async function nodeSession(t: Test, port: number): Promise<void> {
  const tls = await startTls(port);
  const lines = new Lines(tls as unknown as import('node:net').Socket);
  tls.write('NOOP\r\n');
  t.equal(await lines.line(), '250 yes NOOP', 'a line through TLS');
  tls.write('QUIT\r\n');
  t.equal(await lines.line(), '221 bye');
  await new Promise((r) => tls.once('close', r));
}

/** Run a client program to the end, feeding it input lines slowly enough for STARTTLS. */
function runClient(cmd: string, args: string[], input: string[]): Promise<{ out: string; status: number | null }> {
  return new Promise((res) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
    p.stderr.on('data', (d: Buffer) => (out += d.toString('latin1')));
    let i = 0;
    const feed = (): void => {
      if (i < input.length) {
        p.stdin.write(input[i++]!);
        setTimeout(feed, 300);
      }
    };
    setTimeout(feed, 800);
    const kill = setTimeout(() => p.kill(), 20000);
    p.on('exit', (status) => {
      clearTimeout(kill);
      res({ out, status });
    });
  });
}

async function checkApp(t: Test, dir: string): Promise<void> {
  t.equal((await waitFor(join(dir, 'state'))).trim(), 'tls');
  t.same(appFds(dir), ['0', '1', '2', '3', '4', '5'], 'the app has exactly fds 0-5');
  const v = replyVars(readFileSync(join(dir, 'reply')));
  t.match(v.get('SSL_PROTOCOL'), /^TLSv1\.[23]$/);
  t.equal(v.get('SSL_SERVER_S_DN_CN'), 'mail.example.test');
  t.notMatch(readReport(dir, 'env'), /^(CERTFILE|KEYFILE)=/m);
}

t.test('systemd-socket-activate --accept --inetd, gnutls-cli --starttls-proto=smtp', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const port = await freePort();
  const env = baseEnv(certs, { REPORT: dir });
  const l = new Launcher('systemd-socket-activate', [
    '-l', `127.0.0.1:${port}`, '--accept', '--inetd', '-E', 'CERTFILE', '-E', 'KEYFILE', '-E', 'REPORT', HELPER, APP,
  ], env);
  t.teardown(() => l.stop());
  await l.ready(port);
  const r = await runClient('gnutls-cli', ['--insecure', '--starttls-proto=smtp', '--port', String(port), '127.0.0.1'],
    ['NOOP\r\n', 'QUIT\r\n']);
  t.match(r.out, /250 yes NOOP/);
  t.match(r.out, /221 bye/);
  await checkApp(t, dir);
});

t.test('systemd-socket-activate --accept (fd 3, LISTEN_FDS), Node tls', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const port = await freePort();
  const l = new Launcher('systemd-socket-activate', [
    '-l', `127.0.0.1:${port}`, '--accept', '-E', 'CERTFILE', '-E', 'KEYFILE', '-E', 'REPORT', HELPER, APP,
  ], baseEnv(certs, { REPORT: dir }));
  t.teardown(() => l.stop());
  await l.ready(port);
  await nodeSession(t, port);
  await checkApp(t, dir);
  t.notMatch(readReport(dir, 'env'), /^LISTEN_/m, 'LISTEN_* removed');
  t.match(readReport(dir, 'fds'), /^0 socket:/m, 'the connection is the app\'s fd 0');
});

t.test('xinetd -dontfork: the socket is fd 2 too; the log goes to the log file, never to the client', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const port = await freePort();
  const logFile = join(dir, 'helper.log');
  const conf = join(dir, 'xinetd.conf');
  writeFileSync(conf, `defaults
{
  log_type = FILE ${join(dir, 'xinetd.log')}
}
service utw-test
{
  type = UNLISTED
  port = ${port}
  bind = 127.0.0.1
  socket_type = stream
  protocol = tcp
  wait = no
  user = root
  server = ${HELPER}
  server_args = -v -l ${logFile} ${APP}
  env = PATH=${process.env.PATH} CERTFILE=${certs.cert} KEYFILE=${certs.key} REPORT=${dir}
}
`);
  const l = new Launcher('xinetd', ['-dontfork', '-f', conf, '-pidfile', join(dir, 'xinetd.pid')], { PATH: process.env.PATH });
  t.teardown(() => l.stop());
  await l.ready(port);
  const r = await runClient('openssl', ['s_client', '-starttls', 'smtp', '-connect', `127.0.0.1:${port}`, '-quiet'],
    ['NOOP\r\n', 'QUIT\r\n']);
  t.match(r.out, /250 yes NOOP/);
  t.notMatch(r.out, /ucspi-tls-wrap/, 'no log line reached the client');
  await checkApp(t, dir);
  t.match(readReport(dir, 'fds'), new RegExp(`^2 ${logFile}$`, 'm'), "the app's fd 2 is the log file, not the socket");
  await waitFor(logFile);
  for (let i = 0; i < 100 && !/app exited/.test(readFileSync(logFile, 'utf8')); i++) await new Promise((r) => setTimeout(r, 50));
  t.match(readFileSync(logFile, 'utf8'), /^ucspi-tls-wrap: pid \d+: TLS started: /m);
  t.match(readFileSync(logFile, 'utf8'), /^ucspi-tls-wrap: pid \d+: app exited with 0$/m);
});

for (const variant of [
  { name: 'socat EXEC: (one socketpair on fd 0/1)', opts: '' },
  { name: 'socat EXEC:,pipes (fd 0 and fd 1 are two different pipes)', opts: ',pipes' },
]) {
  t.test(variant.name, async (t) => {
    const dir = tempDir(t);
    const certs = makeCert(dir);
    const port = await freePort();
    const l = new Launcher('socat', [`TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `EXEC:${HELPER} ${APP}${variant.opts}`],
      baseEnv(certs, { REPORT: dir }));
    t.teardown(() => l.stop());
    await l.ready(port);
    await nodeSession(t, port);
    await checkApp(t, dir);
    const fds = readReport(dir, 'fds');
    if (variant.opts === ',pipes') {
      t.match(fds, /^0 pipe:/m);
      t.match(fds, /^1 pipe:/m);
    } else {
      t.match(fds, /^0 socket:/m);
    }
    t.ok(await allGone([Number(readReport(dir, 'pid'))]), 'the app is gone');
  });
}
