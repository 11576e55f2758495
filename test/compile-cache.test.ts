// The helper's compile cache (bin/ucspi-tls-wrap, scripts/compile-cache), end to end under
// tcpserver on the Node that runs this test: a cache made for this Node is read and nothing
// is written; a stale, damaged, foreign, missing or unwritable one, or one turned off, leaves
// a session that works, no line of its own, an app environment without it, and the folder
// as it was. Before Node 22.1 there is no compile cache: the script makes an empty folder.
import t, { type Test } from 'tap';
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { appForAnyUser, freePort, HELPER, ROOT, run, tcpserver, tempDir, tlsSession, WITHOUT_TEST_HOOKS, type Launcher } from './helpers';
import { selfSigned } from './pki';

const NOBODY = '65534';
/** This Node has a compile cache (22.1 and later). */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const HAS_CACHE = typeof (require('node:module') as { enableCompileCache?: unknown }).enableCompileCache === 'function';
/** The line Node's own debug output (NODE_DEBUG_NATIVE=COMPILE_CACHE) gives when the cache is taken. */
const TAKEN = /ucspi-tls-wrap\.js was accepted/;

const dir = tempDir(t, 'utw-cc-');
chmodSync(dir, 0o755);
const app = appForAnyUser(t);
const server = selfSigned(dir, 'server', { subject: '/CN=mail.example.test' });
chmodSync(server.key, 0o644); // read by a helper that runs as nobody

/**
 * The helper's two bundles: functions compiled with the file (for the cache), and at their
 * first call, with the modules it loads once the app runs apart (read without a cache).
 */
const BUNDLES = ['ucspi-tls-wrap.js', 'ucspi-tls-wrap-uncached.js', 'ucspi-tls-wrap-uncached-late.js'];

/** An installed-like tree of the helper (bin/, build/) with its cache made by scripts/compile-cache. */
async function lib(t: Test): Promise<{ root: string; cache: string }> {
  const root = tempDir(t, 'utw-cc-lib-');
  chmodSync(root, 0o755);
  mkdirSync(join(root, 'bin'), { mode: 0o755 });
  mkdirSync(join(root, 'build'), { mode: 0o755 });
  copyFileSync(HELPER, join(root, 'bin', 'ucspi-tls-wrap'));
  chmodSync(join(root, 'bin', 'ucspi-tls-wrap'), 0o755);
  for (const b of BUNDLES) copyFileSync(join(ROOT, 'build', b), join(root, 'build', b));
  const made = await run(join(ROOT, 'scripts', 'compile-cache'), [root, process.execPath], { PATH: process.env.PATH });
  t.equal(made.status, 0, `scripts/compile-cache succeeds ${made.err}`);
  return { root, cache: join(root, 'build', 'compile-cache') };
}

/** Every file and folder under `d`: name, mode, size, modification time. */
function listing(d: string): string[] {
  const out: string[] = [];
  const walk = (p: string, rel: string): void => {
    for (const n of readdirSync(p).sort()) {
      const s = statSync(join(p, n));
      out.push(`${rel}${n} ${s.mode.toString(8)} ${s.size} ${s.mtimeMs}`);
      if (s.isDirectory()) walk(join(p, n), `${rel}${n}/`);
    }
  };
  walk(d, '');
  return out;
}

/** The folder of the cache made for this Node, if any. */
function ownFolder(cache: string): string | undefined {
  return readdirSync(cache).find((n) => n.startsWith(`${process.version}-${process.arch}-`));
}

/**
 * tcpserver running the tree's helper as an operator runs it (without the test runner's
 * hooks; `asUser`: tcpserver and the helper run as that user), one STARTTLS session through
 * it; what the app saw, and the lines the helper wrote besides tcpserver's own.
 */
async function session(t: Test, root: string, env: Record<string, string> = {}, asUser?: string): Promise<{ appEnv: string; lines: string[] }> {
  const report = tempDir(t);
  chmodSync(report, 0o777);
  const port = await freePort();
  const user = asUser === undefined ? [] : ['setpriv', `--reuid=${asUser}`, `--regid=${asUser}`, '--clear-groups'];
  const srv: Launcher = await tcpserver(
    port,
    { PATH: process.env.PATH, REPORT: report, CERTFILE: server.cert, KEYFILE: server.key, ...env },
    [join(root, 'bin', 'ucspi-tls-wrap'), '-q', app],
    [...WITHOUT_TEST_HOOKS, ...user],
  );
  t.teardown(() => srv.stop());
  const s = await tlsSession(port, report);
  t.equal(s.answer, '250 yes NOOP', 'the session works through TLS');
  const appEnv = readFileSync(join(report, 'env'), 'utf8');
  await srv.stop();
  return { appEnv, lines: srv.err.split('\n').filter((l) => l !== '' && !l.startsWith('tcpserver: ')) };
}

/** What every case holds: no line from the helper, nothing of the cache in the app's environment. */
function quiet(t: Test, r: { appEnv: string; lines: string[] }): void {
  t.same(r.lines, [], 'the helper writes no line of its own');
  t.notMatch(r.appEnv, /^NODE_(DISABLE_)?COMPILE_CACHE/m, "the app's environment names no compile cache");
}

const DEBUG = { NODE_DEBUG_NATIVE: 'COMPILE_CACHE' };
/** Node's debug lines about the compile cache, from a session run with DEBUG. */
async function debugLines(t: Test, root: string, env: Record<string, string> = {}, asUser?: string): Promise<string> {
  const report = tempDir(t);
  chmodSync(report, 0o777);
  const port = await freePort();
  const user = asUser === undefined ? [] : ['setpriv', `--reuid=${asUser}`, `--regid=${asUser}`, '--clear-groups'];
  const srv = await tcpserver(port, { PATH: process.env.PATH, REPORT: report, CERTFILE: server.cert, KEYFILE: server.key, ...DEBUG, ...env }, [join(root, 'bin', 'ucspi-tls-wrap'), '-q', app], [...WITHOUT_TEST_HOOKS, ...user]);
  t.teardown(() => srv.stop());
  t.equal((await tlsSession(port, report)).answer, '250 yes NOOP', 'the session works through TLS (Node debugging the cache)');
  await srv.stop();
  return srv.err.split('\n').filter((l) => l.startsWith('[compile cache]')).join('\n');
}

t.test('made for this Node: the helper reads it and writes nothing', async (t) => {
  const { root, cache } = await lib(t);
  const before = listing(cache);
  if (HAS_CACHE) {
    t.ok(ownFolder(cache), 'scripts/compile-cache made a folder for this Node');
    t.match(await debugLines(t, root), TAKEN, "Node takes the bundle's compiled code from the cache");
  } else {
    t.same(before, [], 'a Node without a compile cache leaves the folder empty');
  }
  quiet(t, await session(t, root));
  t.same(listing(cache), before, 'the cache is as make left it');
});

t.test('missing: the helper makes no folder', async (t) => {
  const { root, cache } = await lib(t);
  rmSync(cache, { recursive: true });
  quiet(t, await session(t, root));
  t.same(readdirSync(join(root, 'build')).sort(), [...BUNDLES].sort(), 'no compile-cache folder appeared');
});

t.test('missing: the helper runs the bundle whose functions compile at their first call', async (t) => {
  // Compiling every function before the app starts pays only when the cache holds them.
  const { root, cache } = await lib(t);
  rmSync(cache, { recursive: true });
  writeFileSync(join(root, 'build', 'ucspi-tls-wrap.js'), "throw new Error('the bundle for the cache was loaded');\n");
  quiet(t, await session(t, root));
});

t.test("foreign: made for another Node, the helper neither reads nor writes it", async (t) => {
  const { root, cache } = await lib(t);
  // Another version's folder, as one left by an earlier Node (or made by a Node without a cache).
  const own = ownFolder(cache);
  if (own !== undefined) renameSync(join(cache, own), join(cache, 'v19.0.0-x64-00000000-0'));
  else mkdirSync(join(cache, 'v19.0.0-x64-00000000-0'), { mode: 0o755 });
  const before = listing(cache);
  t.equal(await debugLines(t, root), '', 'Node is not asked to use a cache');
  quiet(t, await session(t, root));
  t.same(listing(cache), before, 'no folder for this Node appeared');
});

t.test('stale: the bundle changed since, and a damaged entry: compiled as usual', async (t) => {
  const { root, cache } = await lib(t);
  const own = ownFolder(cache);
  // A later build of the bundle: the same name, other code.
  writeFileSync(join(root, 'build', 'ucspi-tls-wrap.js'), `${readFileSync(join(root, 'build', 'ucspi-tls-wrap.js'), 'utf8')}// a later build\n`);
  if (HAS_CACHE) t.notMatch(await debugLines(t, root), TAKEN, 'Node does not take the old code');
  quiet(t, await session(t, root));
  if (own !== undefined) {
    // Damage every entry in its middle (Node checks each against its checksum).
    for (const e of readdirSync(join(cache, own))) {
      const f = join(cache, own, e);
      const b = readFileSync(f);
      b.fill(0x5a, b.length >> 1, (b.length >> 1) + 64);
      writeFileSync(f, b);
    }
    t.notMatch(await debugLines(t, root), TAKEN, 'Node does not take damaged code');
    quiet(t, await session(t, root));
  }
});

t.test('unwritable: a helper that is not root never writes there', async (t) => {
  const { root, cache } = await lib(t);
  // Stale, so that Node would write a new entry if it could.
  writeFileSync(join(root, 'build', 'ucspi-tls-wrap.js'), `${readFileSync(join(root, 'build', 'ucspi-tls-wrap.js'), 'utf8')}// a later build\n`);
  const before = listing(cache);
  quiet(t, await session(t, root, {}, NOBODY));
  t.same(listing(cache), before, 'the cache is unchanged after a helper running as nobody');
  // Started as root, the helper is TLS_UID by the time Node would write, at exit.
  quiet(t, await session(t, root, { TLS_UID: NOBODY, TLS_GID: NOBODY }));
  t.same(listing(cache), before, 'and after one that became nobody');
});

t.test('made by root, read by a helper that runs as another user', async (t) => {
  const { root, cache } = await lib(t);
  const before = listing(cache);
  const own = ownFolder(cache);
  // Node 22 and 24 keep a folder per user (the uid ends its name); Node 26's portable cache is one for all.
  if (HAS_CACHE && own !== undefined && !own.endsWith('-0')) t.match(await debugLines(t, root, {}, NOBODY), TAKEN, 'nobody takes the compiled code too');
  quiet(t, await session(t, root, {}, NOBODY));
  t.same(listing(cache), before, 'and writes nothing');
});

t.test('NODE_DISABLE_COMPILE_CACHE=1 turns it off', async (t) => {
  const { root, cache } = await lib(t);
  const before = listing(cache);
  t.notMatch(await debugLines(t, root, { NODE_DISABLE_COMPILE_CACHE: '1' }), TAKEN, 'Node does not read the cache');
  const r = await session(t, root, { NODE_DISABLE_COMPILE_CACHE: '1' });
  t.same(r.lines, [], 'the helper writes no line of its own');
  t.same(listing(cache), before, 'the cache is unchanged');
});
