// scripts/eager.js, which marks every function of the helper's bundle for V8 to compile with
// the file (so that Node's compile cache holds them): the module behaves as before, and V8
// has compiled all its functions before any runs. V8 writes into a code cache what it has
// compiled, so a cache made after every function ran grows beyond one made before the
// first call exactly when something was left to compile at a first call.
import t from 'tap';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { ROOT } from './helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { eager } = require(join(ROOT, 'scripts', 'eager.js')) as { eager: (source: string, fileName: string) => string };

/** A module as tsc writes them: exports bound before the declarations they name. */
const MODULE = `"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.total = total;
exports.later = later;
const early = twice(2); // a declaration is usable above itself
function twice(n) {
    return n * 2;
}
function total(list) {
    const sum = list.reduce((a, b) => a + b, 0);
    function scaled(k) {
        if (k > 1) {
            function inBlock() { return k; }
            return sum * inBlock();
        }
        return sum;
    }
    return scaled(early) + [1, 2].map(function (x) { return x; }).length;
}
async function later(x) {
    return x;
}
class Box {
    constructor(v) { this.v = v; }
    get() { return this.v; }
}
exports.box = new Box(total([1, 2, 3]));
`;

interface Exports {
  total: (list: number[]) => number;
  later: (x: number) => Promise<number>;
  box: { get: () => number };
}

/** Compile `source` as a CommonJS module: its exports, and its code cache before and after running everything. */
async function load(source: string): Promise<{ exports: Exports; before: number; after: number }> {
  const script = new Script(`(function (exports) {\n${source}\n})`, { filename: 'module.js' });
  const before = script.createCachedData().length;
  const exports = {} as Exports;
  (script.runInThisContext() as (e: Exports) => void)(exports);
  exports.total([4, 5]);
  await exports.later(1);
  return { exports, before, after: script.createCachedData().length };
}

t.test('the module behaves as before: hoisting, nesting, async, classes', async (t) => {
  const plain = await load(MODULE);
  const marked = await load(eager(MODULE, 'module.js'));
  t.equal(marked.exports.total([4, 5]), plain.exports.total([4, 5]));
  t.equal(marked.exports.total([4, 5]), 38);
  t.equal(await marked.exports.later(7), 7);
  t.equal(marked.exports.box.get(), 26);
  t.equal(marked.exports.total.name, 'total');
});

t.test('"use strict" stays the first statement', async (t) => {
  const out = eager(MODULE, 'module.js');
  t.match(out, /^"use strict";\nvar twice = \(function twice\(n\)/);
  t.throws(() => new Script(`(function () {\n${eager('"use strict";\nfunction f() { undeclared = 1; }\nf();\n', 'm.js')}\n})`).runInThisContext()());
});

t.test('every function outside blocks and methods is compiled with the file', async (t) => {
  // Declarations in blocks and methods are left lazy, and V8 before Node 24 compiles an arrow
  // function at its first call even in parentheses: without them, all is compiled at once.
  const noLazy = MODULE.replace(/if \(k > 1\) \{[^]*?return sum \* inBlock\(\);\n {8}\}\n/, '')
    .replace('(a, b) => a + b', 'function (a, b) { return a + b; }')
    .replace(/class Box \{[^]*?\n\}\n/, 'const Box = function (v) { this.get = function () { return v; }; };\n');
  t.notMatch(noLazy, /=>|inBlock|class/);
  const plain = await load(noLazy);
  t.ok(plain.before < plain.after, `without marks, functions compile at their first call (${plain.before} < ${plain.after} bytes)`);
  const marked = await load(eager(noLazy, 'module.js'));
  // (Node 20 writes a little less once they ran: what counts is that nothing was added.)
  t.ok(marked.after <= marked.before, `marked, nothing is left to compile at a first call (${marked.after} <= ${marked.before} bytes)`);
  t.equal(marked.exports.box.get(), 8);
});

t.test('the source is kept as is where nothing is to mark', async (t) => {
  const src = '"use strict";\n// a comment\nconst a = 1;\nexports.a = a;\n';
  t.equal(eager(src, 'm.js'), src);
});
