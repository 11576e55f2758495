// scripts/bundle.js: one file per executable, ASCII only (a character above 0x7f would make
// V8 keep the whole source at two bytes a character for the process's life), with the same
// meaning as the modules it joins.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
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
