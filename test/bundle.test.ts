// scripts/bundle.js: one file per executable, ASCII only (a character above 0x7f would make
// V8 keep the whole source at two bytes a character for the process's life), with the same
// meaning as the modules it joins.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir } from './helpers';

const NON_ASCII = /[^\x00-\x7f]/;

t.test('the executables are bundled in ASCII', async (t) => {
  for (const name of ['ucspi-tls-wrap', 'ucspi-tls-client', 'ucspi-tls-server', 'ucspi-tls-server-spawner', 'ucspi-tls-server-worker']) {
    const text = readFileSync(join(ROOT, 'build', `${name}.js`), 'latin1');
    t.notMatch(text, NON_ASCII, `build/${name}.js`);
  }
});

t.test("the helper's bundle has its modules' functions marked to compile with the file", async (t) => {
  // For Node's compile cache to hold them (scripts/eager.js): no declaration is left at a
  // module's top level but the bundle's own loader, and main is a parenthesized expression.
  const text = readFileSync(join(ROOT, 'build', 'ucspi-tls-wrap.js'), 'latin1');
  t.same(text.match(/^function \w+/gm), ['function load']);
  t.match(text, /^var main = \(function main\(\) \{$/m);
});

for (const eager of [false, true]) {
  t.test(`a module's text outside ASCII keeps its meaning${eager ? ' (--eager)' : ''}`, async (t) => {
    const dir = tempDir(t, 'utw-bundle-');
    writeFileSync(join(dir, 'main.js'), "'use strict';\n// app→client\nconst { arrow } = require('./dep');\nprocess.stdout.write(JSON.stringify([arrow, /→/.test('a→b'), 'µs'.length, `…${arrow}`]));\n");
    writeFileSync(join(dir, 'dep.js'), "'use strict';\nexports.arrow = arrow();\nfunction arrow() { return '→'; }\n");
    const made = spawnSync(process.execPath, [join(ROOT, 'scripts', 'bundle.js'), ...(eager ? ['--eager'] : []), 'main.js', 'out.js'], { cwd: dir, encoding: 'utf8' });
    t.equal(made.status, 0, made.stderr);
    t.notMatch(readFileSync(join(dir, 'out.js'), 'latin1'), NON_ASCII);
    const ran = spawnSync(process.execPath, [join(dir, 'out.js')], { encoding: 'utf8' });
    t.equal(ran.status, 0, ran.stderr);
    t.same(JSON.parse(ran.stdout), ['→', true, 2, '…→']);
  });
}

t.test('--late: the modules required only inside a function go to OUT-late.js, read at their first require', async (t) => {
  const dir = tempDir(t, 'utw-bundle-');
  // main requires a as it loads, and b only when asked; b shares a with main and brings c.
  writeFileSync(join(dir, 'main.js'), "'use strict';\nconst a = require('./a');\na.count++;\nfunction later() {\n  return require('./b').seen();\n}\nprocess.stdout.write(JSON.stringify(process.argv[2] === 'late' ? later() : a.count));\n");
  writeFileSync(join(dir, 'a.js'), "'use strict';\nexports.count = 0;\n");
  writeFileSync(join(dir, 'b.js'), "'use strict';\nconst a = require('./a');\nconst { c } = require('./c');\nexports.seen = () => [a.count, c];\n");
  writeFileSync(join(dir, 'c.js'), "'use strict';\nexports.c = 'c';\n");
  for (const eager of [false, true]) {
    const made = spawnSync(process.execPath, [join(ROOT, 'scripts', 'bundle.js'), ...(eager ? ['--eager'] : []), '--late', 'main.js', 'out.js'], { cwd: dir, encoding: 'utf8' });
    t.equal(made.status, 0, made.stderr);
    const [early, late] = [readFileSync(join(dir, 'out.js'), 'latin1'), readFileSync(join(dir, 'out-late.js'), 'latin1')];
    const defines = (text: string): string[] => [...text.matchAll(/^"(\w+\.js)": \[/gm)].map((m) => m[1]!);
    t.same(defines(early), ['main.js', 'a.js'], 'out.js: main and a');
    t.same(defines(late), ['b.js', 'c.js'], 'out-late.js: b and c');
    const ran = spawnSync(process.execPath, [join(dir, 'out.js'), 'late'], { encoding: 'utf8' });
    t.equal(ran.status, 0, ran.stderr);
    t.same(JSON.parse(ran.stdout), [1, 'c'], 'b sees the a that main loaded, and c');
    renameSync(join(dir, 'out-late.js'), join(dir, 'gone.js'));
    const early1 = spawnSync(process.execPath, [join(dir, 'out.js')], { encoding: 'utf8' });
    t.equal(early1.stdout, '1', 'without a late require, the late file is never read');
    t.not(spawnSync(process.execPath, [join(dir, 'out.js'), 'late'], { encoding: 'utf8' }).status, 0, 'with one, it is');
  }
});
