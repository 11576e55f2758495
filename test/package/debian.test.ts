// The Debian package as an operator meets it: built by `make deb`, checked by lintian,
// installed with dpkg -i; the quick start run from the installed files, the units verified,
// the users and the conffile in place; then removed and purged, and nothing of it left but
// the users (Debian Policy 9.2). It installs system-wide, as root: `make check-deb` runs it
// once, on its own, never beside the rest of the suite.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, logged, makeCert, ROOT, run, ServerLauncher, sleep, tcpserver, tempDir, uidsOf, WITHOUT_TEST_HOOKS } from '../helpers';
import { parseEnvironmentFile, parseUnit, unitValues } from '../unit-file';

const PKG = 'ucspi-tls-wrap';
const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const DEB = join(ROOT, 'build', 'deb', `${PKG}_${version}_all.deb`);
const UNITS = '/lib/systemd/system';
const PROGRAMS = ['ucspi-tls-wrap', 'ucspi-tls-client', 'ucspi-tls-server'];
const USERS = { tls: 'ucspi-tls', app: 'ucspi-tls-app' };

interface Ran {
  status: number | null;
  out: string;
  err: string;
}

function sh(cmd: string, args: string[]): Ran {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  return { status: r.status, out: r.stdout ?? '', err: r.stderr ?? String(r.error ?? '') };
}

/** dpkg, waiting while another apt or dpkg on the machine holds its lock (up to 5 minutes). */
async function dpkg(args: string[]): Promise<Ran> {
  for (let i = 0; ; i++) {
    const r = sh('dpkg', args);
    if (r.status === 0 || !/lock/i.test(r.err) || i >= 300) return r;
    await sleep(1000);
  }
}

function installed(): boolean {
  return /install ok installed|config-files/.test(sh('dpkg-query', ['-W', '-f=${Status}', PKG]).out);
}

function passwd(user: string): string[] | undefined {
  const r = sh('getent', ['passwd', user]);
  return r.status === 0 ? r.out.trim().split(':') : undefined;
}

/** The package's paths as dpkg-deb lists them (/etc, /etc/ucspi-tls-wrap, ...); none has a space. */
function debPaths(): string[] {
  return sh('dpkg-deb', ['-c', DEB]).out.split('\n').filter((l) => l !== '')
    .map((l) => l.split(/\s+/)[5]!.replace(/^\./, '').replace(/\/$/, '')).filter((p) => p !== '');
}

t.test('as root', async (t) => {
  t.equal(process.getuid?.(), 0, 'dpkg -i installs system-wide: run as root (make check-deb)');
});

// A run stopped half-way leaves the package installed: start from none.
t.test('no earlier package left installed', async (t) => {
  if (installed()) t.equal((await dpkg(['-P', PKG])).status, 0, 'an earlier install purged');
  t.notOk(installed());
});

t.test('make deb builds the package; lintian finds nothing', async (t) => {
  const r = sh('make', ['-s', '-C', ROOT, 'deb']);
  t.equal(r.status, 0, `make deb: ${r.err}`);
  t.ok(existsSync(DEB), DEB);
  const staging = ['ucspi-tls-wrap', '.debhelper', 'files', 'debhelper-build-stamp', 'ucspi-tls-wrap.substvars', 'ucspi-tls-wrap.debhelper.log'];
  t.same(staging.filter((f) => existsSync(join(ROOT, 'debian', f))), [], 'nothing of the build left in debian/');
  // The tags left are overridden in debian/ucspi-tls-wrap.lintian-overrides, each explained.
  const l = sh('lintian', ['--display-info', '--pedantic', '--fail-on', 'error,warning,info,pedantic', DEB]);
  t.equal(l.out, '', 'no tag');
  t.equal(l.status, 0, l.err);
  t.equal(sh('dpkg-deb', ['-f', DEB, 'Package']).out, `${PKG}\n`);
  t.match(sh('dpkg-deb', ['-f', DEB, 'Depends']).out, /^nodejs \(>= 20\),/);
  t.equal(sh('dpkg-deb', ['-f', DEB, 'Architecture']).out, 'all\n');
});

// What was there before the install (directories the package shares with others: /usr/bin,
// /etc, ...), and what dpkg lists once it is installed.
let before = new Set<string>();
let listed: string[] = [];

t.test('dpkg -i installs it; the users, the conffile and users.env are made', async (t) => {
  const paths = debPaths();
  t.ok(paths.includes('/usr/bin/ucspi-tls-wrap'), 'the package lists its files');
  before = new Set(paths.filter((p) => existsSync(p)));
  // Depends: nodejs (>= 20), met by dpkg itself, with no --ignore-depends: the test machine's
  // nodejs package is NodeSource's Node 20 (Debian 13's is 20 too). Debian 12's own is 18,
  // too old for the programs; there dpkg -i refuses, as it should.
  const nodejs = sh('dpkg-query', ['-W', '-f=${Version}', 'nodejs']).out;
  t.equal(sh('dpkg', ['--compare-versions', nodejs, 'ge', '20']).status, 0, `the nodejs package is 20 or later: ${nodejs}`);
  t.equal(sh('dpkg', ['-S', '/usr/bin/node']).out, 'nodejs: /usr/bin/node\n', 'the installed executables\' /usr/bin/node is the nodejs package\'s');
  const r = await dpkg(['-i', DEB]);
  t.equal(r.status, 0, `dpkg -i: ${r.err}`);
  t.equal(sh('dpkg-query', ['-W', '-f=${Status}', PKG]).out, 'install ok installed');
  listed = sh('dpkg', ['-L', PKG]).out.split('\n').filter((p) => p !== '' && p !== '/.');
  t.same([...listed].sort(), [...paths].sort(), 'dpkg -L lists what the package holds');

  t.equal(sh('dpkg-query', ['-W', '-f=${Conffiles}', PKG]).out.trim().replace(/ [0-9a-f]{32}$/, ''), '/etc/ucspi-tls-wrap/submission.env',
    'the configuration is a conffile');
  for (const user of Object.values(USERS)) {
    const p = passwd(user);
    t.ok(p, `user ${user}`);
    t.equal(p?.[6], '/usr/sbin/nologin', `${user} has no shell`);
    t.ok(Number(p?.[2]) > 0 && Number(p?.[2]) < 1000, `${user} is a system user`);
  }
  const ids = parseEnvironmentFile(readFileSync('/etc/ucspi-tls-wrap/users.env', 'utf8'));
  t.same(ids, {
    UID: passwd(USERS.app)?.[2], GID: passwd(USERS.app)?.[3], TLS_UID: passwd(USERS.tls)?.[2], TLS_GID: passwd(USERS.tls)?.[3],
  }, 'users.env: the apps as ucspi-tls-app, the TLS side as ucspi-tls');
  t.equal(ids['UID'] === ids['TLS_UID'], false, 'apps and TLS side apart');
});

t.test('dpkg -i again: the operator\'s conffile kept, users.env written again', async (t) => {
  const conf = '/etc/ucspi-tls-wrap/submission.env';
  appendFileSync(conf, 'CERTFILE=/etc/ssl/operator.pem\n');
  rmSync('/etc/ucspi-tls-wrap/users.env');
  const r = await dpkg(['-i', DEB]);
  t.equal(r.status, 0, `dpkg -i: ${r.err}`);
  t.equal(parseEnvironmentFile(readFileSync(conf, 'utf8'))['CERTFILE'], '/etc/ssl/operator.pem', 'the edited conffile is the operator\'s');
  t.ok(existsSync('/etc/ucspi-tls-wrap/users.env'), 'users.env written on configure');
  t.same(readdirSync('/etc/ucspi-tls-wrap').sort(), ['submission.env', 'users.env'], 'no .dpkg-dist or .dpkg-old beside them');
});

t.test('the installed executables, man pages and examples', async (t) => {
  for (const p of PROGRAMS) {
    const r = await run(`/usr/bin/${p}`, ['--version'], { PATH: '/usr/bin:/bin' });
    t.equal(r.out, `${p} ${version}\n`, `${p} --version`);
    t.match(readFileSync(`/usr/lib/${PKG}/bin/${p}`, 'latin1').split('\n')[0], /^#!\/usr\/bin\/env -S \/usr\/bin\/node --use-openssl-ca( |$)/,
      `${p} runs on /usr/bin/node, the nodejs package's`);
    t.equal(sh('man', ['-w', p]).out, `/usr/share/man/man1/${p}.1.gz\n`, `man ${p}`);
  }
  t.equal(sh('man', ['-w', '7', 'ucspi-tls']).out, '/usr/share/man/man7/ucspi-tls.7.gz\n');
  // The FILES sections name the units the package installs.
  for (const mode of ['wrap', 'server']) {
    const page = spawnSync('man', [`ucspi-tls-${mode}`], { encoding: 'utf8', env: { ...process.env, MANWIDTH: '200', MANPAGER: 'cat' } }).stdout.replace(/.\x08/g, '');
    const named = [...new Set([...page.matchAll(/ucspi-tls-\w+-submission@?\.(socket|service)/g)].map((m) => m[0]))];
    t.not(named.length, 0, `man ucspi-tls-${mode} names its units`);
    for (const unit of named) t.ok(existsSync(join(UNITS, unit)), `${unit}, named in man ucspi-tls-${mode}, is installed`);
  }
  for (const f of ['systemd/submission@.service', 'server/systemd/submission.service', 'runit/submission/run', 'xinetd/submission']) {
    t.ok(existsSync(`/usr/share/doc/${PKG}/examples/${f}`), `example ${f}`);
  }
});

t.test('the units: the examples\' with the installed paths, verified by systemd, not enabled', async (t) => {
  const units = {
    'ucspi-tls-wrap-submission.socket': 'examples/systemd/submission.socket',
    'ucspi-tls-wrap-submission@.service': 'examples/systemd/submission@.service',
    'ucspi-tls-server-submission.socket': 'examples/server/systemd/submission.socket',
    'ucspi-tls-server-submission.service': 'examples/server/systemd/submission.service',
  };
  for (const [name, example] of Object.entries(units)) {
    const unit = parseUnit(readFileSync(join(UNITS, name), 'utf8'));
    const from = parseUnit(readFileSync(join(ROOT, example), 'utf8'));
    for (const [section, keys] of from) {
      for (const [key, value] of keys) {
        if (key === 'EnvironmentFile' || key === 'Requires') continue;
        t.ok(unitValues(unit, section, key).includes(value.replace('/usr/local/bin/', '/usr/bin/')), `${name}: ${section} ${key}= as ${example} has it`);
      }
    }
  }
  for (const name of ['ucspi-tls-wrap-submission@.service', 'ucspi-tls-server-submission.service']) {
    const unit = parseUnit(readFileSync(join(UNITS, name), 'utf8'));
    t.same(unitValues(unit, 'Service', 'EnvironmentFile'), ['/etc/ucspi-tls-wrap/users.env', '/etc/ucspi-tls-wrap/submission.env'],
      `${name}: the package's users, then the operator's settings`);
    t.match(unitValues(unit, 'Service', 'ExecStart')[0], /^\/usr\/bin\/ucspi-tls-(wrap|server) /);
  }
  t.same(unitValues(parseUnit(readFileSync(join(UNITS, 'ucspi-tls-server-submission.service'), 'utf8')), 'Unit', 'Requires'),
    ['ucspi-tls-server-submission.socket']);
  // No systemd as PID 1 here (a container): systemd-analyze reads the files as systemd
  // would load them, the ExecStart= programs included. The template through an instance.
  for (const name of ['ucspi-tls-wrap-submission.socket', 'ucspi-tls-wrap-submission@1.service', 'ucspi-tls-server-submission.socket', 'ucspi-tls-server-submission.service']) {
    const r = sh('systemd-analyze', ['verify', join(UNITS, name)]);
    t.equal(r.status, 0, `systemd-analyze verify ${name}: ${r.err}`);
    t.equal(r.err, '', `${name}: no warning`);
  }
  // Not enabled: they need a certificate first, and both modes listen on port 587.
  const enabled = sh('find', ['/etc/systemd/system', '-lname', '*ucspi-tls-*']).out;
  t.equal(enabled, '', 'no unit enabled');
});

t.test('the quick start from the installed files: /usr/bin/ucspi-tls-wrap under tcpserver, swaks', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const port = await freePort();
  const env = { PATH: process.env.PATH, CERTFILE: certs.cert, KEYFILE: certs.key, UCSPITLS: '1' };
  const srv = await tcpserver(port, env, ['/usr/bin/ucspi-tls-wrap', '-v', 'mailfront', 'smtp', 'echo', 'accept', 'starttls-ucspi']);
  t.teardown(() => srv.stop());
  const r = await run('swaks', ['--tls', '--server', `127.0.0.1:${port}`, '--to', 'postmaster@example.org'], { PATH: process.env.PATH });
  t.equal(r.status, 0, `swaks: ${r.err}`);
  t.match(r.out, /=== TLS started with cipher TLSv1\.3:/);
  t.match(r.out, /<~ {2}250 /, 'the message accepted after STARTTLS');
  t.ok(await logged(srv, /ucspi-tls-wrap: pid \d+: TLS started: TLSv1\.3 /), `the helper's log: ${srv.err}`);
  t.ok(await logged(srv, /ucspi-tls-wrap: pid \d+: TLS ended: \d+ bytes to client, \d+ bytes to app/));
});

t.test('/usr/bin/ucspi-tls-server as the packaged unit runs it: the users from users.env', async (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const certs = makeCert(dir);
  const port = await freePort();
  const ids = parseEnvironmentFile(readFileSync('/etc/ucspi-tls-wrap/users.env', 'utf8'));
  const env = { PATH: process.env.PATH, CERTFILE: certs.cert, KEYFILE: certs.key, UCSPITLS: '1', ...ids };
  // From / as systemd starts it: mailfront, as ucspi-tls-app, may not enter the test's folder.
  const srv = new ServerLauncher('sh', ['-c', 'cd / && exec "$@"', 'sh', ...WITHOUT_TEST_HOOKS, '/usr/bin/ucspi-tls-server', '-v', '127.0.0.1', String(port),
    'mailfront', 'smtp', 'echo', 'accept', 'starttls-ucspi'], env);
  t.teardown(() => srv.stop());
  await srv.ready(port);
  const workers = srv.workers();
  t.not(workers.length, 0, 'TLS workers running');
  for (const w of workers) t.equal(uidsOf(w), [1, 2, 3].map(() => ids['TLS_UID']).join(' '), `worker ${w} runs as ucspi-tls`);
  const r = await run('swaks', ['--tls', '--server', `127.0.0.1:${port}`, '--to', 'postmaster@example.org'], { PATH: process.env.PATH });
  t.equal(r.status, 0, `swaks: ${r.err}`);
  t.match(r.out, /<~ {2}250 /, 'the message accepted after STARTTLS');
  const end = await srv.end();
  t.same([end.status, end.session], [0, 'tls'], 'mailfront exited 0 after a TLS session');
  const shut = await srv.shutdown();
  t.same([shut.status, shut.left], [0, []], 'SIGTERM: the server exits 0, nothing left running');
});

t.test('dpkg -r removes the files, keeps the conffile and the users', async (t) => {
  const r = await dpkg(['-r', PKG]);
  t.equal(r.status, 0, `dpkg -r: ${r.err}`);
  t.equal(sh('dpkg-query', ['-W', '-f=${Status}', PKG]).out, 'deinstall ok config-files');
  for (const p of PROGRAMS) t.notOk(existsSync(`/usr/bin/${p}`), `/usr/bin/${p} gone`);
  t.notOk(existsSync(join(UNITS, 'ucspi-tls-server-submission.service')), 'units gone');
  t.ok(existsSync('/etc/ucspi-tls-wrap/submission.env'), 'the conffile stays until purge');
  t.notOk(existsSync('/etc/ucspi-tls-wrap/users.env'), 'users.env goes with the package');
  for (const user of Object.values(USERS)) t.ok(passwd(user), `user ${user} stays`);
});

t.test('dpkg -P: nothing of the package left but its users', async (t: Test) => {
  const r = await dpkg(['-P', PKG]);
  t.equal(r.status, 0, `dpkg -P: ${r.err}`);
  t.equal(r.err, '', 'no warning (a folder not empty, say)');
  t.notOk(installed(), 'dpkg knows it no more');
  t.not(listed.length, 0);
  const left = listed.filter((p) => !before.has(p) && existsSync(p));
  t.same(left, [], 'every path it brought is gone');
  t.notOk(existsSync('/etc/ucspi-tls-wrap'), '/etc/ucspi-tls-wrap gone');
  const state = ['/var/lib/systemd/deb-systemd-helper-enabled', '/var/lib/systemd/deb-systemd-helper-masked']
    .flatMap((d) => (existsSync(d) ? sh('find', [d, '-name', '*ucspi-tls-*']).out.split('\n').filter((l) => l !== '') : []));
  t.same(state, [], 'no systemd state of its units');
  t.same(readdirSync('/var/lib/dpkg/info').filter((f) => f.startsWith(`${PKG}.`)), [], 'no maintainer script or list left in dpkg\'s database');
  // Policy 9.2: files the users own may outlive the package, so the users stay.
  for (const user of Object.values(USERS)) t.ok(passwd(user), `user ${user} stays`);
});
