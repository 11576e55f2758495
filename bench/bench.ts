// `make bench`: the per-connection helper and the resident server beside their C peers and
// floors, every figure from this one run. Real connections on 127.0.0.1; the app is
// bench/app.c. BENCH_QUICK=1: fewer and shorter rounds (to work on the bench, not for figures);
// BENCH_STEPS=idle,banner,...: only those steps; BENCH_ROWS=server,hitch,...: only those rows.
import { mkdtempSync } from 'node:fs';
import { guard } from './guard';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { now } from './client';
import { machine, portBase } from './machine';
import { bannerMs, idleKiB, rate, readerGrowth, sessionMs, settle, toAppMiBs, toClientMiBs } from './measure';
import { emptyRow, helperGoals, median, serverGoals, table, targetTable, versus, type Row } from './report';
import { listening, makeSetup, startServers, type RowId, type Started } from './servers';

const MiB = 1024 * 1024;
const QUICK = process.env.BENCH_QUICK === '1';
const C = {
  reps: QUICK ? { banner: 5, session: 5, throughput: 1 } : { banner: 25, session: 25, throughput: 5 },
  bulk: (QUICK ? 64 : 256) * MiB,
  idle: QUICK ? 50 : 200,
  slowConnections: QUICK ? 4 : 16,
  pace: 1 * MiB,
  slowSeconds: QUICK ? 3 : 10,
  stallSeconds: QUICK ? 2 : 5,
  concurrent: 16,
  rateSeconds: QUICK ? 2 : 4,
  /** Beyond this the bench stops every server and fails. */
  limitSeconds: Number(process.env.BENCH_LIMIT_SECONDS ?? 900),
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
      `RSA 2048 certificate; TLS as the two ends negotiate it; 127.0.0.1; medians of ${C.reps.banner} (latency), ${C.reps.throughput} (throughput)` +
        (QUICK ? '; QUICK: fewer, shorter rounds, not for comparison' : ''),
    );

    const steps = process.env.BENCH_STEPS?.split(',');
    /** The median of `reps` runs of `measure` per row, interleaved: a noisy moment hits every row alike. */
    const step = async (what: string, reps: number, measure: (s: Started) => Promise<void>): Promise<void> => {
      if (steps !== undefined && !steps.includes(what)) return;
      const t0 = now();
      for (let rep = 0; rep < reps; rep++) {
        for (const s of live) {
          const row = rows.get(s)!;
          if (g.stopping()) return;
          if (row.failed.includes(what)) continue;
          try {
            await measure(s);
          } catch (e) {
            row.failed.push(what);
            failures++;
            process.stderr.write(`bench: ${s.name}: ${what}: ${(e as Error).message}\n${s.log ? `${s.name} log:\n${s.log}\n` : ''}`);
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

    await step('idle', 1, async (s) => void (rows.get(s)!.idleKiB = await idleKiB(s, C.idle)));
    const banner = samples();
    await step('banner', C.reps.banner, async (s) => void banner.get(s)!.push(await bannerMs(s)));
    medianInto(banner, (r, v) => (r.bannerMs = v));
    const session = samples();
    await step('session', C.reps.session, async (s) => void session.get(s)!.push(await sessionMs(s)));
    medianInto(session, (r, v) => (r.sessionMs = v));
    const paces: number[] = [];
    await step('slow reader', 1, async (s) => {
      const g = await readerGrowth(s, C.slowConnections, C.pace, C.slowSeconds);
      Object.assign(rows.get(s)!, { peakKiB: g.peakKiB, slowGrowthKiB: g.growthKiB });
      paces.push(g.paceMiBs);
    });
    await step('stalled reader', 1, async (s) => {
      const g = await readerGrowth(s, C.slowConnections, 0, C.stallSeconds);
      Object.assign(rows.get(s)!, { stalledPeakKiB: g.peakKiB, stalledGrowthKiB: g.growthKiB });
    });
    await step('sessions/s', 1, async (s) => void Object.assign(rows.get(s)!, await rate(s, C.concurrent, C.rateSeconds)));
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
    console.log("banner: connect to the app's first byte (implicit rows: through the TLS handshake). session: connect, banner, STARTTLS,");
    console.log('handshake, one line, close (floors: the same lines without TLS; implicit rows: handshake, banner, one line, close).');
    console.log(`throughput: ${C.bulk / MiB} MiB each way, every byte checked (floors: plaintext). Memory: Private_Clean + Private_Dirty of the`);
    console.log("server's processes, the apps not counted: tcpserver and the process in front of each app (per-connection rows), or");
    console.log(`every process of the resident server (hitch: and tcpserver behind it). idle: with ${C.idle} idle TLS connections (floors: plaintext)`);
    console.log(`less without, per connection. peak, growth: ${C.slowConnections} connections whose apps write as fast as they can, to clients that`);
    console.log(`read ${pace} each (measured: at most ${Number.isFinite(slowest) ? slowest.toFixed(2) : 'n/a'} MiB/s) for ${C.slowSeconds} s, or nothing (stalled) for ${C.stallSeconds} s, sampled every 100 ms;`);
    console.log('peak: the highest private KiB of one process in front of an app (per-connection rows, median over the connections)');
    console.log('or of all the resident processes together; growth: the highest of all together less before the apps wrote, per');
    console.log(`connection. CPU: user + system of those processes (and of the helpers they reaped) less the apps' own, per session,`);
    console.log(`while ${C.concurrent} clients run whole sessions for ${C.rateSeconds} s (sessions/s).`);
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
    console.log(versus(row('server-implicit'), row('stunnel-daemon')));
    console.log(versus(row('wrap-implicit'), row('stunnel-inetd')));
    console.log(`load at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
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
