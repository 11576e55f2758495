// The files in examples/, run as written: the systemd units through systemd-socket-activate
// with the command line and environment the units give, the runit services under runsv,
// the xinetd service under xinetd, after the set-up commands of examples/README.md. Only the
// paths (into a temporary folder), the address and the port change. Each serves Debian's
// mailfront with its queuedir back-end: the message must arrive in the queue as sent.
import t, { type Test } from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, cpSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { alive, allGone, freePort, Launcher, makeCert, ROOT, run, ServerLauncher, sleep, tempDir, treeOf, uidsOf, WITHOUT_TEST_HOOKS } from './helpers';
import { stopServer } from './modes';
import { NotifySocket } from './notify-socket';
import { commandsOf, shellBlocks } from './readme';
import { parseEnvironmentFile, parseUnit, unitValues } from './unit-file';

const EXAMPLES = join(ROOT, 'examples');
const NOBODY = 65534;

/** The machine the examples are deployed on: an installed helper, a certificate, a queue. */
interface Site {
  dir: string;
  prefix: string;
  queue: string;
  logDir: string;
  /** The examples' paths and this site's. */
  paths: Array<[string, string]>;
}

async function site(t: Test, setUp = true): Promise<Site> {
  const dir = tempDir(t);
  chmodSync(dir, 0o755); // mailfront runs as nobody
  const prefix = join(dir, 'usr', 'local');
  execFileSync('make', ['-s', '-C', ROOT, 'install', `PREFIX=${prefix}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  const certs = makeCert(dir);
  const s: Site = {
    dir, prefix, queue: join(dir, 'spool', 'mailfront'), logDir: join(dir, 'log', 'ucspi-tls-wrap'),
    paths: [],
  };
  s.paths = [
    ['/usr/local/', `${prefix}/`],
    ['/etc/ssl/mail.pem', certs.cert],
    ['/etc/ssl/private/mail.key', certs.key],
    ['/var/spool/mailfront', s.queue],
    ['/var/log/ucspi-tls-wrap', s.logDir],
  ];
  if (setUp) await runSetUp(t, s);
  return s;
}

/** The site's paths in place of the example's. */
function localize(s: Site, text: string): string {
  return s.paths.reduce((acc, [from, to]) => acc.replaceAll(from, to), text);
}

/** examples/README.md's set-up block: its packages are the tests' packages; the rest runs. */
async function runSetUp(t: Test, s: Site, skip: RegExp = /^$/): Promise<void> {
  const blocks = shellBlocks(readFileSync(join(EXAMPLES, 'README.md'), 'utf8'));
  t.equal(blocks.length, 1, 'examples/README.md has one block of commands');
  const [install, ...rest] = commandsOf(blocks[0]!.code);
  const testDeps = /^test-deps:\n\t(.*)$/m.exec(readFileSync(join(ROOT, 'Makefile'), 'utf8'))![1]!;
  for (const pkg of install!.replace(/^apt-get install /, '').split(' ')) t.match(testDeps, new RegExp(`\\b${pkg}\\b`), `make check installs ${pkg} too`);
  for (const c of rest) {
    if (skip.test(c)) continue;
    const r = await run('sh', ['-c', localize(s, c)], { PATH: process.env.PATH });
    t.equal(r.status, 0, `${c}: ${r.err}`);
  }
}

/** One message through swaks; it must be in the queue as sent, written by nobody. */
async function deliver(t: Test, s: Site, port: number, tlsFlag: '--tls' | '--tls-on-connect'): Promise<void> {
  const marker = randomBytes(12).toString('hex');
  const message = `Subject: through the example\r\nX-Marker: ${marker}\r\n\r\nline one\r\n.a line that starts with a dot\r\n${randomBytes(600).toString('base64')}\r\n`;
  const file = join(s.dir, `message-${marker}`);
  writeFileSync(file, message);
  const r = await run('swaks', [
    tlsFlag, '--server', `127.0.0.1:${port}`, '--from', 'alice@example.org', '--to', 'bob@example.test', '--data', `@${file}`,
  ], { PATH: process.env.PATH });
  t.equal(r.status, 0, `swaks ${tlsFlag} succeeded: ${r.err}`);
  if (tlsFlag === '--tls') t.match(r.out, /-> STARTTLS\n<- {2}220 /, 'STARTTLS offered and accepted');
  t.match(r.out, /=== TLS started with cipher TLSv1\.3:/);
  t.match(r.out, /<~ {2}250 2\.6\.0 Message accepted/, 'mailfront took the message');
  const newDir = join(s.queue, 'new');
  let queued: string[] = [];
  for (let i = 0; i < 100 && queued.length === 0; i++) {
    queued = readdirSync(newDir).filter((f) => readFileSync(join(newDir, f), 'latin1').includes(marker));
    if (queued.length === 0) await sleep(50);
  }
  t.equal(queued.length, 1, 'one file in the queue for it');
  const path = join(newDir, queued[0]!);
  const stored = readFileSync(path, 'latin1');
  t.ok(stored.startsWith('alice@example.org\0bob@example.test\0\0'), 'the envelope first');
  // mailfront stores lines with LF; swaks ends the message with an empty line of its own.
  t.ok(stored.endsWith(`${message.replace(/\r\n/g, '\n')}\n`), 'then the message, byte for byte (after its Received: line)');
  t.equal(statSync(path).uid, NOBODY, 'written by mailfront as UID (nobody), not root');
}

async function until(read: () => string, re: RegExp, ms = 10000): Promise<string> {
  let text = read();
  for (let i = 0; i < ms / 50 && !re.test(text); i++) {
    await sleep(50);
    text = read();
  }
  return text;
}

const readOr = (file: string): string => {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
};

t.test('systemd: submission.socket + submission@.service through systemd-socket-activate', async (t) => {
  const s = await site(t);
  const socket = parseUnit(readFileSync(join(EXAMPLES, 'systemd', 'submission.socket'), 'utf8'));
  const service = parseUnit(readFileSync(join(EXAMPLES, 'systemd', 'submission@.service'), 'utf8'));
  t.same(unitValues(socket, 'Socket', 'ListenStream'), ['587']);
  t.same(unitValues(socket, 'Socket', 'Accept'), ['yes'], 'one service instance per connection');
  t.same(unitValues(service, 'Service', 'StandardInput'), [], 'the connection comes as fd 3, the log goes to the journal');

  // The environment systemd gives: its PATH, the unit's Environment= and its EnvironmentFile=.
  const env: Record<string, string> = { PATH: localize(s, '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin') };
  const [envFile] = unitValues(service, 'Service', 'EnvironmentFile');
  t.equal(envFile, '/etc/ucspi-tls-wrap/submission.env');
  Object.assign(env, parseEnvironmentFile(localize(s, readFileSync(join(EXAMPLES, 'systemd', 'submission.env'), 'utf8'))));
  for (const line of unitValues(service, 'Service', 'Environment')) Object.assign(env, parseEnvironmentFile(line));
  for (const k of ['CERTFILE', 'KEYFILE', 'UID', 'GID', 'TLS_UID', 'TLS_GID', 'UCSPITLS', 'QUEUEDIR']) t.ok(k in env, `the unit sets ${k}`);
  const [execStart] = unitValues(service, 'Service', 'ExecStart');
  const argv = localize(s, execStart!).split(/\s+/);

  const port = await freePort();
  const l = new Launcher('systemd-socket-activate', [
    '-l', `127.0.0.1:${port}`, '--accept', ...Object.entries(env).flatMap(([k, v]) => ['-E', `${k}=${v}`]), ...argv,
  ], {});
  t.teardown(() => l.stop());
  await l.ready(port);
  await deliver(t, s, port, '--tls');
  const journal = await until(() => l.err, /mailfront\[\d+\]: bytes in/);
  t.match(journal, /ucspi-tls-wrap: pid \d+: TLS started: TLSv1\.3 /, 'the helper logs to the journal');
  t.match(journal, /mailfront\[\d+\]: RCPT TO:<bob@example\.test>/);
});

for (const name of ['submission', 'smtps'] as const) {
  t.test(`runit: examples/runit/${name} under runsv, logged by svlogd`, async (t) => {
    const s = await site(t);
    const sv = join(s.dir, 'service', name);
    cpSync(join(EXAMPLES, 'runit', name), sv, { recursive: true });
    for (const f of readdirSync(join(sv, 'env'))) writeFileSync(join(sv, 'env', f), localize(s, readFileSync(join(sv, 'env', f), 'utf8')));
    const port = await freePort();
    writeFileSync(join(sv, 'conf'), `IP=127.0.0.1\nPORT=${port}\nLOCALNAME=mail.example.test\n`);
    const runsv = new Launcher('runsv', [sv], { PATH: `${s.prefix}/bin:/usr/sbin:/usr/bin:/sbin:/bin` });
    t.teardown(async () => {
      spawnSync('sv', ['-w', '10', 'force-stop', sv, join(sv, 'log')]);
      spawnSync('sv', ['exit', sv]);
      await runsv.stop();
    });
    await runsv.ready(port);
    await deliver(t, s, port, name === 'smtps' ? '--tls-on-connect' : '--tls');

    const log = await until(() => readOr(join(sv, 'log', 'main', 'current')), /tcpserver: end \d+ status 0/);
    const stamp = '\\d{4}-\\d\\d-\\d\\d_\\d\\d:\\d\\d:\\d\\d\\.\\d+ ';
    t.match(log, new RegExp(`^${stamp}tcpserver: ok \\d+ mail\\.example\\.test:127\\.0\\.0\\.1:${port} `, 'm'), 'tcpserver\'s log, timestamped by svlogd');
    t.match(log, new RegExp(`^${stamp}ucspi-tls-wrap: pid \\d+: TLS started: TLSv1\\.3 `, 'm'), 'the helper\'s log in the same place');
    t.match(log, new RegExp(`^${stamp}mailfront\\[\\d+\\]: bytes in: \\d+ bytes out: \\d+`, 'm'), 'and mailfront\'s');
    t.match(log, /tcpserver: end \d+ status 0$/m, 'the connection ended with status 0');
  });
}


// The resident server's examples (examples/server/): one server for every connection.

t.test('systemd: server/submission.socket (Accept=no) + submission.service through systemd-socket-activate', async (t) => {
  const s = await site(t);
  const dir = join(EXAMPLES, 'server', 'systemd');
  const socket = parseUnit(readFileSync(join(dir, 'submission.socket'), 'utf8'));
  const service = parseUnit(readFileSync(join(dir, 'submission.service'), 'utf8'));
  t.same(unitValues(socket, 'Socket', 'ListenStream'), ['587']);
  t.same(unitValues(socket, 'Socket', 'Accept'), ['no'], 'one server for every connection: the listening socket is handed over');
  t.same(unitValues(service, 'Service', 'KillMode'), ['mixed'], 'SIGTERM to the server alone; it ends its apps');
  t.same(unitValues(service, 'Service', 'Type'), ['notify'], 'started once it says READY=1 (notify-reload needs systemd 253)');
  t.same(unitValues(service, 'Service', 'NotifyAccess'), ['main'], 'only the server speaks for the service');
  const [reload] = unitValues(service, 'Service', 'ExecReload');
  t.equal(reload, '/bin/kill -HUP $MAINPID');

  const env: Record<string, string> = { PATH: localize(s, '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin') };
  const [envFile] = unitValues(service, 'Service', 'EnvironmentFile');
  t.equal(envFile, '/etc/ucspi-tls-wrap/submission.env');
  Object.assign(env, parseEnvironmentFile(localize(s, readFileSync(join(dir, 'submission.env'), 'utf8'))));
  for (const line of unitValues(service, 'Service', 'Environment')) Object.assign(env, parseEnvironmentFile(line));
  for (const k of ['CERTFILE', 'KEYFILE', 'UID', 'GID', 'TLS_UID', 'TLS_GID', 'UCSPITLS', 'QUEUEDIR']) t.ok(k in env, `the unit sets ${k}`);
  const [execStart] = unitValues(service, 'Service', 'ExecStart');
  // %H is systemd's specifier for the host name.
  const argv = localize(s, execStart!).replaceAll('%H', hostname()).split(/\s+/);
  t.equal(argv[0], `${s.prefix}/bin/ucspi-tls-server`);

  // What systemd adds for Type=notify: the socket it reads.
  const notify = new NotifySocket(t, join(s.dir, 'notify'));
  await notify.ready();
  env.NOTIFY_SOCKET = notify.where;
  const port = await freePort();
  const l = new ServerLauncher('systemd-socket-activate', [
    '-l', `127.0.0.1:${port}`, ...Object.entries(env).flatMap(([k, v]) => ['-E', `${k}=${v}`]), ...argv,
  ], {});
  t.teardown(() => l.stop());
  await l.ready(port);
  // systemd-socket-activate starts the server at the first connection.
  await deliver(t, s, port, '--tls');
  const ready = await notify.next(0, (a) => a.get('READY') === '1');
  t.equal(ready.m.pid, l.pid, 'READY=1, as the main PID: NotifyAccess=main takes it');
  // `systemctl reload`: ExecReload= as systemd runs it, $MAINPID the server's.
  const [kill, ...killArgs] = reload!.replace('$MAINPID', String(l.pid)).split(' ') as [string, ...string[]];
  execFileSync(kill, killArgs);
  const reloading = await notify.next(ready.at + 1, (a) => a.get('RELOADING') === '1');
  t.ok((await notify.next(reloading.at + 1, (a) => a.get('READY') === '1')).m.pid === l.pid, 'RELOADING=1, then READY=1');
  const journal = await until(() => l.err, /ucspi-tls-server: pid \d+: end: /);
  t.match(journal, /^ucspi-tls-server: listening on 127\.0\.0\.1 port \d+, \d+ workers, at most 100 connections$/m, 'the socket from systemd, -c 100');
  t.match(journal, /^ucspi-tls-server: pid \d+: TLS started: TLSv1\.3 /m, 'the server logs to the journal');
  t.match(journal, /mailfront\[\d+\]: RCPT TO:<bob@example\.test>/);
  t.match(journal, /^ucspi-tls-server: pid \d+: end: exit 0, tls, /m);
  for (const w of l.workers()) t.equal(uidsOf(w), '1 1 1', `worker ${w} runs as the unit's TLS_UID`);
  await stopServer(t, l);
});

t.test('runit: examples/server/runit/submission under runsv, logged by svlogd', async (t) => {
  const s = await site(t);
  const sv = join(s.dir, 'service', 'submission');
  cpSync(join(EXAMPLES, 'server', 'runit', 'submission'), sv, { recursive: true });
  const port = await freePort();
  writeFileSync(join(sv, 'conf'), `IP=127.0.0.1\nPORT=${port}\nLOCALNAME=mail.example.test\n`);
  for (const f of readdirSync(join(sv, 'env'))) writeFileSync(join(sv, 'env', f), localize(s, readFileSync(join(sv, 'env', f), 'utf8')));
  const runsv = new Launcher(WITHOUT_TEST_HOOKS[0]!, [...WITHOUT_TEST_HOOKS.slice(1), 'runsv', sv], { PATH: `${s.prefix}/bin:/usr/sbin:/usr/bin:/sbin:/bin` });
  let tree: number[] = [];
  t.teardown(async () => {
    spawnSync('sv', ['-w', '10', 'force-stop', sv, join(sv, 'log')]);
    spawnSync('sv', ['exit', sv]);
    await runsv.stop();
    for (const p of tree.filter(alive)) process.kill(p, 'SIGKILL');
  });
  await runsv.ready(port);
  await deliver(t, s, port, '--tls');

  const current = join(sv, 'log', 'main', 'current');
  const read = (): string => { try { return readFileSync(current, 'utf8'); } catch { return ''; } };
  const log = await until(read, /ucspi-tls-server: pid \d+: end: /);
  const stamp = '\\d{4}-\\d\\d-\\d\\d_\\d\\d:\\d\\d:\\d\\d\\.\\d+ ';
  t.match(log, new RegExp(`^${stamp}ucspi-tls-server: listening on 127\\.0\\.0\\.1 port ${port}, \\d+ workers, at most 100 connections$`, 'm'), "the server's log, timestamped by svlogd");
  t.match(log, new RegExp(`^${stamp}ucspi-tls-server: pid \\d+: start: 127\\.0\\.0\\.1 port \\d+ -> 127\\.0\\.0\\.1 port ${port}, worker \\d+, 1 of 100$`, 'm'));
  t.match(log, new RegExp(`^${stamp}mailfront\\[\\d+\\]: bytes in: \\d+ bytes out: \\d+`, 'm'), "and mailfront's");
  t.match(log, new RegExp(`^${stamp}ucspi-tls-server: pid \\d+: end: exit 0, tls, \\d+ bytes to client, \\d+ bytes to app, [\\d.]+ s$`, 'm'));

  // sv down: runsv sends SIGTERM; the server exits once its apps are gone; nothing is left.
  const server = Number(/^run: [^(]*\(pid (\d+)\)/.exec(spawnSync('sv', ['status', sv], { encoding: 'utf8' }).stdout)?.[1]);
  tree = treeOf(server);
  t.ok(tree.length >= 2, `runsv runs the server and its workers (${tree.join(' ')})`);
  const down = spawnSync('sv', ['-w', '15', 'down', sv], { encoding: 'utf8' });
  t.match(down.stdout, /^ok: down: /, 'sv down: the server stopped');
  t.match(await until(read, /ucspi-tls-server: exiting/), /ucspi-tls-server: exiting$/m);
  t.ok(await allGone(tree, 10000), 'no server, worker or app is left');
});


/** examples/xinetd/submission on the site, with xinetd's own log in a file. */
function xinetdConf(s: Site, port: number): { conf: string; xinetdLog: string } {
  const service = localize(s, readFileSync(join(EXAMPLES, 'xinetd', 'submission'), 'utf8'))
    .replace(/^(\s*port\s*=\s*)587$/m, `$1${port}\n  bind           = 127.0.0.1`);
  mkdirSync(join(s.dir, 'xinetd.d'));
  writeFileSync(join(s.dir, 'xinetd.d', 'submission'), service);
  const conf = join(s.dir, 'xinetd.conf');
  const xinetdLog = join(s.dir, 'xinetd.log');
  writeFileSync(conf, `defaults\n{\n  log_type = FILE ${xinetdLog}\n}\nincludedir ${join(s.dir, 'xinetd.d')}\n`);
  return { conf, xinetdLog };
}

t.test('xinetd: examples/xinetd/submission, the log in its -l file', async (t) => {
  const s = await site(t);
  const port = await freePort();
  const { conf, xinetdLog } = xinetdConf(s, port);
  const l = new Launcher('xinetd', ['-dontfork', '-f', conf, '-pidfile', join(s.dir, 'xinetd.pid')], { PATH: process.env.PATH });
  t.teardown(() => l.stop());
  await l.ready(port);
  await deliver(t, s, port, '--tls');
  const logFile = join(s.logDir, 'submission.log');
  const log = await until(() => readOr(logFile), /app exited with 0/);
  t.match(log, /^ucspi-tls-wrap: pid \d+: TLS started: TLSv1\.3 /m);
  t.match(log, /^mailfront\[\d+\]: bytes in: \d+ bytes out: \d+/m, "mailfront's fd 2 is the log file too");
  t.match(log, /^ucspi-tls-wrap: pid \d+: app exited with 0$/m);
  t.match(await until(() => readOr(xinetdLog), /EXIT: submission status=0/), /EXIT: submission status=0 pid=\d+/, 'xinetd logs the exit status');
});

// /dev/log for xinetd and what it starts only: a mount namespace of its own, in which /dev
// is an overlay with a log socket bound in, read by socat outside.
t.test('xinetd: the -l folder is missing: one line in syslog, exit 111 in xinetd\'s log, nothing created', async (t) => {
  const s = await site(t, false);
  await runSetUp(t, s, /\/var\/log\/ucspi-tls-wrap/);
  const port = await freePort();
  const { conf, xinetdLog } = xinetdConf(s, port);
  const devLog = join(s.dir, 'dev-log');
  const syslog = join(s.dir, 'syslog');
  const receiver = new Launcher('socat', ['-u', `UNIX-RECV:${devLog}`, `OPEN:${syslog},creat,append`], { PATH: process.env.PATH });
  t.teardown(() => receiver.stop());
  for (let i = 0; i < 250 && !existsOk(devLog); i++) await sleep(20);
  const upper = join(s.dir, 'dev-upper');
  const work = join(s.dir, 'dev-work');
  mkdirSync(upper);
  mkdirSync(work);
  const inNamespace = [
    `mount -t overlay overlay -o lowerdir=/dev,upperdir=${upper},workdir=${work} /dev`,
    'touch /dev/log',
    `mount --bind ${devLog} /dev/log`,
    `exec xinetd -dontfork -f ${conf} -pidfile ${join(s.dir, 'xinetd.pid')}`,
  ].join(' && ');
  const l = new Launcher('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', inNamespace], { PATH: process.env.PATH });
  t.teardown(() => l.stop());
  await l.ready(port);

  const r = await run('swaks', ['--tls', '--server', `127.0.0.1:${port}`, '--to', 'bob@example.test', '--timeout', '10'], { PATH: process.env.PATH });
  t.not(r.status, 0, 'swaks fails: the connection is closed at once');
  t.notMatch(r.out, /<- {2}220 /, 'no banner: mailfront never ran');
  const logFile = join(s.logDir, 'submission.log');
  // The datagrams as socat wrote them, one after the other: each starts with <priority>.
  const ours = (await until(() => readOr(syslog), /ucspi-tls-wrap/)).split(/(?=<\d{1,3}>[A-Z][a-z]{2} )/).filter((m) => m.includes('ucspi-tls-wrap'));
  t.equal(ours.length, 1, 'one message from the helper');
  t.match(ours[0], new RegExp(`^<27>[A-Z][a-z]{2} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d ucspi-tls-wrap: pid \\d+: fatal: cannot open log file ${logFile}: no such directory ${s.logDir}\n?$`),
    'syslog (daemon.err) has the line, in the log format');
  t.match(await until(() => readOr(xinetdLog), /EXIT: submission status=111/), /EXIT: submission status=111 /, "xinetd's log has the exit status");
  t.notOk(existsOk(s.logDir), 'the folder was not created');
});

function existsOk(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}
