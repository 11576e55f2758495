// `make soak-idle`: ucspi-tls-server holding 10 000 idle TLS connections (BENCH_IDLE=N for
// another count), each with its app, and the private memory of its processes together against
// the target of 1 GiB; then a bare Node tls.Server (bench/node-tls-server) and hitch in front
// of tcpserver doing the same, for comparison. The apps' memory is told apart. Not part of
// `make check` or `make bench`. BENCH_IDLE_ROWS=server,server-implicit,hitch chooses the rows
// (default: server,node-tls-server,hitch).
import { mkdtempSync, readFileSync } from 'node:fs';
import { guard } from './guard';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { now, ping, pool, sleep, type Reader } from './client';
import { machine, portBase } from './machine';
import { closeAll, openMany, settle } from './measure';
import { privateKiB, processes, sumPrivateKiB } from './procs';
import { markdown } from './report';
import { appProcs, listening, makeSetup, serverProcs, startServers, stopAll, type RowId, type Setup, type Started } from './servers';

const N = Number(process.env.BENCH_IDLE ?? 10000);
const ROWS = (process.env.BENCH_IDLE_ROWS ?? 'server,node-tls-server,hitch').split(',') as RowId[];
const LIMIT_KIB = 1024 * 1024;
/** Opening the connections of one row gets at most this long. */
const OPEN_MS = 8 * 60 * 1000;
const MiB = (kib: number): string => (kib / 1024).toFixed(1);

/** The soft limit on open files of this process (the servers inherit it). */
function fdLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'latin1'));
  return m === null || m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

interface Held {
  name: string;
  /** why there is no figure */
  missing?: string;
  connections: number;
  openS: number;
  pingS: number;
  procsBefore: number;
  kibBefore: number;
  procs: number;
  kib: number;
  apps: number;
  appsKiB: number;
  clientKiB: number;
}

/** Starts one row alone, holds N idle connections, measures, closes, stops it. */
async function hold(setup: Setup, id: RowId, stopped: (rows: Started[]) => void): Promise<Held> {
  const servers = startServers(setup, portBase(), [id]);
  const s = servers[0]!;
  stopped(servers);
  const conns: Reader[] = [];
  try {
    if (s.missing !== undefined) return { name: s.name, missing: s.missing } as Held;
    await listening(servers);
    const first = serverProcs(s);
    const kibBefore = sumPrivateKiB(first.map((p) => p.pid));
    const t0 = now();
    // In batches, so that the deadline stops the opening with the connections made kept.
    while (conns.length < N && now() - t0 < OPEN_MS) conns.push(...(await openMany(s, Math.min(500, N - conns.length), 32)));
    const openS = (now() - t0) / 1000;
    await sleep(2000);
    const all = processes();
    const procs = serverProcs(s, all);
    const apps = appProcs(s, all);
    const held: Held = {
      name: s.name,
      connections: conns.length,
      openS,
      pingS: NaN,
      procsBefore: first.length,
      kibBefore,
      procs: procs.length,
      kib: sumPrivateKiB(procs.map((p) => p.pid)),
      apps: apps.length,
      appsKiB: sumPrivateKiB(apps.map((p) => p.pid)),
      clientKiB: privateKiB(process.pid),
    };
    // Every connection still answers.
    const t1 = now();
    await pool(conns.length, 64, async (i) => ping(conns[i]!));
    held.pingS = (now() - t1) / 1000;
    return held;
  } finally {
    await closeAll(conns);
    if (s.missing === undefined) await settle(s, 60000);
    await stopAll(servers, setup.marker);
  }
}

async function main(): Promise<number> {
  if (!Number.isInteger(N) || N < 1) throw new Error(`BENCH_IDLE=${process.env.BENCH_IDLE}: not a count`);
  // The limit is per process: this client holds one fd per connection; each server process
  // inherits the same limit and needs what its design needs (each app only its own few).
  if (fdLimit() < N + 500) {
    process.stderr.write(`soak-idle: ${N} connections need ${N + 500} open files in the client; the limit is ${fdLimit()} (raise it with ulimit -n, as make soak-idle tries to)\n`);
    return 1;
  }
  const dir = mkdtempSync(join(tmpdir(), 'utw-soak-idle-'));
  const setup = makeSetup(dir, N + 100);
  let current: Started[] = [];
  const g = guard('soak-idle', () => current, setup.marker, dir, 30 * 60);
  try {
    console.log(`${machine(ROWS.map((id) => ({ name: id })))}; open files ${fdLimit()} per process`);
    const results: Held[] = [];
    for (const id of ROWS) results.push(await hold(setup, id, (rows) => (current = rows)));
    console.log('');
    console.log(
      markdown(
        ['', 'connections', 'opened in s', 'processes', 'private MiB before', 'private MiB held', 'KiB per connection', 'apps', 'apps private MiB', "bench client's MiB"],
        results.map((h) =>
          h.missing !== undefined
            ? [h.name, h.missing, '–', '–', '–', '–', '–', '–', '–', '–']
            : [h.name, String(h.connections), h.openS.toFixed(1), `${h.procsBefore} → ${h.procs}`, MiB(h.kibBefore), MiB(h.kib), ((h.kib - h.kibBefore) / h.connections).toFixed(1), String(h.apps), MiB(h.appsKiB), MiB(h.clientKiB)],
        ),
      ),
    );
    console.log('');
    console.log("Each connection: TLS up (STARTTLS rows: after STARTTLS) and one PING answered; after 2 s, Private_Clean + Private_Dirty");
    console.log("of the server's processes (hitch: its processes and tcpserver), the apps (bench/app.c) apart; then every connection");
    console.log('answered a PING again before all were closed.');
    let status = 0;
    for (const h of results) {
      if (!h.name.startsWith('ucspi-tls-server')) continue;
      const met = h.missing === undefined && h.connections === N && h.kib <= LIMIT_KIB;
      if (!met) status = 1;
      const figure = h.missing ?? `${h.connections} connections, ${MiB(h.kib)} MiB`;
      console.log(`target: ${N} idle TLS connections, ${h.name}'s processes ≤ 1 GiB private together: ${figure}: ${met ? 'met' : 'NOT met'}`);
    }
    return status;
  } finally {
    g.done();
    await g.stop();
  }
}

main().then(
  (status) => process.exit(status),
  (e: unknown) => {
    console.error(`soak-idle: ${(e as Error).stack ?? String(e)}`);
    process.exit(1);
  },
);
