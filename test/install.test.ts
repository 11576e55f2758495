// Installed as an operator installs it: make install (with PREFIX, with DESTDIR) and npm's
// packed tarball; then the installed executable serves under tcpserver and man shows its pages.
import t, { type Test } from 'tap';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { APP, baseEnv, freePort, makeCert, ROOT, run, tcpserver, tempDir, tlsSession, waitFor, WITHOUT_TEST_HOOKS } from './helpers';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };
const programs = Object.keys(pkg.bin);

function firstLine(file: string): string {
  return readFileSync(file, 'latin1').split('\n')[0]!;
}

function make(args: string[]): void {
  execFileSync('make', ['-s', '-C', ROOT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Every file and link below dir, relative to it. */
function filesBelow(dir: string, sub = ''): string[] {
  if (!existsSync(join(dir, sub))) return [];
  return readdirSync(join(dir, sub), { withFileTypes: true }).flatMap((e) => {
    const rel = join(sub, e.name);
    return e.isDirectory() ? filesBelow(dir, rel) : [rel];
  });
}

function renders(t: Test, manpath: string, section: string, page: string): void {
  const r = spawnSync('man', ['-M', manpath, section, page], { encoding: 'utf8', env: { ...process.env, MANWIDTH: '100', MANPAGER: 'cat' } });
  t.equal(r.status, 0, `man ${section} ${page}: ${r.stderr}`);
  t.match(r.stdout.replace(/.\x08/g, ''), new RegExp(`^NAME\\n\\s+${page} - `, 'm'), `man ${section} ${page} shows its NAME`);
}

/** The installed helper under tcpserver: a STARTTLS session, the app's answer through TLS, the log. */
async function servesUnderTcpserver(t: Test, helper: string): Promise<void> {
  const dir = tempDir(t);
  const port = await freePort();
  const srv = await tcpserver(port, baseEnv(makeCert(dir), { REPORT: dir }), [helper, '-v', APP]);
  t.teardown(() => srv.stop());
  const s = await tlsSession(port, dir);
  t.equal(s.answer, '250 yes NOOP', 'the app answered through TLS');
  t.equal(s.vars.get('SSL_VERSION_INTERFACE'), `ucspi-tls-wrap/${pkg.version}`);
  await waitFor(join(dir, 'state'));
  for (let i = 0; i < 250 && !/app exited with 0/.test(srv.err); i++) await new Promise((r) => setTimeout(r, 20));
  t.match(srv.err, /ucspi-tls-wrap: pid \d+: TLS started: TLSv1\.3 /);
  t.match(srv.err, /ucspi-tls-wrap: pid \d+: app exited with 0/);
}

/** The installed server, as root: its workers (nobody) start from the installed files, and serve a session. */
async function servesAsServer(t: Test, server: string): Promise<void> {
  const dir = tempDir(t);
  const srv = spawn(WITHOUT_TEST_HOOKS[0]!, [...WITHOUT_TEST_HOOKS.slice(1), server, '-v', '-1', '127.0.0.1', '0', APP], { env: baseEnv(makeCert(dir), { REPORT: dir }), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  srv.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  srv.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise((r) => srv.once('exit', r));
  t.teardown(async () => {
    srv.kill('SIGTERM');
    await exited;
  });
  for (let i = 0; i < 400 && !out.includes('\n') && srv.exitCode === null; i++) await new Promise((r) => setTimeout(r, 25));
  t.match(out, /^\d+\n$/, `the installed server listens: ${err}`);
  const s = await tlsSession(Number(out), dir);
  t.equal(s.answer, '250 yes NOOP', 'the app answered through the installed server');
  t.equal(s.vars.get('SSL_VERSION_INTERFACE'), `ucspi-tls-server/${pkg.version}`);
}

/** This Node has a compile cache (22.1 and later). */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const HAS_CACHE = typeof (require('node:module') as { enableCompileCache?: unknown }).enableCompileCache === 'function';
const TAKEN = /ucspi-tls-wrap\.js was accepted/;
/** Node 22 names cache entries by absolute path only: a moved tree compiles afresh there. */
const PORTABLE = ((): boolean => {
  const probe = mkdtempSync(join(tmpdir(), 'utw-portable-'));
  try {
    return spawnSync(process.execPath, ['-e', `require('node:module').enableCompileCache({ directory: ${JSON.stringify(probe)}, portable: true })`]).status === 0;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
})();

/** The installed compile cache: a folder for this Node where it has a compile cache, readable by every user; else empty. */
function cacheFor(t: Test, cache: string): void {
  const folders = readdirSync(cache);
  if (!HAS_CACHE) return void t.same(folders, [], 'no compile cache for a Node without one');
  t.equal(folders.filter((n) => n.startsWith(`${process.version}-${process.arch}-`)).length, 1, `a compile cache for this Node (${process.version})`);
  for (const f of filesBelow(cache)) t.equal(statSync(join(cache, f)).mode & 0o777, 0o644, `${f}: read by any user, written by its owner only`);
}

/** Node's debug lines about the compile cache when `helper --version` runs. */
async function cacheLines(helper: string): Promise<string> {
  const r = await run(helper, ['--version'], { PATH: process.env.PATH, NODE_DEBUG_NATIVE: 'COMPILE_CACHE' });
  return r.err;
}

async function versions(t: Test, bindir: string): Promise<void> {
  for (const p of programs) {
    const r = await run(join(bindir, p), ['--version'], { PATH: process.env.PATH });
    t.equal(r.out, `${p} ${pkg.version}\n`, `${p} --version`);
  }
}

t.test('make install PREFIX=...: executables, run-time modules, man pages; then make uninstall', async (t) => {
  const top = tempDir(t);
  chmodSync(top, 0o755); // the server's workers run as nobody and load the installed files
  const prefix = join(top, 'usr', 'local');
  make(['install', `PREFIX=${prefix}`]);
  for (const p of programs) {
    const link = join(prefix, 'bin', p);
    t.ok(lstatSync(link).isSymbolicLink(), `bin/${p} is a link`);
    t.equal(readlinkSync(link), `../lib/ucspi-tls-wrap/bin/${p}`, 'relative, so it holds wherever the tree is');
  }
  t.same(readdirSync(join(prefix, 'lib/ucspi-tls-wrap/build')).sort(), [...programs.map((p) => `${p}.js`), 'compile-cache', 'ucspi-tls-server-spawner.js', 'ucspi-tls-server-worker.js', 'ucspi-tls-wrap-uncached.js', 'ucspi-tls-wrap-uncached-late.js'].sort(),
    'per executable one file with its modules and minimist in it, the server\'s worker and the helper\'s compile cache: no node_modules, no tests');
  cacheFor(t, join(prefix, 'lib/ucspi-tls-wrap/build/compile-cache'));
  for (const p of programs) {
    t.equal(firstLine(join(prefix, 'lib/ucspi-tls-wrap/bin', p)), firstLine(join(ROOT, 'bin', p)), `${p}: the node in PATH, with the options of bin/${p}`);
    t.match(firstLine(join(prefix, 'lib/ucspi-tls-wrap/bin', p)), /^#!\/usr\/bin\/env -S node --use-openssl-ca( |$)/);
  }
  t.notOk(existsSync(join(prefix, 'lib/ucspi-tls-wrap/node_modules')));
  t.ok(existsSync(join(prefix, 'share/doc/ucspi-tls-wrap/examples/systemd/submission@.service')), 'examples');
  for (const doc of ['README.md', 'HACKING.md']) t.ok(existsSync(join(prefix, 'share/doc/ucspi-tls-wrap', doc)), doc);
  await versions(t, join(prefix, 'bin'));
  await servesUnderTcpserver(t, join(prefix, 'bin', 'ucspi-tls-wrap'));
  await servesAsServer(t, join(prefix, 'bin', 'ucspi-tls-server'));
  const manpath = join(prefix, 'share', 'man');
  for (const p of programs) renders(t, manpath, '1', p);
  renders(t, manpath, '7', 'ucspi-tls');

  make(['uninstall', `PREFIX=${prefix}`]);
  t.same(filesBelow(prefix), [], 'make uninstall leaves no file or link behind');
});

// An operator whose launcher's PATH has another node (or none) names the node to run on.
t.test('make install NODE=...: the executables run on that node, whatever PATH has', async (t) => {
  const dir = tempDir(t);
  const prefix = join(dir, 'usr');
  // A node that says which it is, so that the test sees that this one ran, not PATH's.
  const node = join(dir, 'node-bin', 'node');
  make(['install', `PREFIX=${prefix}`, `NODE=${node}`]);
  for (const p of programs) {
    t.equal(firstLine(join(prefix, 'lib/ucspi-tls-wrap/bin', p)), firstLine(join(ROOT, 'bin', p)).replace(' node ', ` ${node} `), `${p}: ${node}, with the options of bin/${p}`);
  }
  mkdirSync(join(dir, 'node-bin'));
  writeFileSync(node, `#!/bin/sh\necho "ran by the named node" >&2\nexec '${process.execPath}' "$@"\n`, { mode: 0o755 });
  // PATH's node is not the one named.
  const r = await run(join(prefix, 'bin', 'ucspi-tls-wrap'), ['--version'], { PATH: '/usr/bin:/bin' });
  t.equal(r.status, 0);
  t.equal(r.out, `ucspi-tls-wrap ${pkg.version}\n`);
  t.equal(r.err, 'ran by the named node\n');
});

t.test('make install DESTDIR=... PREFIX=/usr/local: staged, and runs from the stage', async (t) => {
  const stage = tempDir(t);
  make(['install', `DESTDIR=${stage}`, 'PREFIX=/usr/local']);
  const installed = filesBelow(stage);
  t.ok(installed.length > 0 && installed.every((f) => f.startsWith('usr/local/')), 'everything under the stage\'s /usr/local');
  t.ok(installed.includes('usr/local/share/man/man1/ucspi-tls-wrap.1'));
  t.ok(installed.includes('usr/local/share/man/man7/ucspi-tls.7'));
  await versions(t, join(stage, 'usr/local/bin'));
  cacheFor(t, join(stage, 'usr/local/lib/ucspi-tls-wrap/build/compile-cache'));
  if (HAS_CACHE) {
    t.match(await cacheLines(join(stage, 'usr/local/bin/ucspi-tls-wrap')), TAKEN, 'the staged helper takes its compiled code from the cache');
    // Where the package puts it: the cache names the bundle relative to itself.
    const final = tempDir(t);
    renameSync(join(stage, 'usr'), join(final, 'usr'));
    if (PORTABLE) t.match(await cacheLines(join(final, 'usr/local/bin/ucspi-tls-wrap')), TAKEN, 'and so does the same tree moved elsewhere');
    else t.equal((await run(join(final, 'usr/local/bin/ucspi-tls-wrap'), ['--version'], { PATH: process.env.PATH })).out, `ucspi-tls-wrap ${pkg.version}\n`, 'moved elsewhere, it compiles afresh and runs');
    renameSync(join(final, 'usr'), join(stage, 'usr'));
  }
  make(['uninstall', `DESTDIR=${stage}`, 'PREFIX=/usr/local']);
  t.same(filesBelow(stage), [], 'make uninstall with the same DESTDIR removes it all');
});

t.test('npm pack, then npm install -g of the tarball: commands and man pages', async (t) => {
  const dir = tempDir(t);
  const out = execFileSync('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const tarball = join(dir, out.trim().split('\n').pop()!);
  const listing = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' });
  t.match(listing, /^package\/build\/src\/helper\/main\.js$/m);
  t.match(listing, /^package\/man\/ucspi-tls\.7$/m);
  t.match(listing, /^package\/HACKING\.md$/m, 'the developers\' document, which the README and ucspi-tls(7) point to');
  t.match(listing, /^package\/build\/ucspi-tls-wrap\.js$/m, 'the helper in one file');
  t.match(listing, /^package\/build\/ucspi-tls-server-worker\.js$/m, 'the server\'s worker');
  t.match(listing, /^package\/build\/ucspi-tls-server-spawner\.js$/m, 'the server\'s spawner');
  t.notMatch(listing, /^package\/build\/test\//m, 'no tests in the package');
  t.notMatch(listing, /^package\/src\//m, 'no TypeScript sources');

  const prefix = join(dir, 'global');
  execFileSync('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  await versions(t, join(prefix, 'bin'));
  await servesUnderTcpserver(t, join(prefix, 'bin', 'ucspi-tls-wrap'));
  for (const p of programs) renders(t, join(prefix, 'share', 'man'), '1', p);
  renders(t, join(prefix, 'share', 'man'), '7', 'ucspi-tls');
});
