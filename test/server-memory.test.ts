// What an idle TLS connection costs ucspi-tls-server, and the V8 setting it rests on: a young
// generation that does not grow. Run on each runtime: the setting is V8's, read at run time.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { APP, baseEnv, freePort, Lines, makeCert, ROOT, startTls, tempDir, ucspiTlsServer, within } from './helpers';
import { privateBytes } from './hostile';

const KiB = 1024;

const MiB = 1024 * KiB;

/**
 * A burst of objects that stay alive a while, as a burst of handshakes makes; the young
 * generation's size before it and the largest seen on the way.
 */
function youngGeneration(keepSmall: boolean): { before: number; peak: number } {
  const script = `
    const v8 = require('node:v8');
    if (${keepSmall}) require(${JSON.stringify(join(ROOT, 'build', 'src', 'runtime', 'young-generation.js'))}).keepYoungGenerationSmall();
    const size = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
    const before = size();
    let peak = before;
    const keep = [];
    for (let r = 0; r < 200; r++) {
      const a = [];
      for (let i = 0; i < 2000; i++) a.push({ i, s: 'x' + i });
      keep.push(a);
      if (r % 10 === 0) keep.splice(0, 5);
      peak = Math.max(peak, size());
    }
    process.stdout.write(JSON.stringify({ before, peak }));`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { PATH: process.env.PATH } });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as { before: number; peak: number };
}

// Left alone, V8 doubles the young generation up to 32 MiB (64 on Node 24) in this burst.
// Told not to, Node 24 and 26 still add a page (256 KiB) at a time and drop them again a few
// MiB later (at most 7 MiB seen): the bound is on the largest size seen, not on the size at
// the end, which depends on where in that cycle the burst stops.
t.test(`V8 of Node ${process.version} keeps the young generation small once told to`, async (t) => {
  const grown = youngGeneration(false);
  t.ok(grown.peak >= 16 * MiB, `left alone, it grows: ${grown.before / KiB} -> ${grown.peak / KiB} KiB`);
  const kept = youngGeneration(true);
  t.ok(kept.peak <= 12 * MiB, `kept small: ${kept.before / KiB} KiB at the start, ${kept.peak / KiB} KiB at most, 12 MiB allowed`);
});

t.test('the workers start with a small young generation; 200 idle TLS connections cost the server at most 150 KiB each', async (t) => {
  const N = 200;
  const dir = tempDir(t, 'utw-mem-');
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, TLS_CMD: 'y' }), ['-c', String(N + 10), '-w', '2'], [APP]);
  const workers = srv.workers();
  t.equal(workers.length, 2, 'two workers');
  for (const w of workers) t.ok(readFileSync(`/proc/${w}/cmdline`, 'latin1').split('\0').includes('--max-semi-space-size=1'), `worker ${w} started with --max-semi-space-size=1`);
  const all = (): number => [srv.pid, ...workers].reduce((n, p) => n + privateBytes(p), 0);
  const before = all();
  const conns: TLSSocket[] = [];
  const wrong: string[] = [];
  t.teardown(() => conns.forEach((c) => c.destroy()));
  for (let base = 0; base < N; base += 20) {
    await Promise.all(
      Array.from({ length: 20 }, async (_, k) => {
        const tls = await within(startTls(port), 30000, `connection ${base + k}: STARTTLS`);
        conns.push(tls);
        tls.write(`NOOP ${base + k}\r\n`);
        const answer = await within(new Lines(tls as unknown as Socket).line(), 10000, 'an answer through TLS');
        if (answer !== `250 yes NOOP ${base + k}`) wrong.push(`connection ${base + k}: ${answer}`);
      }),
    );
  }
  t.same(wrong, [], `${N} idle TLS connections, each answered through TLS`);
  const perConnection = (all() - before) / N;
  t.comment(`launcher and workers: ${(perConnection / KiB).toFixed(1)} KiB private per idle TLS connection (Node ${process.version})`);
  t.ok(perConnection <= 150 * KiB, `${(perConnection / KiB).toFixed(1)} KiB per idle TLS connection, at most 150`);
});
