// ucspi-tls-server under systemd's readiness protocol (Type=notify): the messages it sends
// to NOTIFY_SOCKET, read from a real AF_UNIX datagram socket as systemd reads them, with the
// sender's pid (SCM_CREDENTIALS) by which systemd attributes each one to the service.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import t, { type Test } from 'tap';
import { alive, APP, appForAnyUser, baseEnv, freePort, Lines, logged, makeCert, ROOT, SERVER, ServerLauncher, sleep, startTls, tempDir, within, WITHOUT_TEST_HOOKS } from './helpers';
import { assignments, NotifySocket } from './notify-socket';
import { selfSigned } from './pki';

/** The server as systemd starts it: NOTIFY_SOCKET (and the watchdog's variables) in its environment. */
function server(t: Test, port: number, env: NodeJS.ProcessEnv, flags: string[]): ServerLauncher {
  const srv = new ServerLauncher(WITHOUT_TEST_HOOKS[0]!, [...WITHOUT_TEST_HOOKS.slice(1), SERVER, ...flags, '127.0.0.1', String(port), APP], env);
  t.teardown(() => srv.stop());
  return srv;
}

/** One STARTTLS session through to QUIT. */
async function session(port: number): Promise<void> {
  const tls = await within(startTls(port), 20000, 'STARTTLS');
  const lines = new Lines(tls as unknown as Socket);
  tls.write('QUIT\r\n');
  if ((await within(lines.line(), 10000, 'QUIT')) !== '221 bye') throw new Error('no 221');
  tls.destroy();
}

const FIGURES = /^connections: \d+ now \(limit 40\), \d+ accepted, \d+ refused; tls: \d+ started, \d+ handshakes failed; workers: 2 of 2 answering$/;

t.test('READY=1 once listening, RELOADING=1 and READY=1 around reloads (one refused), STATUS= with the figures, STOPPING=1', async (t) => {
  const dir = tempDir(t, 'utw-notify-');
  const certs = makeCert(dir);
  const notify = new NotifySocket(t, join(dir, 'notify'));
  await notify.ready();
  const port = await freePort();
  const srv = server(t, port, baseEnv(certs, { REPORT: dir, NOTIFY_SOCKET: notify.where }), ['-w', '2']);

  const ready = await notify.next(0, (a) => a.has('READY'));
  t.equal(ready.at, 0, 'READY=1 is the first message');
  t.same([...ready.a.keys()], ['READY', 'STATUS']);
  t.equal(ready.a.get('READY'), '1');
  t.match(ready.a.get('STATUS'), FIGURES, 'with the figures as its status');
  t.match(ready.a.get('STATUS'), /^connections: 0 now \(limit 40\), 0 accepted, 0 refused; /);
  // systemd attributes a message by its sender: the launcher, the service's main PID, so
  // that NotifyAccess=main accepts it (systemd-notify sends as its parent when root).
  t.equal(ready.m.pid, srv.pid, "sent as the launcher's pid");
  t.match(srv.err, /^ucspi-tls-server: listening on 127\.0\.0\.1 port \d+, 2 workers, at most 40 connections$/m, 'sent once the server listens');
  t.equal(srv.workers().length, 2, 'and its workers are up');
  // Nothing else waited for: a client connects as soon as systemd hears READY=1.
  await session(port);
  await srv.end({ nth: 0 });
  const env = readFileSync(join(dir, 'env'), 'utf8');
  t.match(env, /^REPORT=/m, "the app's environment as written");
  t.notMatch(env, /^(NOTIFY_SOCKET|WATCHDOG_USEC|WATCHDOG_PID)=/m, 'without NOTIFY_SOCKET: the app cannot speak for the service');

  // SIGUSR1: the figures, logged and as the status.
  srv.proc.kill('SIGUSR1');
  const status = await notify.next(1, (a) => a.has('STATUS'));
  t.same([...status.a.keys()], ['STATUS'], 'the status alone');
  t.match(status.a.get('STATUS'), /^connections: 0 now \(limit 40\), 1 accepted, 0 refused; tls: 1 started, 0 handshakes failed; workers: 2 of 2 answering$/);

  // SIGHUP: RELOADING=1 with the time it began on CLOCK_MONOTONIC (the same clock in every
  // process: before the signal, before the message arrived), then READY=1.
  const before = process.hrtime.bigint() / 1000n;
  srv.proc.kill('SIGHUP');
  const reloading = await notify.next(status.at + 1, (a) => a.has('RELOADING'));
  const got = process.hrtime.bigint() / 1000n;
  t.same([...reloading.a.keys()], ['RELOADING', 'MONOTONIC_USEC']);
  const usec = BigInt(reloading.a.get('MONOTONIC_USEC')!);
  t.ok(usec >= before && usec <= got, `MONOTONIC_USEC=${usec}: after ${before}, before ${got}`);
  const reloaded = await notify.next(reloading.at + 1, (a) => a.has('READY'));
  t.equal(reloaded.at, reloading.at + 1, 'READY=1 right after');
  t.match(reloaded.a.get('STATUS'), FIGURES, 'the status: the figures, nothing refused');
  t.match(srv.err, /^ucspi-tls-server: reloaded \(SIGHUP\): 1 certificate/m);

  // A reload refused (the certificate is not one): the same two messages, the status says so.
  const good = readFileSync(certs.cert);
  writeFileSync(certs.cert, 'not a certificate\n');
  srv.proc.kill('SIGHUP');
  const refusing = await notify.next(reloaded.at + 1, (a) => a.has('RELOADING'));
  t.ok(refusing.a.has('MONOTONIC_USEC'));
  const refused = await notify.next(refusing.at + 1, (a) => a.has('READY'));
  t.equal(refused.at, refusing.at + 1, 'READY=1 right after: the old files still serve');
  const words = refused.a.get('STATUS')!;
  t.match(words, /^reload \(SIGHUP\) refused: .*CERTFILE.*; still serving the files read before \| connections: /, 'the status says the reload was refused, and why');
  t.ok(srv.err.includes(`ucspi-tls-server: ${words.slice(0, words.indexOf(' | '))}\n`), 'in the words of the log line');
  await session(port);
  await srv.end({ nth: 1 });

  // The files put right: the next reload clears it.
  writeFileSync(certs.cert, good);
  srv.proc.kill('SIGHUP');
  const fixed = await notify.next(refused.at + 1, (a) => a.has('READY'));
  t.match(fixed.a.get('STATUS'), FIGURES, 'refused no longer');

  srv.proc.kill('SIGTERM');
  t.same(await srv.exit(), { status: 0, signal: null });
  const states = notify.states();
  t.same(states.map((a) => [...a.keys()][0]), ['READY', 'RELOADING', 'READY', 'RELOADING', 'READY', 'RELOADING', 'READY', 'STOPPING'], 'the states in order');
  const stopping = states[states.length - 1]!;
  t.equal(stopping.get('STOPPING'), '1');
  t.equal(stopping.get('STATUS'), 'SIGTERM: no longer accepting; 0 session(s) left');
  t.equal(notify.sent()[notify.sent().length - 1]!.data, 'STOPPING=1\nSTATUS=SIGTERM: no longer accepting; 0 session(s) left', 'STOPPING=1 is the last message, sent before the server exits');
  t.ok(notify.sent().every((m) => m.pid === srv.pid), 'every message as the launcher');
});

t.test('a SIGHUP during the start: no RELOADING=1 or READY=1 before the real READY=1', async (t) => {
  const dir = tempDir(t, 'utw-notify-early-');
  const notify = new NotifySocket(t, join(dir, 'notify'));
  await notify.ready();
  const port = await freePort();
  const srv = server(t, port, baseEnv(makeCert(dir), { REPORT: dir, NOTIFY_SOCKET: notify.where }), ['-w', '4']);
  // As soon as the launcher catches SIGHUP (SigCgt, bit 0), while its workers are still starting.
  const catchesHup = (): boolean => {
    try {
      return (BigInt(`0x${/^SigCgt:\s+([0-9a-f]+)$/m.exec(readFileSync(`/proc/${srv.pid}/status`, 'utf8'))![1]}`) & 1n) === 1n;
    } catch {
      return false;
    }
  };
  for (let i = 0; i < 2000 && !catchesHup(); i++) await sleep(2);
  srv.proc.kill('SIGHUP');
  t.ok(await logged(srv, /listening on/), 'listening');
  const ready = await notify.next(0, (a) => a.has('READY'));
  t.ok(srv.err.indexOf('reloaded (SIGHUP)') >= 0 && srv.err.indexOf('reloaded (SIGHUP)') < srv.err.indexOf('listening on'), 'the reload came before the server listened');
  t.equal(ready.at, 0, 'READY=1 is still the first message');
  srv.proc.kill('SIGTERM');
  t.same(await srv.exit(), { status: 0, signal: null });
  t.same(notify.states().map((a) => [...a.keys()][0]), ['READY', 'STOPPING']);
});

t.test('--watch: a renewal, told as a reload; an abstract socket (@name)', async (t) => {
  const dir = tempDir(t, 'utw-notify-watch-');
  const certs = makeCert(dir);
  const notify = new NotifySocket(t, `@utw-notify-${randomBytes(6).toString('hex')}`);
  await notify.ready();
  const port = await freePort();
  const srv = server(t, port, baseEnv(certs, { REPORT: dir, NOTIFY_SOCKET: notify.where }), ['-w', '2', '--watch']);
  const ready = await notify.next(0, (a) => a.has('READY'));
  t.equal(ready.m.pid, srv.pid);

  // A renewal as certbot does it: new files made aside, renamed over the old ones.
  const aside = join(dir, 'next');
  mkdirSync(aside);
  const fresh = selfSigned(aside, 'new', { subject: '/CN=mail.example.test', san: 'DNS:mail.example.test' });
  renameSync(fresh.key, certs.key);
  renameSync(fresh.cert, certs.cert);
  const reloading = await notify.next(ready.at + 1, (a) => a.has('RELOADING'), 20000);
  t.match(reloading.a.get('MONOTONIC_USEC'), /^\d+$/);
  const reloaded = await notify.next(reloading.at + 1, (a) => a.has('READY'));
  t.equal(reloaded.at, reloading.at + 1, 'then READY=1');
  t.match(reloaded.a.get('STATUS'), FIGURES);
  t.match(srv.err, /^ucspi-tls-server: reloaded \(files changed\): 1 certificate/m);
  srv.proc.kill('SIGTERM');
  t.same(await srv.exit(), { status: 0, signal: null });
  t.same(notify.states().map((a) => [...a.keys()][0]), ['READY', 'RELOADING', 'READY', 'STOPPING']);
});

t.test('a server started as another user than root: each message from systemd-notify itself, read before it exits (NotifyAccess=all)', async (t) => {
  const dir = tempDir(t, 'utw-notify-user-');
  chmodSync(dir, 0o755);
  // Installed, as an operator has it: the checkout may be in a folder only root can enter.
  const prefix = join(dir, 'usr');
  execFileSync('make', ['-s', '-C', ROOT, 'install', `PREFIX=${prefix}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  const certs = makeCert(dir);
  chmodSync(certs.key, 0o644);
  const report = join(dir, 'report');
  mkdirSync(report, { mode: 0o777 });
  chmodSync(report, 0o777);
  // Abstract: no file whose mode would keep nobody out (systemd's own socket is 0777).
  const notify = new NotifySocket(t, `@utw-notify-${randomBytes(6).toString('hex')}`);
  await notify.ready();
  const port = await freePort();
  const env = { PATH: process.env.PATH, CERTFILE: certs.cert, KEYFILE: certs.key, REPORT: report, NOTIFY_SOCKET: notify.where };
  const srv = new ServerLauncher('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...WITHOUT_TEST_HOOKS, join(prefix, 'bin', 'ucspi-tls-server'), '-w', '1', '127.0.0.1', String(port), appForAnyUser(t)], env);
  t.teardown(() => srv.stop());
  const ready = await notify.next(0, (a) => a.has('READY'));
  await session(port);
  await srv.end({ nth: 0 });
  srv.proc.kill('SIGHUP');
  await notify.next(ready.at + 1, (a) => a.has('READY'));
  srv.proc.kill('SIGTERM');
  t.same(await srv.exit(), { status: 0, signal: null });
  t.same(notify.states().map((a) => [...a.keys()][0]), ['READY', 'RELOADING', 'READY', 'STOPPING'], 'every state, in order');

  const all = notify.messages;
  const sent = all.filter((m) => m.data !== 'BARRIER=1');
  t.ok(sent.every((m) => m.uid === 65534 && m.pid !== srv.pid), 'not as the launcher: only root may send as another pid');
  t.same(new Set(sent.map((m) => m.pid)).size, sent.length, 'each from a systemd-notify of its own');
  for (const m of sent) {
    const next = all[all.indexOf(m) + 1];
    t.same(next && { pid: next.pid, data: next.data }, { pid: m.pid, data: 'BARRIER=1' }, `${m.data.split('\n')[0]}: then BARRIER=1 from the same process, which waits until it is read`);
  }
  t.ok(sent.every((m) => !alive(m.pid)), 'none left running');
});

t.test('WATCHDOG=1 every half WATCHDOG_USEC while every worker answers; none while one is stopped', async (t) => {
  const dir = tempDir(t, 'utw-notify-watchdog-');
  const certs = makeCert(dir);
  const notify = new NotifySocket(t, join(dir, 'notify'));
  await notify.ready();
  const port = await freePort();
  const srv = server(t, port, baseEnv(certs, { REPORT: dir, NOTIFY_SOCKET: notify.where, WATCHDOG_USEC: '2000000' }), ['-w', '2', '--keep-env']);
  await notify.next(0, (a) => a.has('READY'));
  const pings = (): number => notify.sent().filter((m) => assignments(m.data).has('WATCHDOG')).length;

  // Every second: some 4 in 4 s; counted loosely, the machine may be busy.
  const start = pings();
  await sleep(4000);
  const running = pings() - start;
  t.ok(running >= 2 && running <= 8, `${running} pings in 4 s at 2 s WATCHDOG_USEC`);
  t.ok(notify.sent().every((m) => m.pid === srv.pid), 'each as the launcher');
  await session(port);
  await srv.end({ nth: 0 });
  t.notMatch(readFileSync(join(dir, 'env'), 'utf8'), /^(NOTIFY_SOCKET|WATCHDOG_USEC|WATCHDOG_PID)=/m, "none of it in the app's environment, even with --keep-env");
  t.match(readFileSync(join(dir, 'env'), 'utf8'), /^CERTFILE=/m, '(--keep-env keeps the rest)');

  // A worker that does not answer (stopped, as a hung one): no ping, and one line says why.
  const [stopped] = srv.workers();
  process.kill(stopped!, 'SIGSTOP');
  t.teardown(() => {
    try {
      process.kill(stopped!, 'SIGCONT');
    } catch {
      // gone already
    }
  });
  t.ok(await logged(srv, new RegExp(`^ucspi-tls-server: watchdog: worker \\d \\(pid ${stopped}\\) did not answer within 500 ms: WATCHDOG=1 not sent$`, 'm'), 10000), 'the log says why');
  // A ping already on its way when the worker stopped may still arrive: counted from later on.
  await sleep(1000);
  const quiet = pings();
  await sleep(3000);
  t.equal(pings() - quiet, 0, 'no ping while the worker is stopped');
  t.equal(srv.err.match(new RegExp(`watchdog: worker \\d \\(pid ${stopped}\\)`, 'g'))?.length, 1, 'one line, not one a tick');
  const silent = await notify.next(0, (a) => /workers: 1 of 2 answering$/.test(a.get('STATUS') ?? ''));
  t.ok(silent, 'the status says so');

  process.kill(stopped!, 'SIGCONT');
  await notify.next(notify.sent().length, (a) => a.has('WATCHDOG'));
  t.pass('pings again once it answers');
  srv.proc.kill('SIGTERM');
  t.same(await srv.exit(), { status: 0, signal: null });
});

t.test('WATCHDOG_PID of another process: the watchdog is not ours, no ping', async (t) => {
  const dir = tempDir(t, 'utw-notify-pid-');
  const notify = new NotifySocket(t, join(dir, 'notify'));
  await notify.ready();
  const port = await freePort();
  const srv = server(t, port, baseEnv(makeCert(dir), { REPORT: dir, NOTIFY_SOCKET: notify.where, WATCHDOG_USEC: '400000', WATCHDOG_PID: '1' }), ['-w', '1']);
  await notify.next(0, (a) => a.has('READY'));
  await sleep(1500);
  t.equal(notify.sent().filter((m) => assignments(m.data).has('WATCHDOG')).length, 0);
  srv.proc.kill('SIGTERM');
  t.same(await srv.exit(), { status: 0, signal: null });
});

t.test('no systemd-notify in PATH: one line, and the server serves', async (t) => {
  const dir = tempDir(t, 'utw-notify-missing-');
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  // Every command of the system's but systemd-notify (the app runs some), and this node.
  for (const name of readdirSync('/usr/bin')) if (name !== 'systemd-notify') symlinkSync(join('/usr/bin', name), join(bin, name));
  if (!existsSync(join(bin, 'node'))) symlinkSync(process.execPath, join(bin, 'node'));
  const notify = new NotifySocket(t, join(dir, 'notify'));
  await notify.ready();
  const port = await freePort();
  const srv = server(t, port, { ...baseEnv(makeCert(dir), { REPORT: dir, NOTIFY_SOCKET: notify.where }), PATH: bin }, ['-w', '1']);
  await srv.ready(port);
  t.match(srv.err, new RegExp(`^ucspi-tls-server: NOTIFY_SOCKET is set, but systemd-notify is not in PATH \\(${bin.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\): systemd is not told when the server is ready, reloads or stops`, 'm'));
  await session(port);
  await srv.end({ nth: 0 });
  srv.proc.kill('SIGHUP');
  t.ok(await logged(srv, /reloaded \(SIGHUP\)/));
  srv.proc.kill('SIGTERM');
  t.same(await srv.exit(), { status: 0, signal: null });
  t.equal(srv.err.match(/systemd-notify/g)?.length, 1, 'said once');
  t.same(notify.sent(), [], 'nothing sent');
});

t.test('NOTIFY_SOCKET where nobody listens: one line, and the server serves', async (t) => {
  const dir = tempDir(t, 'utw-notify-nobody-');
  const port = await freePort();
  const where = join(dir, 'no-such-socket');
  const srv = server(t, port, baseEnv(makeCert(dir), { REPORT: dir, NOTIFY_SOCKET: where }), ['-w', '1']);
  await srv.ready(port);
  t.ok(await logged(srv, /^ucspi-tls-server: systemd-notify READY=1: .+; not told to systemd \(NOTIFY_SOCKET=.*no-such-socket\)$/m, 10000), 'one line says the message did not go');
  await session(port);
  await srv.end({ nth: 0 });
  srv.proc.kill('SIGHUP');
  t.ok(await logged(srv, /reloaded \(SIGHUP\)/));
  srv.proc.kill('SIGTERM');
  t.same(await srv.exit(), { status: 0, signal: null });
  t.equal(srv.err.match(/not told to systemd/g)?.length, 1, 'said once, not for every message');
});
