// `make bench`: the per-connection helper and the resident server beside their C peers and
// floors, every figure from this one run. Real connections on 127.0.0.1; the app is
// bench/app.c. BENCH_QUICK=1: fewer and shorter rounds (to work on the bench, not for figures);
// BENCH_STEPS=memory,banner,session,sessions/s,app→client,client→app: only those steps;
// BENCH_ROWS=server,hitch,...: only those rows (the ids in servers.ts).
import { mkdtempSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { now } from './client';
import { guard } from './guard';
import { machine, portBase } from './machine';
import { bannerMs, memory, rate, sessionMs, settle, toAppMiBs, toClientMiBs } from './measure';
import { emptyRow, helperGoals, median, serverGoals, table, targetTable, versus, type Row } from './report';
import { listening, makeSetup, startServers, type RowId, type Started } from './servers';

const MiB = 1024 * 1024;
const QUICK = process.env.BENCH_QUICK === '1';
const C = {
  reps: QUICK ? { banner: 5, session: 5, throughput: 1, rate: 1 } : { banner: 25, session: 25, throughput: 3, rate: 3 },
  bulk: (QUICK ? 64 : 256) * MiB,
  idle: QUICK ? 50 : 200,
  /** of the idle connections, how many read slowly, and how many others stall */
  readers: QUICK ? 4 : 16,
  pace: 1 * MiB,
  slowSeconds: QUICK ? 3 : 6,
  stallSeconds: QUICK ? 2 : 3,
  concurrent: 16,
  rateSeconds: 2,
  /** Beyond this the bench measures nothing more, prints what it has and fails. */
  limitSeconds: Number(process.env.BENCH_LIMIT_SECONDS ?? 600),
};

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'utw-bench-'));
  const setup = makeSetup(dir, 1000);
  const only = process.env.BENCH_ROWS?.split(',') as RowId[] | undefined;
  const servers = startServers(setup, portBase(), only);
  const g = guard('bench', () => servers, setup.marker, dir, C.limitSeconds);

  const rows = new Map<Started, Row>(servers.map((s) => [s, emptyRow(s.name, s.missing)]));
  let failures = 0;
  try {
    for (const s of servers) {
      if (s.missing !== undefined) continue;
      try {
        await listening([s]);
      } catch (e) {
        process.stderr.write(`bench: ${(e as Error).message}\n`);
        s.missing = rows.get(s)!.missing = 'did not start';
        failures++;
      }
    }
    const live = servers.filter((s) => s.missing === undefined);
    console.log(machine(servers));
    console.log(
      `RSA 2048 certificate; TLS as the two ends negotiate it; 127.0.0.1; medians of ${C.reps.banner} (latency), ${C.reps.rate} (sessions/s, CPU), ${C.reps.throughput} (throughput)` +
        (QUICK ? '; QUICK: fewer, shorter rounds, not for comparison' : ''),
    );

    const steps = process.env.BENCH_STEPS?.split(',');
    /** No figure for `what` in the row; the error and the end of the server's log on stderr. */
    const fail = (s: Started, what: string[], e: Error): void => {
      rows.get(s)!.failed.push(...what);
      failures++;
      const tail = s.log.split('\n').slice(-12).join('\n');
      process.stderr.write(`bench: ${s.name}: ${what.join(', ')}: ${e.message}\n${tail ? `${s.name}, the end of its log:\n${tail}\n` : ''}`);
    };
    /**
     * `reps` runs of `measure` per row, interleaved: a noisy moment hits every row alike. A row
     * whose run fails has no figure in the columns `covers` (by default the step's own).
     */
    const step = async (what: string, reps: number, measure: (s: Started) => Promise<void>, covers = [what]): Promise<void> => {
      if (steps !== undefined && !steps.includes(what)) return;
      const t0 = now();
      for (let rep = 0; rep < reps; rep++) {
        for (const s of live) {
          if (g.stopping()) return;
          if (rows.get(s)!.failed.includes(what)) continue;
          try {
            await measure(s);
          } catch (e) {
            fail(s, covers, e as Error);
            await settle(s, 5000);
          }
        }
      }
      process.stderr.write(`bench: ${what} (${((now() - t0) / 1000).toFixed(1)} s)\n`);
    };
    const samples = (): Map<Started, number[]> => new Map(live.map((s) => [s, []]));
    const medianInto = (got: Map<Started, number[]>, set: (r: Row, v: number) => void): void => got.forEach((xs, s) => set(rows.get(s)!, median(xs)));

    // Warm the page cache and each server once.
    for (const s of live) await sessionMs(s).catch(() => undefined);

    const paces: number[] = [];
    await step('memory', 1, async (s) => {
      const m = await memory(s, { n: C.idle, readers: C.readers, pace: C.pace, slowSeconds: C.slowSeconds, stallSeconds: C.stallSeconds });
      const row = rows.get(s)!;
      row.idleKiB = m.idleKiB;
      if (m.slow !== undefined) {
        Object.assign(row, { peakKiB: m.slow.peakKiB, slowGrowthKiB: m.slow.growthKiB });
        paces.push(m.slow.paceMiBs);
      }
      if (m.stalled !== undefined) Object.assign(row, { stalledPeakKiB: m.stalled.peakKiB, stalledGrowthKiB: m.stalled.growthKiB });
      for (const { what, error } of m.errors) fail(s, [what], error);
    }, ['idle', 'slow reader', 'stalled reader']);
    const banner = samples();
    await step('banner', C.reps.banner, async (s) => void banner.get(s)!.push(await bannerMs(s)));
    medianInto(banner, (r, v) => (r.bannerMs = v));
    const session = samples();
    await step('session', C.reps.session, async (s) => void session.get(s)!.push(await sessionMs(s)));
    medianInto(session, (r, v) => (r.sessionMs = v));
    const perSecond = samples();
    const cpu = samples();
    await step('sessions/s', C.reps.rate, async (s) => {
      const r = await rate(s, C.concurrent, C.rateSeconds);
      perSecond.get(s)!.push(r.perSecond);
      // A round whose apps did not all report their CPU has no CPU figure; the others count.
      if (Number.isFinite(r.cpuMs)) cpu.get(s)!.push(r.cpuMs);
    });
    medianInto(perSecond, (r, v) => (r.perSecond = v));
    medianInto(cpu, (r, v) => (r.cpuMs = v));
    const out = samples();
    await step('app→client', C.reps.throughput, async (s) => void out.get(s)!.push(await toClientMiBs(s, C.bulk)));
    medianInto(out, (r, v) => (r.toClient = v));
    const inb = samples();
    await step('client→app', C.reps.throughput, async (s) => void inb.get(s)!.push(await toAppMiBs(s, C.bulk)));
    medianInto(inb, (r, v) => (r.toApp = v));

    const all = [...rows.values()];
    const row = (id: RowId): Row => {
      const s = servers.find((x) => x.id === id);
      return s === undefined ? emptyRow(id, 'not run') : rows.get(s)!;
    };
    const pace = `${C.pace / MiB} MiB/s`;
    const slowest = paces.length > 0 ? Math.max(...paces) : NaN;
    console.log('');
    console.log(table(all, { pace, concurrent: C.concurrent }));
    console.log('');
    const measured = Number.isFinite(slowest) ? `${slowest.toFixed(2)} MiB/s` : 'n/a';
    console.log(
      [
        "banner: connect to the app's first byte (implicit rows: through the TLS handshake). session: connect, banner, STARTTLS,",
        'handshake, one line, close (floors: the same lines without TLS; implicit rows: handshake, banner, one line, close).',
        `throughput: ${C.bulk / MiB} MiB each way, every byte checked (floors: plaintext). Memory: Private_Clean + Private_Dirty of the`,
        "server's processes, not the apps': tcpserver and the process in front of each app (per-connection rows), or every",
        `process of the resident server (hitch: and the tcpserver behind it). idle: with ${C.idle} idle TLS connections open (floors:`,
        `plaintext), less before, per connection. Then, on those connections, the apps of ${C.readers} write as fast as they can to`,
        `clients that read ${pace} each (at most ${measured} measured) for ${C.slowSeconds} s, and those of ${C.readers} others to clients that read`,
        `nothing (stalled) for ${C.stallSeconds} s, sampled every 100 ms. peak: the highest private KiB of one process in front of a slow`,
        "reader's app (per-connection rows: the median over them), or of the resident processes together; growth: the highest",
        "total less the total before the apps wrote, per connection. CPU: user + system of the server's processes and of the",
        "helpers they reaped, less the apps' own (as each app counts it at exit: with ucspi-tls-server --implicit, that includes",
        `the /bin/sh that becomes the app), per session, while ${C.concurrent} clients run whole sessions for ${C.rateSeconds} s (sessions/s), ${C.reps.rate} rounds.`,
      ].join('\n'),
    );
    console.log('');
    console.log('ucspi-tls-server against the tcpserver floor and stunnel (inetd mode); 10 000 idle connections: make soak-idle');
    console.log('');
    console.log(targetTable(serverGoals(row('tcpserver-floor'), row('stunnel-inetd'), (r) => r.name.includes('STARTTLS')), [row('server'), row('server-implicit')]));
    console.log('');
    console.log('ucspi-tls-wrap, and the least a Node helper with TLS costs, against the Node floor and stunnel (inetd mode):');
    console.log('');
    console.log(targetTable(helperGoals(row('node-floor'), row('stunnel-inetd')), [row('wrap'), row('node-tls-floor')]));
    console.log('');
    console.log(versus(row('server-implicit'), row('hitch')));
    console.log(versus(row('server-implicit'), row('node-tls-server')));
    console.log(versus(row('node-tls-server'), row('hitch')));
    console.log(versus(row('server-implicit'), row('stunnel-daemon')));
    console.log(versus(row('wrap-implicit'), row('stunnel-inetd')));
    console.log(`load at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    if (g.stopping()) failures++;
  } finally {
    g.done();
    await g.stop();
  }
  return failures > 0 ? 1 : 0;
}

main().then(
  (status) => process.exit(status),
  (e: unknown) => {
    console.error(`bench: ${(e as Error).stack ?? String(e)}`);
    process.exit(1);
  },
);
