// The layers of src/: every import points down, or stays in its own folder. The contract is
// the ground floor and imports nothing else of ours; no program imports another's modules.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ROOT } from './helpers';

const SRC = join(ROOT, 'src');

/** From the bottom: a folder (or a file at the top of src/) and its layer. */
const LAYERS: Record<string, number> = {
  contract: 0,
  runtime: 1,
  log: 1,
  messages: 1,
  version: 1,
  tls: 2,
  process: 2,
  session: 3,
  helper: 4,
  client: 4,
  server: 4,
  'app-side': 4,
};
/** The programs, and the library apps use: none may import another. */
const ENTRY_POINTS = new Set(['helper', 'client', 'server', 'app-side']);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** The folder of src/ a file is in (or the file, at the top, without .ts: imports omit it). */
function room(file: string): string {
  return relative(SRC, file).split('/')[0]!.replace(/\.ts$/, '');
}

interface Import {
  from: string;
  to: string;
}

/** Our modules each file imports: `from '…'`, `import('…')`, `require('…')` with a relative path. */
function importsOf(file: string, text: string): Import[] {
  const out: Import[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\brequire\s*\(\s*|^import\s+)'(\.{1,2}\/[^']*)'/gm)) {
    out.push({ from: file, to: resolve(dirname(file), m[1]!) });
  }
  return out;
}

const files = sources(SRC);
const imports = files.flatMap((f) => importsOf(f, readFileSync(f, 'utf8')));
const show = (i: Import): string => `${relative(ROOT, i.from)} imports ${relative(ROOT, i.to)}`;

t.test('the imports are read: every room has some, each names a file of src/', async (t) => {
  t.ok(files.length > 50, `${files.length} files`);
  t.ok(imports.length > 100, `${imports.length} imports`);
  const rooms = new Set(files.map(room));
  for (const r of rooms) t.ok(r in LAYERS, `${r} has a layer (add a new folder to LAYERS)`);
  t.same(importsOf('/x/src/a/b.ts', "import { y } from '../c/d';\nconst z = require('./e') as typeof import('./e');"), [
    { from: '/x/src/a/b.ts', to: '/x/src/c/d' },
    { from: '/x/src/a/b.ts', to: '/x/src/a/e' },
    { from: '/x/src/a/b.ts', to: '/x/src/a/e' },
  ]);
});

t.test('src/contract/ imports nothing of ours outside itself', async (t) => {
  const out = imports.filter((i) => room(i.from) === 'contract' && room(i.to) !== 'contract');
  t.same(out.map(show), []);
});

t.test('no program imports another program’s modules', async (t) => {
  const across = imports.filter((i) => ENTRY_POINTS.has(room(i.from)) && ENTRY_POINTS.has(room(i.to)) && room(i.from) !== room(i.to));
  t.same(across.map(show), []);
});

t.test('every import points to a lower layer, or stays in its folder', async (t) => {
  const up = imports.filter((i) => room(i.from) !== room(i.to) && !((LAYERS[room(i.to)] ?? Infinity) < (LAYERS[room(i.from)] ?? -Infinity)));
  t.same(up.map(show), []);
});
