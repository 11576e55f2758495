// `make soak`: a day of a mail host's load on ucspi-tls-server in SOAK_SECONDS (default 180):
// one STARTTLS and one --implicit server in front of bench/app.c, clients of every kind at
// once (bulk both ways, slow readers, quick sessions, idle ones held, clients that vanish,
// hostile bytes, openssl s_client and swaks), the certificate renewed and SIGHUP sent every
// few seconds, a worker killed with SIGKILL every minute. At the end every session is
// accounted for from its client and the server's log, and the servers' fds, processes and
// memory are back near where they started. Exit 0 when every check holds.
import { mkdtempSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { now, sleep } from './client';
import { guard } from './guard';
import { machine, portBase } from './machine';
import { msPerTick, pidsWithEnv, privateKiB, processes, sumPrivateKiB } from './procs';
import { listening, makeSetup, startServers, type Started } from './servers';
import { renew, serialOf } from './soak-cert';
import { bulk, hostile, Idle, opensslClient, quick, slowReader, swaksClient, vanish, type Session, type SessionKind, type Target } from './soak-clients';
import { sameSerial, serialDue, ServerLog, verdict, type Verdict } from './soak-log';
import { fdCount, leftUnder, workersOf } from './soak-procs';
import { emptyTally, lateGrowth, serverTable, sessionTable, type KindTally } from './soak-report';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 180);
/** Renew the certificate and send SIGHUP this often. */
const RELOAD_MS = 5000;
/** A reload may take this long to reach every worker: handshakes begun meanwhile may see either serial. */
const RELOAD_GRACE_MS = 1500;
/** Kill one worker this often; in a run shorter than two of these, once, half-way. */
const KILL_MS = 60000;
const IDLE_PER_SERVER = 10;
const HANDSHAKE_TIMEOUT_S = 10;
const MiB = 1024 * 1024;
/**
 * How far above its start the servers' private memory (2 launchers, 4 workers) may end. V8
 * keeps the heaps it grew for the load: measured on 2 cores, the six processes end 74-78 MiB
 * above their start on Node 20 (46 MiB at the start; runs of 2 and 5 minutes) and 80-84 MiB
 * on Node 24 (78 MiB; 2 and 10 minutes), level after about 3 minutes while sessions go on.
 * The bound is that and a third more.
 */
const MEM_MARGIN_KIB = 112 * 1024;
/** In runs of 5 minutes or more (the heaps grow for about 3), the last third's mean may lie at most this much above the middle third's: the memory levels off. */
const LATE_GROWTH_KIB = 16 * 1024;

const kib = (n: number): string => (n / 1024).toFixed(1);

/** CPU ms of the launchers and their workers now, and of the children the launchers have reaped (the apps, and the workers killed). */
function cpuMs(launchers: readonly number[]): { own: number; children: number } {
  const all = processes();
  const tick = msPerTick();
  let own = 0;
  let children = 0;
  for (const l of launchers) {
    for (const pid of [l, ...workersOf(l)]) own += (all.get(pid)?.ticks ?? 0) * tick;
    children += (all.get(l)?.childTicks ?? 0) * tick;
  }
  return { own, children };
}

interface Row {
  started: Started;
  target: Target;
  log: ServerLog;
  launcher: number;
}

async function main(): Promise<number> {
  if (!Number.isFinite(SECONDS) || SECONDS < 10) throw new Error(`SOAK_SECONDS=${process.env.SOAK_SECONDS}: at least 10`);
  const dir = mkdtempSync(join(tmpdir(), 'utw-soak-'));
  const setup = makeSetup(dir, 400);
  setup.server = { flags: ['-w', '2', '-t', String(HANDSHAKE_TIMEOUT_S)], env: { BENCH_APP_VARS: '1' } };
  let started: Started[] = [];
  const g = guard('soak', () => started, setup.marker, dir, SECONDS + 240);
  const failures: string[] = [];
  const fail = (what: string): void => void failures.push(what);
  try {
    started = startServers(setup, portBase(), ['server', 'server-implicit']);
    const rows: Row[] = started.map((s) => {
      const log = new ServerLog();
      s.started[0]!.stderr!.on('data', (d: Buffer) => log.feed(d.toString('latin1')));
      return { started: s, log, launcher: s.started[0]!.pid!, target: { mode: s.kind === 'implicit' ? 'implicit' : 'starttls', port: s.port, mark: () => log.starts.length } };
    });
    await listening(started);
    console.log(`${machine(started)}`);
    console.log(`soak: ${SECONDS} s; renewal + SIGHUP every ${RELOAD_MS / 1000} s, a worker killed every ${KILL_MS / 1000} s`);

    // The start figures, once every worker runs.
    for (const r of rows) while (workersOf(r.launcher).length < 2) await sleep(50);
    await sleep(1000);
    const serverPids = (): number[] => rows.flatMap((r) => [r.launcher, ...workersOf(r.launcher)]);
    const fdsOf = (): number[] => rows.flatMap((r) => [fdCount(r.launcher), ...workersOf(r.launcher).map(fdCount).sort((a, b) => a - b)]);
    const fdsStart = fdsOf();
    const cpu0 = { client: process.cpuUsage(), servers: cpuMs(rows.map((r) => r.launcher)) };
    const memStart = sumPrivateKiB(serverPids());
    let memPeak = memStart;
    /** The servers' private KiB every 15 s of the load. */
    const timeline: number[] = [memStart];

    const renewals: Array<{ at: number; serial: string }> = [{ at: -Infinity, serial: await serialOf(setup.cert) }];
    const sessions: Session[] = [];
    const record = (s: Session): void => void sessions.push(s);
    const t0 = now();
    const deadline = t0 + SECONDS * 1000;
    const running = (): boolean => now() < deadline && !g.stopping();
    let turn = 0;
    const next = (): Row => rows[turn++ % rows.length]!;

    // Renewals and SIGHUP; a worker killed on schedule; memory sampled.
    const reload = async (): Promise<void> => {
      const serial = await renew(setup.cert, setup.key);
      renewals.push({ at: now(), serial });
      for (const r of rows) process.kill(r.launcher, 'SIGHUP');
    };
    let killed = 0;
    const kills = SECONDS * 1000 < 2 * KILL_MS ? [SECONDS * 500] : Array.from({ length: Math.floor((SECONDS * 1000 - 1) / KILL_MS) }, (_, i) => (i + 1) * KILL_MS);
    const timers = [
      setInterval(() => void reload().catch((e: unknown) => fail(`renewal: ${(e as Error).message}`)), RELOAD_MS),
      setInterval(() => {
        const kib = sumPrivateKiB(serverPids());
        memPeak = Math.max(memPeak, kib);
        if (now() - t0 >= timeline.length * 15000) timeline.push(kib);
      }, 1000),
      ...kills.map((at, i) =>
        setTimeout(() => {
          const r = rows[i % rows.length]!;
          const ws = workersOf(r.launcher);
          const victim = ws[Math.floor(Math.random() * ws.length)];
          if (victim === undefined) return fail(`${r.started.name}: no worker to kill`);
          process.kill(victim, 'SIGKILL');
          killed++;
        }, at),
      ),
    ];

    // The clients: lanes that run one kind of session after another until the deadline.
    const lane = async (pause: number, one: (t: Target) => Promise<Session>): Promise<void> => {
      while (running()) {
        record(await one(next().target));
        await sleep(pause);
      }
    };
    const idles: Idle[] = [];
    const idleKeeper = async (): Promise<void> => {
      const open = async (r: Row): Promise<void> => {
        const i = new Idle(r.target);
        idles.push(i);
        record(i.s);
        await i.open();
      };
      await Promise.all(rows.flatMap((r) => Array.from({ length: IDLE_PER_SERVER }, () => open(r))));
      while (running()) {
        await sleep(5000);
        // Each held connection answers; one that ended (its worker killed) is replaced.
        for (const r of rows) {
          const mine = idles.filter((i) => i.s.mode === r.target.mode && i.s.error === undefined);
          await Promise.all(mine.map((i) => i.ping()));
          const alive = idles.filter((i) => i.s.mode === r.target.mode && i.s.error === undefined).length;
          for (let k = alive; k < IDLE_PER_SERVER && running(); k++) await open(r);
        }
      }
    };
    let external = 0;
    await Promise.all([
      // Paced for a few hundred sessions a minute on 2 cores, the client's share of the CPU below the servers'.
      lane(250, quick),
      lane(250, quick),
      lane(750, (t) => bulk(t, 2 * MiB)),
      lane(250, (t) => slowReader(t, MiB, 512 * 1024)),
      lane(250, (t) => slowReader(t, MiB / 2, 256 * 1024)),
      lane(750, vanish),
      lane(500, (t) => hostile(t, HANDSHAKE_TIMEOUT_S)),
      lane(1000, (t) => (external++ % 2 === 0 ? opensslClient(t) : swaksClient(t))),
      idleKeeper(),
    ]);
    for (const t of timers) clearTimeout(t);
    const seconds = (now() - t0) / 1000;
    const clientCpu = process.cpuUsage(cpu0.client);
    const serversCpu = cpuMs(rows.map((r) => r.launcher));

    // After the last reload: a few sessions on each server, the ones the reload assertion is about.
    await reload();
    const last = renewals[renewals.length - 1]!;
    await sleep(RELOAD_GRACE_MS);
    for (const r of rows) for (let k = 0; k < 3; k++) record(await quick(r.target));
    await Promise.all(idles.map((i) => i.close()));

    // Every connection the servers started has ended.
    const startsSettled = now();
    for (const r of rows) while (r.log.ends.length < r.log.starts.length && now() - startsSettled < 30000) await sleep(100);
    for (const r of rows) if (r.log.ends.length !== r.log.starts.length) fail(`${r.started.name}: ${r.log.starts.length} connections started, ${r.log.ends.length} ended`);

    // The verdict on each session, from its client and its end line.
    const tallies = new Map<SessionKind, KindTally>();
    const unexplained: string[] = [];
    const serials = new Set<string>();
    let newestChecked = 0;
    let newestSeen = 0;
    const staleAfterLast: Session[] = [];
    for (const s of sessions) {
      const r = rows.find((x) => x.target.mode === s.mode)!;
      const start = s.pid !== undefined ? r.log.startFrom({ pid: s.pid }, s.mark) : s.port !== undefined ? r.log.startFrom({ port: s.port }, s.mark) : undefined;
      const pid = start?.pid ?? s.pid;
      const end = start !== undefined ? r.log.endOf(start) : undefined;
      const v = verdict({ expect: s.expect, clientOk: s.ok, end });
      const t = tallies.get(s.kind) ?? emptyTally(s.kind);
      tallies.set(s.kind, t);
      t.sessions++;
      t[s.mode === 'implicit' ? 'implicit' : 'starttls']++;
      t.byVerdict[v.verdict]++;
      t.toClient += end?.toClient ?? 0;
      t.toApp += end?.toApp ?? 0;
      if (v.verdict === 'unexplained') unexplained.push(`${s.kind} (${s.mode}${s.variant ? `, ${s.variant}` : ''}, port ${s.port ?? '?'}, pid ${pid ?? '?'}): ${v.why}${s.error ? `; client: ${s.error}` : ''}`);
      if (s.serial === undefined || !s.ok) continue;
      const seen = renewals.find((x) => sameSerial(x.serial, s.serial!));
      if (seen === undefined) fail(`${s.kind} (${s.mode}): serial ${s.serial}, not one of the certificates issued`);
      else serials.add(seen.serial);
      const due = s.handshakeAt !== undefined ? serialDue(renewals, s.handshakeAt, RELOAD_GRACE_MS) : undefined;
      if (due === undefined) continue;
      newestChecked++;
      if (sameSerial(due, s.serial)) newestSeen++;
      else if (s.handshakeAt! >= last.at + RELOAD_GRACE_MS) staleAfterLast.push(s);
    }
    if (unexplained.length > 0) fail(`${unexplained.length} session(s) ended unexplained:\n  ${unexplained.slice(0, 15).join('\n  ')}`);
    const probes = sessions.filter((s) => s.ok && s.handshakeAt !== undefined && s.handshakeAt >= last.at + RELOAD_GRACE_MS).length;
    const reloadNote = `sessions after the last reload: ${probes}, ${probes - staleAfterLast.length} saw its serial ${last.serial}`;
    // Each renewal reaches new sessions: after the last, every one sees its serial.
    if (probes === 0) fail('no session after the last reload');
    if (staleAfterLast.length > 0) fail(`${reloadNote}; the others saw ${staleAfterLast.map((s) => s.serial).join(' ')}`);
    if (newestSeen !== newestChecked) fail(`${newestChecked - newestSeen} of ${newestChecked} sessions saw an older serial than the one current at their handshake`);

    // Workers: every kill logged and the worker replaced.
    const died = rows.flatMap((r) => r.log.died);
    const restarted = rows.flatMap((r) => r.log.restarted);
    if (died.length !== killed || died.some((d) => d.how !== 'died on SIGKILL')) fail(`workers killed: ${killed}; the logs say: ${died.map((d) => `worker ${d.index} (pid ${d.pid}) ${d.how}`).join(', ') || 'none died'}`);
    if (restarted.length !== killed) fail(`workers killed: ${killed}, started in their place: ${restarted.length}`);
    // Only the killed workers' sessions ended so: as many as their crash lines counted.
    for (const r of rows) {
      const lostEnds = r.log.ends.filter((e) => e.mode === 'worker lost').length;
      const lost = r.log.died.reduce((n, d) => n + d.lost, 0);
      if (lostEnds !== lost) fail(`${r.started.name}: ${lost} connection(s) lost by the workers killed, ${lostEnds} end line(s) say "worker lost"`);
    }

    // No app, shell or zombie left; fds back to their start figure; memory near its start.
    let left = rows.flatMap((r) => leftUnder(r.launcher));
    for (const t1 = now(); left.length > 0 && now() - t1 < 10000; left = rows.flatMap((r) => leftUnder(r.launcher))) await sleep(100);
    if (left.length > 0) fail(`left under the launchers: ${left.map((p) => `${p.comm} ${p.pid}${p.zombie ? ' (zombie)' : ''}`).join(', ')}`);
    let fdsEnd = fdsOf();
    for (const t1 = now(); fdsEnd.some((n, i) => !(n <= fdsStart[i]!)) && now() - t1 < 10000; fdsEnd = fdsOf()) await sleep(100);
    if (fdsEnd.some((n, i) => !(n <= fdsStart[i]!))) fail(`fds (launcher, its workers; each server): ${fdsStart.join(' ')} at the start, ${fdsEnd.join(' ')} at the end`);
    // Memory: the lowest of a few samples over 5 s (a worker may be collecting garbage just then).
    let memEnd = Infinity;
    for (let i = 0; i < 10; i++, await sleep(500)) memEnd = Math.min(memEnd, sumPrivateKiB(serverPids()));
    const memBound = memStart + MEM_MARGIN_KIB;
    const memEach = rows.map((r) => `${r.started.name}: launcher ${kib(privateKiB(r.launcher))}, workers ${workersOf(r.launcher).map((p) => kib(privateKiB(p))).join(' ')}`);
    const late = lateGrowth(timeline);
    if (SECONDS >= 300 && late > LATE_GROWTH_KIB) fail(`the servers' private memory still grows: the last third of the run ${kib(late)} MiB above the middle third on average`);
    if (memEnd > memBound) fail(`the servers' private memory: ${(memStart / 1024).toFixed(1)} MiB at the start, ${(memEnd / 1024).toFixed(1)} MiB at the end, above the bound of ${(memBound / 1024).toFixed(1)} MiB`);
    if (sessions.length / (seconds / 60) < 100) fail(`only ${(sessions.length / (seconds / 60)).toFixed(0)} sessions a minute: the load did not run`);

    // The servers stop on SIGTERM, and nothing of the run is left.
    await g.stop();
    const leftover = pidsWithEnv(setup.marker);
    if (leftover.length > 0) fail(`processes of the run left after the servers stopped: ${leftover.join(' ')}`);

    const order: SessionKind[] = ['quick', 'bulk', 'slow reader', 'idle', 'vanish', 'hostile', 'openssl s_client', 'swaks'];
    console.log('');
    console.log(sessionTable(order.map((k) => tallies.get(k) ?? emptyTally(k))));
    console.log('');
    console.log(
      serverTable({
        seconds,
        sessions: sessions.length,
        reloads: renewals.length - 1,
        serialsSeen: serials.size,
        serialsIssued: renewals.length,
        newestSeen,
        newestChecked,
        workersKilled: killed,
        memStart,
        memPeak,
        memEnd,
        memBound,
        fdsStart: fdsStart.join(' '),
        fdsEnd: fdsEnd.join(' '),
        left: left.length + leftover.length,
      }),
    );
    console.log('');
    const other = rows.map((r) => `${r.started.name}: ${[...r.log.other].map(([k, n]) => `${n} × ${k}`).join('; ') || 'none'}`);
    console.log(`other log lines: ${other.join(' | ')}`);
    console.log(`private MiB every 15 s: ${timeline.map(kib).join(' ')} (last third ${Number.isFinite(late) ? `${late < 0 ? '' : '+'}${kib(late)} MiB on the middle third` : 'n/a'}); at the end: ${memEach.join(' | ')}`);
    const share = (ms: number): string => `${(ms / 1000).toFixed(0)} s (${((ms / 1000 / seconds / cpus().length) * 100).toFixed(0)} % of the machine)`;
    console.log(`CPU during the load: the servers ${share(serversCpu.own - cpu0.servers.own)}, their apps (and workers killed) ${share(serversCpu.children - cpu0.servers.children)}, this client ${share((clientCpu.user + clientCpu.system) / 1000)}`);
    console.log(`reload: ${reloadNote}`);
    const verdicts: Verdict[] = ['finished', 'fault', 'worker lost'];
    console.log(`every session accounted for: ${verdicts.map((v) => [...tallies.values()].reduce((n, t) => n + t.byVerdict[v], 0)).join(' + ')} of ${sessions.length}, ${unexplained.length} unexplained`);
    for (const f of failures) console.log(`FAIL: ${f}`);
    console.log(failures.length === 0 ? 'soak: every check held' : `soak: ${failures.length} check(s) failed`);
    return failures.length === 0 ? 0 : 1;
  } finally {
    g.done();
    await g.stop();
  }
}

main().then(
  (status) => process.exit(status),
  (e: unknown) => {
    console.error(`soak: ${(e as Error).stack ?? String(e)}`);
    process.exit(1);
  },
);
