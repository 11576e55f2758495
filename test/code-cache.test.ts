// The helper's compiled code (build/ucspi-tls-wrap.cache): V8 takes it as the build made it;
// a cache from another build never reaches V8 (which checks only the source's length), and
// V8 refuses a damaged one (it checks the checksum while the loader asks it to): either way
// the helper compiles its bundle as usual and works the same.
import t, { type Test } from 'tap';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, run, tempDir } from './helpers';

const NAME = 'ucspi-tls-wrap';
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

// Run a loader with arguments; at exit, say what V8 did with the cache: undefined when the
// loader gave it none, false when V8 took it, true when V8 refused it.
const PROBE = `
const [loader, ...args] = process.argv.slice(1);
process.argv = [process.argv[0], loader, ...args];
process.on('exit', () => process.stderr.write('cache ' + require(loader).script.cachedDataRejected + '\\n'));
require(loader);
`;

/** --version through the loader in dir, in a plain environment (no test runner's flags). */
async function version(dir: string): Promise<{ status: number | null; out: string; err: string }> {
  return run(process.execPath, ['-e', PROBE, join(dir, `${NAME}.js`), '--version'], { PATH: process.env.PATH });
}

/**
 * The built loader and bundle in a folder of their own, with the cache as `edit` leaves it
 * (undefined: no cache file); then --version there must work and compile without a cache:
 * `fate` is what the probe says of it.
 */
async function compilesWithout(t: Test, edit: (cache: Buffer) => Buffer | undefined, fate = 'cache undefined\n'): Promise<void> {
  const dir = tempDir(t);
  for (const f of [`${NAME}.js`, `${NAME}.bundle.js`]) copyFileSync(join(ROOT, 'build', f), join(dir, f));
  const cache = edit(readFileSync(join(ROOT, 'build', `${NAME}.cache`)));
  if (cache !== undefined) writeFileSync(join(dir, `${NAME}.cache`), cache);
  const r = await version(dir);
  t.equal(r.status, 0);
  t.equal(r.out, `${NAME} ${pkg.version}\n`);
  t.equal(r.err, fate, 'compiled without the cache');
}

t.test('the built cache is the bundle\'s: V8 takes it', async (t) => {
  const r = await version(join(ROOT, 'build'));
  t.equal(r.status, 0);
  t.equal(r.out, `${NAME} ${pkg.version}\n`);
  t.equal(r.err, 'cache false\n', 'V8 took the cache');
  const cache = readFileSync(join(ROOT, 'build', `${NAME}.cache`));
  const bundle = readFileSync(join(ROOT, 'build', `${NAME}.bundle.js`), 'latin1');
  t.match(bundle, /^\/\/ build [0-9a-f]{32}\n/, 'the bundle names its build on its first line');
  t.equal(cache.toString('latin1', 0, 42), bundle.slice(0, 42), 'the cache names the same build');
});

// Another build's name, with this build's compiled code behind it: V8 alone would take it,
// as it checks only the length of the source.
t.test('a cache from another build is not given to V8', (t) =>
  compilesWithout(t, (c) => {
    c.write('0123456789abcdef0123456789abcdef', 9, 'latin1');
    return c;
  }));

// Without its checksum check, V8 deserializes this and the helper dies of a signal.
t.test('V8 refuses a damaged cache, and the helper runs', (t) => compilesWithout(t, (c) => c.fill(0x5a, 42 + 64), 'cache true\n'));

// V8's flag hash is part of every code cache, Node's own for its built-in modules too: the
// flag the loader sets while V8 reads the cache must be unset again, or each built-in loaded
// afterwards would be compiled from its source.
t.test('after the loader, Node\'s built-in modules still come from its code cache', async (t) => {
  // A cache made before the loader ran is taken after it only if V8's flags are as before.
  // (Another file name, or V8 would find the script in its own table and not look.)
  const probe = `
const { Script } = require('node:vm');
const before = new Script('2 + 2', { filename: 'before.js' }).createCachedData();
const [loader] = process.argv.slice(1);
process.argv = [process.argv[0], loader, '--version'];
process.on('exit', () => process.stderr.write('rejected ' + new Script('2 + 2', { filename: 'after.js', cachedData: before }).cachedDataRejected + '\\n'));
require(loader);
`;
  const r = await run(process.execPath, ['-e', probe, join(ROOT, 'build', `${NAME}.js`)], { PATH: process.env.PATH });
  t.equal(r.status, 0);
  t.equal(r.err, 'rejected false\n', 'V8\'s flag hash is as before the loader');
});

t.test('no cache: the helper compiles its bundle', (t) => compilesWithout(t, () => undefined));
