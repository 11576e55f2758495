// The files in examples/, run as written: the systemd units through systemd-socket-activate
// with the command line and environment the units give, the runit services under runsv,
// the xinetd service under xinetd. Only the site's paths, the address and the port change.
// Each serves mailfront with the qmail back-end; a stand-in for qmail-queue keeps the message.
import t, { type Test } from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import {
  alive, allGone, freePort, Launcher, makeCert, ROOT, run, ServerLauncher, sleep, tempDir, treeOf, uidsOf, waitFor, WITHOUT_TEST_HOOKS,
} from './helpers';
import { stopServer } from './modes';
import { parseEnvironmentFile, parseUnit, unitValues } from './unit-file';

const EXAMPLES = join(ROOT, 'examples');

/** The machine the examples are deployed on: an installed helper, a certificate, qmail's home, a queue. */
interface Site {
  dir: string;
  prefix: string;
  /** What the site's own configuration sets, in place of the examples' placeholders. */
  env: Record<string, string>;
  queue: string;
}

async function site(t: Test): Promise<Site> {
  const dir = tempDir(t);
  chmodSync(dir, 0o755); // mailfront runs as nobody
  const prefix = join(dir, 'usr', 'local');
  execFileSync('make', ['-s', '-C', ROOT, 'install', `PREFIX=${prefix}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  const certs = makeCert(dir);
  mkdirSync(join(dir, 'qmail', 'control'), { recursive: true });
  writeFileSync(join(dir, 'qmail', 'control', 'rcpthosts'), 'example.test\n');
  const queue = join(dir, 'queue');
  mkdirSync(queue, { mode: 0o777 });
  chmodSync(queue, 0o777);
  copyFileSync(join(ROOT, 'test', 'apps', 'qmail-queue'), join(dir, 'qmail-queue'));
  chmodSync(join(dir, 'qmail-queue'), 0o755);
  return {
    dir, prefix, queue,
    env: { CERTFILE: certs.cert, KEYFILE: certs.key, QMAILHOME: join(dir, 'qmail'), QMAILQUEUE: join(dir, 'qmail-queue'), QQDIR: queue },
  };
}

/** The site's paths in place of the example's: the helper under the site's prefix. */
function localize(s: Site, text: string): string {
  return text.replaceAll('/usr/local/', `${s.prefix}/`);
}

/** One message through swaks, then what the queue got: the message, the envelope, mailfront's user. */
async function deliver(t: Test, s: Site, port: number, tlsFlag: '--tls' | '--tls-on-connect'): Promise<void> {
  const marker = randomBytes(12).toString('hex');
  const r = await run('swaks', [
    tlsFlag, '--server', `127.0.0.1:${port}`, '--from', 'alice@example.org', '--to', 'bob@example.test',
    '--header', 'Subject: through the example', '--body', `marker ${marker}`,
  ], { PATH: process.env.PATH });
  t.equal(r.status, 0, `swaks ${tlsFlag} succeeded: ${r.err}`);
  if (tlsFlag === '--tls') t.match(r.out, /-> STARTTLS\n<- {2}220 /, 'STARTTLS offered and accepted');
  t.match(r.out, /=== TLS started with cipher TLSv1\.3:/);
  t.match(r.out, /<~ {2}250 2\.6\.0 Accepted message/, 'mailfront queued the message');
  await waitFor(join(s.queue, 'envelope'));
  t.match(readFileSync(join(s.queue, 'message'), 'utf8'), new RegExp(`^marker ${marker}\\r?$`, 'm'), 'the body arrived');
  t.equal(readFileSync(join(s.queue, 'envelope'), 'latin1'), 'Falice@example.org\0Tbob@example.test\0\0', 'the envelope');
  t.equal(readFileSync(join(s.queue, 'uid'), 'utf8').trim(), '65534', 'mailfront ran as UID (nobody), not root');
}

async function until(read: () => string, re: RegExp, ms = 10000): Promise<string> {
  let text = read();
  for (let i = 0; i < ms / 50 && !re.test(text); i++) {
    await sleep(50);
    text = read();
  }
  return text;
}

t.test('systemd: submission.socket + submission@.service through systemd-socket-activate', async (t) => {
  const s = await site(t);
  const socket = parseUnit(readFileSync(join(EXAMPLES, 'systemd', 'submission.socket'), 'utf8'));
  const service = parseUnit(readFileSync(join(EXAMPLES, 'systemd', 'submission@.service'), 'utf8'));
  t.same(unitValues(socket, 'Socket', 'ListenStream'), ['587']);
  t.same(unitValues(socket, 'Socket', 'Accept'), ['yes'], 'one service instance per connection');
  t.same(unitValues(service, 'Service', 'StandardInput'), [], 'the connection comes as fd 3, the log goes to the journal');

  // The environment systemd gives: its PATH, the unit's Environment= and its EnvironmentFile=
  // (the example's, with the site's paths).
  const env: Record<string, string> = { PATH: localize(s, '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin') };
  const [envFile] = unitValues(service, 'Service', 'EnvironmentFile');
  t.equal(envFile, '/etc/ucspi-tls-wrap/submission.env');
  Object.assign(env, parseEnvironmentFile(readFileSync(join(EXAMPLES, 'systemd', 'submission.env'), 'utf8')));
  for (const line of unitValues(service, 'Service', 'Environment')) Object.assign(env, parseEnvironmentFile(line));
  for (const k of ['CERTFILE', 'KEYFILE', 'UID', 'GID', 'TLS_UID', 'TLS_GID', 'UCSPITLS']) t.ok(k in env, `the unit sets ${k}`);
  Object.assign(env, s.env);
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
    const port = await freePort();
    writeFileSync(join(sv, 'conf'), `IP=127.0.0.1\nPORT=${port}\nLOCALNAME=mail.example.test\n`);
    for (const [k, v] of Object.entries(s.env)) writeFileSync(join(sv, 'env', k), `${v}\n`);
    const runsv = new Launcher('runsv', [sv], { PATH: `${s.prefix}/bin:/usr/sbin:/usr/bin:/sbin:/bin` });
    t.teardown(async () => {
      spawnSync('sv', ['-w', '10', 'force-stop', sv, join(sv, 'log')]);
      spawnSync('sv', ['exit', sv]);
      await runsv.stop();
    });
    await runsv.ready(port);
    await deliver(t, s, port, name === 'smtps' ? '--tls-on-connect' : '--tls');

    const current = join(sv, 'log', 'main', 'current');
    const log = await until(() => { try { return readFileSync(current, 'utf8'); } catch { return ''; } }, /tcpserver: end \d+ status 0/);
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

  const env: Record<string, string> = { PATH: localize(s, '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin') };
  const [envFile] = unitValues(service, 'Service', 'EnvironmentFile');
  t.equal(envFile, '/etc/ucspi-tls-wrap/submission.env');
  Object.assign(env, parseEnvironmentFile(readFileSync(join(dir, 'submission.env'), 'utf8')));
  for (const line of unitValues(service, 'Service', 'Environment')) Object.assign(env, parseEnvironmentFile(line));
  for (const k of ['CERTFILE', 'KEYFILE', 'UID', 'GID', 'TLS_UID', 'TLS_GID', 'UCSPITLS']) t.ok(k in env, `the unit sets ${k}`);
  Object.assign(env, s.env);
  const [execStart] = unitValues(service, 'Service', 'ExecStart');
  // %H is systemd's specifier for the host name.
  const argv = localize(s, execStart!).replaceAll('%H', hostname()).split(/\s+/);
  t.equal(argv[0], `${s.prefix}/bin/ucspi-tls-server`);

  const port = await freePort();
  const l = new ServerLauncher('systemd-socket-activate', [
    '-l', `127.0.0.1:${port}`, ...Object.entries(env).flatMap(([k, v]) => ['-E', `${k}=${v}`]), ...argv,
  ], {});
  t.teardown(() => l.stop());
  await l.ready(port);
  await deliver(t, s, port, '--tls');
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
  for (const [k, v] of Object.entries(s.env)) writeFileSync(join(sv, 'env', k), `${v}\n`);
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

t.test('xinetd: examples/xinetd/submission, the log in its -l file', async (t) => {
  const s = await site(t);
  const port = await freePort();
  const logFile = join(s.dir, 'submission.log');
  let service = localize(s, readFileSync(join(EXAMPLES, 'xinetd', 'submission'), 'utf8'))
    .replace(/^(\s*port\s*=\s*)587$/m, `$1${port}\n  bind        = 127.0.0.1`)
    .replace('/var/log/ucspi-tls-wrap/submission.log', logFile);
  for (const [k, v] of Object.entries(s.env)) {
    const re = new RegExp(`(^\\s*env\\s*=.*\\b${k}=)\\S+`, 'm');
    service = re.test(service) ? service.replace(re, `$1${v}`) : service.replace(/^(\s*env\s*=.*)$/m, `$1 ${k}=${v}`);
  }
  t.match(service, new RegExp(`bind {8}= 127\\.0\\.0\\.1`), 'bound to the loopback for the test');
  mkdirSync(join(s.dir, 'xinetd.d'));
  writeFileSync(join(s.dir, 'xinetd.d', 'submission'), service);
  const conf = join(s.dir, 'xinetd.conf');
  writeFileSync(conf, `defaults\n{\n  log_type = FILE ${join(s.dir, 'xinetd.log')}\n}\nincludedir ${join(s.dir, 'xinetd.d')}\n`);
  const l = new Launcher('xinetd', ['-dontfork', '-f', conf, '-pidfile', join(s.dir, 'xinetd.pid')], { PATH: process.env.PATH });
  t.teardown(() => l.stop());
  await l.ready(port);
  await deliver(t, s, port, '--tls');
  await waitFor(logFile);
  const log = await until(() => readFileSync(logFile, 'utf8'), /app exited with 0/);
  t.match(log, /^ucspi-tls-wrap: pid \d+: TLS started: TLSv1\.3 /m);
  t.match(log, /^mailfront\[\d+\]: bytes in: \d+ bytes out: \d+/m, "mailfront's fd 2 is the log file too");
  t.match(log, /^ucspi-tls-wrap: pid \d+: app exited with 0$/m);
});

t.test("the README's quick start, as written (its address, port and certificate paths aside)", async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Quick start'), readme.indexOf('## Options'));
  const commands = section.split('\n').filter((l) => l.startsWith('    ')).map((l) => l.slice(4)).join('\n')
    .replace(/\\\n\s*/g, '').split('\n');
  t.equal(commands.length, 4, 'install, certificate, server, client');
  const [install, cert, server, client] = commands as [string, string, string, string];
  const testDeps = /^test-deps:\n\t(.*)$/m.exec(readFileSync(join(ROOT, 'Makefile'), 'utf8'))![1]!;
  for (const pkg of install.replace(/^apt-get install /, '').split(' ')) t.match(testDeps, new RegExp(`\\b${pkg}\\b`), `make check installs ${pkg} too`);
  const here = (c: string): string => c.replaceAll('/etc/ssl/private/', `${dir}/`).replaceAll('/etc/ssl/', `${dir}/`)
    .replace(' 0 587 ', ` 127.0.0.1 ${port} `).replace('127.0.0.1:587', `127.0.0.1:${port}`);
  const env = { PATH: `${join(ROOT, 'bin')}:${process.env.PATH}` };
  t.equal((await run('sh', ['-c', here(cert)], env)).status, 0, 'the certificate is made');
  t.match(server, / &$/);
  const srv = new Launcher('sh', ['-c', `exec env ${here(server).replace(/ &$/, '')}`], env);
  t.teardown(() => srv.stop());
  await srv.ready(port);
  const r = await run('sh', ['-c', here(client)], env);
  t.equal(r.status, 0, `swaks: ${r.err}`);
  t.match(r.out, /<~ {2}250 Received \d+ bytes/, 'mailfront took the message through TLS');
  const log = await until(() => srv.err, /TLS ended/);
  t.match(log, /^ucspi-tls-wrap: pid \d+: TLS started: TLSv1\.3 TLS_AES_256_GCM_SHA384$/m, 'the line the README promises');
  t.match(log, /^mailfront\[\d+\]: RCPT TO:<postmaster@example\.org>$/m);
  t.match(log, /^ucspi-tls-wrap: pid \d+: TLS ended: \d+ bytes to client, \d+ bytes to app$/m);
});
