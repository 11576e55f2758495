// One figure of one row, measured as a client meets it: each function drives real connections
// to a running server and reads its processes in /proc.
import { readFileSync, writeFileSync } from 'node:fs';
import { now, open, ping, pool, quit, Reader, secure, sleep, tcp, within, WAIT_MS } from './client';
import { makePattern, PatternCheck, patternSlice } from './pattern';
import { msPerTick, privateKiB, processes, sumPrivateKiB } from './procs';
import { median } from './report';
import { appProcs, serverProcs, type Server } from './servers';

const MiB = 1024 * 1024;
const pattern = makePattern();

export async function bannerMs(s: Server): Promise<number> {
  const t0 = now();
  const stream = s.kind === 'implicit' ? await secure({ port: s.port, host: '127.0.0.1' }) : tcp(s.port);
  const r = new Reader(stream);
  await r.expect('220 ').catch((e: unknown) => {
    stream.destroy();
    throw e;
  });
  const t = now() - t0;
  await quit(r);
  return t;
}

export async function sessionMs(s: Server): Promise<number> {
  const t0 = now();
  await quit(await open(s.kind, s.port));
  return now() - t0;
}

/** MiB/s of `bytes` from the app to the client, every byte checked. */
export async function toClientMiBs(s: Server, bytes: number): Promise<number> {
  const r = await open(s.kind, s.port);
  try {
    const check = new PatternCheck(pattern);
    const done = new Promise<void>((res) =>
      r.drainTo((c) => {
        check.update(c);
        if (check.bytes >= bytes) res();
      }),
    );
    const t0 = now();
    r.stream.write(`SEND ${bytes}\r\n`);
    await within(bytes / MiB * 1000 + WAIT_MS, 'app→client', done);
    const t = now() - t0;
    if (!check.good || check.bytes !== bytes) throw new Error('app→client bytes differ');
    r.sink = undefined;
    await quit(r);
    return bytes / MiB / (t / 1000);
  } finally {
    r.stream.destroy();
  }
}

/** MiB/s of `bytes` from the client to the app, which checks every byte. */
export async function toAppMiBs(s: Server, bytes: number): Promise<number> {
  const r = await open(s.kind, s.port);
  try {
    const w = r.stream;
    const t0 = now();
    const deadline = t0 + bytes / MiB * 1000 + WAIT_MS;
    w.write(`RECV ${bytes}\r\n`);
    for (let sent = 0; sent < bytes; ) {
      const b = patternSlice(pattern, sent, Math.min(256 * 1024, bytes - sent));
      sent += b.length;
      if (!w.write(b)) await within(Math.max(1, deadline - now()), 'client→app', new Promise((res) => w.once('drain', res)));
    }
    const verdict = await r.line(Math.max(1, deadline - now()));
    const t = now() - t0;
    if (verdict !== '250 ok') throw new Error(`client→app bytes differ: ${verdict}`);
    await quit(r);
    return bytes / MiB / (t / 1000);
  } finally {
    r.stream.destroy();
  }
}

/**
 * Waits until the row has no app left (and, for per-connection rows, no process beyond what
 * was started), at most `ms`. False if it did not get there.
 */
export async function settle(s: Server, ms = 15000): Promise<boolean> {
  for (const t0 = now(); now() - t0 < ms; await sleep(50)) {
    const all = processes();
    if (appProcs(s, all).length > 0) continue;
    if (s.perConnection && serverProcs(s, all).length > s.started.length) continue;
    return true;
  }
  process.stderr.write(`bench: ${s.name}: still busy after ${ms} ms\n`);
  return false;
}

/** Opens n connections (width at a time), each answering a PING; closes them all if one fails. */
export async function openMany(s: Server, n: number, width: number): Promise<Reader[]> {
  const conns: Reader[] = [];
  try {
    await pool(n, width, async () => {
      const r = await open(s.kind, s.port);
      conns.push(r);
      await ping(r);
    });
    return conns;
  } catch (e) {
    await closeAll(conns);
    throw e;
  }
}

export async function closeAll(conns: readonly Reader[]): Promise<void> {
  await pool(conns.length, 32, async (i) => {
    const r = conns[i]!;
    await quit(r).catch(() => r.stream.destroy());
  });
}

export interface Growth {
  /** one process per connection: the median of each one's highest; resident: the highest of all together */
  peakKiB: number;
  /** (highest of all together − all together before the apps wrote) / connections */
  growthKiB: number;
  /** what the readers read, MiB/s each, on average */
  paceMiBs: number;
}

export interface Memory {
  /** private KiB per idle connection: the server's processes with n connections open, less before, / n */
  idleKiB: number;
  slow?: Growth;
  stalled?: Growth;
  /** what went wrong with the slow or the stalled readers */
  errors: { what: 'slow reader' | 'stalled reader'; error: Error }[];
}

/**
 * The memory figures of one row on one set of connections: `n` idle ones first; then the apps
 * of `readers` of them write as fast as they can to clients that read `pace` bytes/s for
 * `slowSeconds`; then those of `readers` others to clients that read nothing for `stallSeconds`.
 */
export async function memory(s: Server, o: { n: number; readers: number; pace: number; slowSeconds: number; stallSeconds: number }): Promise<Memory> {
  await settle(s);
  const before = sumPrivateKiB(serverProcs(s).map((p) => p.pid));
  const conns = await openMany(s, o.n, 8);
  try {
    await sleep(1000);
    const after = sumPrivateKiB(serverProcs(s).map((p) => p.pid));
    const out: Memory = { idleKiB: (after - before) / o.n, errors: [] };
    const slow = conns.slice(0, o.readers);
    const stalled = conns.slice(o.readers, 2 * o.readers);
    try {
      out.slow = await readerGrowth(s, slow, o.pace, o.slowSeconds);
    } catch (e) {
      out.errors.push({ what: 'slow reader', error: e as Error });
    }
    try {
      out.stalled = await readerGrowth(s, stalled, 0, o.stallSeconds);
    } catch (e) {
      out.errors.push({ what: 'stalled reader', error: e as Error });
    }
    return out;
  } finally {
    await closeAll(conns.filter((r) => !r.stream.destroyed));
  }
}

/**
 * The apps of `conns` write as fast as they can to clients that read `pace` bytes/s (0: nothing
 * at all) for `seconds`, the server's processes sampled every 100 ms; the connections are
 * closed at the end.
 */
async function readerGrowth(s: Server, conns: readonly Reader[], pace: number, seconds: number): Promise<Growth> {
  let sampler: NodeJS.Timeout | undefined;
  try {
    if (conns.length === 0) throw new Error('no connections');
    // One process per connection: those in front of these apps (each app's parent); resident: all of them.
    const pids = s.perConnection ? conns.map((r) => r.ppid) : serverProcs(s).map((p) => p.pid);
    const base = sumPrivateKiB(pids);
    const peaks = new Map<number, number>();
    let peakTotal = base;
    const sample = (): void => {
      let total = 0;
      for (const pid of pids) {
        const kib = privateKiB(pid);
        total += kib;
        peaks.set(pid, Math.max(peaks.get(pid) ?? 0, kib));
      }
      peakTotal = Math.max(peakTotal, total);
    };
    sample();
    const checks = conns.map(() => new PatternCheck(pattern));
    const t0 = now();
    conns.forEach((r, i) => {
      const stream = r.stream;
      // Reads nothing more: what the TLS layer holds below its high-water mark is all.
      if (pace === 0) stream.pause();
      r.drainTo((c) => {
        checks[i]!.update(c);
        // Ahead of the pace: stop reading until the pace catches up.
        const ahead = checks[i]!.bytes / pace - (now() - t0) / 1000;
        if (pace > 0 && ahead > 0) {
          stream.pause();
          setTimeout(() => stream.resume(), ahead * 1000);
        }
      });
      stream.write('SEND 1000000000000\r\n');
    });
    sampler = setInterval(sample, 100);
    await sleep(seconds * 1000);
    clearInterval(sampler);
    sample();
    const elapsed = (now() - t0) / 1000;
    if (checks.some((c) => !c.good)) throw new Error('app→client bytes differ');
    if (conns.some((r) => r.stream.destroyed)) throw new Error('a connection ended');
    const read = checks.reduce((sum, c) => sum + c.bytes, 0);
    const peakKiB = s.perConnection ? median(pids.map((pid) => peaks.get(pid) ?? 0)) : peakTotal;
    return { peakKiB, growthKiB: (peakTotal - base) / conns.length, paceMiBs: read / conns.length / MiB / elapsed };
  } finally {
    clearInterval(sampler);
    // The apps are mid-write: no QUIT; they see the connection go.
    for (const r of conns) r.stream.destroy();
  }
}

export interface Rate {
  perSecond: number;
  /** server CPU (user + system of its processes, the apps' own CPU taken out) per session, ms */
  cpuMs: number;
}

/** Sessions per second with `width` clients at once for `seconds`, and the server's CPU per session. */
export async function rate(s: Server, width: number, seconds: number): Promise<Rate> {
  await settle(s);
  writeFileSync(s.cpuFile, '');
  const ticks = (): number => serverProcs(s).reduce((sum, p) => sum + p.ticks + p.childTicks, 0);
  const before = ticks();
  let count = 0;
  const t0 = now();
  const deadline = t0 + seconds * 1000;
  await pool(width, width, async () => {
    while (now() < deadline) {
      await quit(await open(s.kind, s.port));
      count++;
    }
  });
  const perSecond = count / ((now() - t0) / 1000);
  const settled = await settle(s);
  const serverMs = (ticks() - before) * msPerTick();
  const apps = readFileSync(s.cpuFile, 'latin1').split('\n').filter((l) => l !== '');
  const appMs = apps.reduce((sum, l) => sum + Number(l), 0) / 1000;
  if (!settled || apps.length !== count) {
    process.stderr.write(`bench: ${s.name}: ${apps.length} apps reported their CPU for ${count} sessions; no CPU figure\n`);
    return { perSecond, cpuMs: NaN };
  }
  return { perSecond, cpuMs: (serverMs - appMs) / count };
}
