// make profile's arithmetic (pure): a V8 profile's self times, perf's lines and where each goes.
import t from 'tap';
import { parsePerfSample, perfEntries, perfKindOf, selfTimes, shares, type CpuProfile } from './profile-summary';

t.test("a V8 profile: self time per function, each sample's time the delta to the next, idle left out", async (t) => {
  const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 0 });
  const p: CpuProfile = {
    nodes: [
      { id: 1, callFrame: frame('(root)', '') },
      { id: 2, callFrame: frame('startConnection', 'file:///x/build/ucspi-tls-server.js') },
      { id: 3, callFrame: frame('spawn', 'node:internal/child_process') },
      { id: 4, callFrame: frame('(garbage collector)', '') },
      { id: 5, callFrame: frame('writeBuffer', '') },
      { id: 6, callFrame: frame('(idle)', '') },
    ],
    samples: [2, 3, 3, 4, 5, 6, 2],
    timeDeltas: [0, 100, 300, 100, 200, 100, 50],
  };
  const e = selfTimes([p]);
  t.same(
    e.map((x) => [x.name, x.file, x.kind, x.selfUs]),
    [
      ['spawn', 'node:internal/child_process', "Node's JS", 400],
      ['writeBuffer', '', 'OpenSSL/native', 100],
      ['(garbage collector)', '', 'V8/GC', 200],
      ['startConnection', 'ucspi-tls-server.js', 'ours', 150],
    ].sort((a, b) => (b[3] as number) - (a[3] as number)),
  );
  const s = shares(e);
  t.equal(Math.round(s["Node's JS"]), 47);
  t.equal(Math.round(s.ours + s["Node's JS"] + s['V8/GC'] + s['OpenSSL/native']), 100);
});

t.test("perf script's lines", async (t) => {
  t.same(parsePerfSample('            node 18070  ffffffff816aa9e5 copy_page_range ([kernel.kallsyms])'), { comm: 'node', pid: 18070, sym: 'copy_page_range', dso: '[kernel.kallsyms]' });
  t.same(parsePerfSample('  node 42 7f8e5c11a3ae JS:*emit node:events:471:44 (/tmp/perf-42.map)'), { comm: 'node', pid: 42, sym: 'JS:*emit node:events:471:44', dso: 'perf-42.map' });
  t.same(parsePerfSample('  node 42 7f8e v8::internal::(anonymous namespace)::Invoke (/usr/bin/node)'), { comm: 'node', pid: 42, sym: 'v8::internal::(anonymous namespace)::Invoke', dso: 'node' });
  t.same(parsePerfSample('  node 42 7f8e5c11a3ae [unknown] (/tmp/perf-42.map)')?.sym, '[unknown]');
  t.equal(parsePerfSample('garbage'), undefined);
});

t.test('where a perf sample goes', async (t) => {
  t.equal(perfKindOf('perf-1.map', 'JS:*emit node:events:471:44'), "Node's JS");
  t.equal(perfKindOf('perf-1.map', 'JS:*startConnection /a/build/ucspi-tls-server.js:10:3'), 'ours');
  t.equal(perfKindOf('perf-1.map', 'JS:~onMessage [stdin]:5:1'), 'ours');
  t.equal(perfKindOf('perf-1.map', 'Builtin:LoadIC'), 'V8/GC');
  t.equal(perfKindOf('perf-1.map', '[unknown]'), 'JS, unnamed');
  t.equal(perfKindOf('node', 'Builtins_LoadIC'), 'V8/GC');
  t.equal(perfKindOf('node', 'v8::internal::Scavenger::ScavengeObject'), 'V8/GC');
  t.equal(perfKindOf('node', 'ossl_rsaz_amm52x20_x2_256'), 'OpenSSL/native');
  t.equal(perfKindOf('[kernel.kallsyms]', 'copy_page_range'), 'OpenSSL/native');
  const e = perfEntries([
    { comm: 'node', pid: 1, sym: 'JS:*f /a/b/ucspi-tls-server.js:1:1', dso: 'perf-1.map' },
    { comm: 'node', pid: 1, sym: 'JS:*f /a/b/ucspi-tls-server.js:1:1', dso: 'perf-1.map' },
    { comm: 'node', pid: 1, sym: 'SSL_read', dso: 'node' },
  ]);
  t.same(e, [
    { name: 'JS:*f ucspi-tls-server.js:1:1', file: 'JIT', kind: 'ours', selfUs: 2 },
    { name: 'SSL_read', file: 'node', kind: 'OpenSSL/native', selfUs: 1 },
  ]);
});
