// Node's internals live in src/runtime/ and nowhere else in src/: a Node release that changes
// one is then found in one folder, each behind its named function (test/internals.test.ts).
// And src/runtime/ sits at the bottom: it imports nothing of ours from outside it.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { ROOT } from './helpers';

const SRC = join(ROOT, 'src');
const ROOM = join(SRC, 'runtime');

/** What marks a use of an internal, in code (comments may name them). */
const INTERNALS: Array<[string, RegExp]> = [
  ['an underscore property', /(\?\.|\.)\s*_[A-Za-z$]\w*/],
  ['an underscore property by name', /(['"`])_[A-Za-z$]\w*\1\s*(\]|in\b)/],
  ['an underscore property in a type', /[{;,]\s*_[A-Za-z$]\w*\s*\??\s*:/],
  ['a V8 flag set at run time', /\bsetFlagsFromString\b/],
  ['an internal binding', /\bprocess\s*\.\s*binding\b|\binternalBinding\b/],
  ['a libuv handle method', /\b(readStop|readStart|setBlocking)\b/],
  ['a read into our buffer (over a taken handle)', /\bonread\b/],
  ['a new V8 context', /['"](node:)?vm['"]/],
];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** The file's code without its comments, as TypeScript's parser reads it and prints it again. */
function code(file: string): string {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  return ts.createPrinter({ removeComments: true }).printFile(source);
}

function internalsIn(file: string): string[] {
  const c = code(file);
  return INTERNALS.filter(([, re]) => re.test(c)).map(([what]) => what);
}

t.test('no internal of Node in src/ outside src/runtime/', async (t) => {
  const outside = sources(SRC).filter((f) => !f.startsWith(ROOM + '/'));
  t.ok(outside.length > 50, `${outside.length} files looked at`);
  const found = outside.flatMap((f) => internalsIn(f).map((what) => `${relative(ROOT, f)}: ${what}`));
  t.same(found, [], 'each goes behind a function in src/runtime/');
});

t.test('the search finds each kind of internal: it is what src/runtime/ holds', async (t) => {
  const inRoom = new Set(sources(ROOM).flatMap(internalsIn));
  for (const [what] of INTERNALS) if (what !== 'an internal binding' && what !== 'an underscore property by name') t.ok(inRoom.has(what), what);
  // Those two are in no file today: the search is shown on code as it would be written.
  const sample = (s: string): boolean => INTERNALS.some(([, re]) => re.test(s));
  t.ok(sample("const b = process.binding('fs');"));
  t.ok(sample("if ('_handle' in s) x();"));
  t.ok(sample("s['_handle'].fd"));
  t.notOk(sample("const handle = s.handle; const x = { name: 1 }; f(_ => 1);"), 'ordinary code is not taken for one');
});

t.test('src/runtime/ imports nothing of ours from outside it', async (t) => {
  for (const f of sources(ROOM)) {
    const specifiers = [...code(f).matchAll(/\b(?:from|require\s*\()\s*['"]([^'"]+)['"]/g)].map((m) => m[1]!);
    const ours = specifiers.filter((s) => s.startsWith('.') && !s.startsWith('./'));
    t.same(ours, [], `${relative(ROOT, f)}: ${specifiers.join(', ')}`);
  }
});
