// The spawner's candidates side by side (make bench prints it after the table): what starting
// one app costs the process that starts it, asked over a pipe one start at a time as an
// acceptor would ask: a Node process with a heap the size of the server's launcher, a small
// Node process, both with child_process.spawn, and a small C program with posix_spawn
// (bench/spawner.c). Each start: the app with /dev/null on 0, 1 and 2, waited for. Rounds
// interleaved, medians. BENCH_QUICK=1: fewer starts.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { now } from './client';
import { machine } from './machine';
import { msPerTick, parsePrivateDirtyKiB, parseStat } from './procs';
import { markdown, median } from './report';
import { APP, ROOT } from './servers';

const QUICK = process.env.BENCH_QUICK === '1';
// Enough that a clock tick (10 ms) is 0.01 ms a start.
const STARTS = QUICK ? 100 : 1000;
const ROUNDS = QUICK ? 1 : 3;
const WARM = 20;
/** The launcher's heap: what the server's launcher holds in live objects, about. */
const LAUNCHER_MIB = 40;
const SPAWNER = join(ROOT, 'build', 'bench', 'spawner');
const NODE_SPAWNER = join(ROOT, 'bench', 'node-spawner');

interface Candidate {
  name: string;
  command: (app: string[]) => string[];
}

const candidates: Candidate[] = [
  { name: `Node, ${LAUNCHER_MIB} MiB heap, child_process.spawn`, command: (app) => [process.execPath, NODE_SPAWNER, String(LAUNCHER_MIB), ...app] },
  { name: 'Node, small, child_process.spawn', command: (app) => [process.execPath, NODE_SPAWNER, '0', ...app] },
  { name: 'C, posix_spawn (bench/spawner.c)', command: (app) => [SPAWNER, ...app] },
];
const apps: { name: string; argv: string[] }[] = [
  { name: 'bench-app', argv: [APP, 'plain'] },
  { name: '/bin/true', argv: ['/bin/true'] },
];

/** A running candidate: one byte asks for one start; one byte back says it ended. */
class Spawner {
  private readonly child: ChildProcess;
  private waiting: ((b: number) => void)[] = [];
  private ready: Promise<void>;

  constructor(argv: string[]) {
    this.child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
    let up!: () => void;
    this.ready = new Promise((res, rej) => {
      up = res;
      this.child.on('error', rej);
      this.child.on('exit', (code, sig) => rej(new Error(`${argv[1] ?? argv[0]} exited (${code ?? sig})`)));
    });
    let first = true;
    this.child.stdout!.on('data', (d: Buffer) => {
      for (const b of d) {
        if (first) {
          first = false;
          up();
        } else this.waiting.shift()?.(b);
      }
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  async start(): Promise<number> {
    await this.ready;
    return new Promise((res) => {
      this.waiting.push(res);
      this.child.stdin!.write('x');
    });
  }

  stop(): void {
    this.child.stdin!.end();
    this.child.kill();
  }
}

interface Sample {
  cpuMs: number;
  childMs: number;
  wallMs: number;
  dirtyKiB: number;
}

/** `STARTS` starts one after the other, after a warm-up; the spawner's CPU, its children's, the wall time, per start. */
async function round(c: Candidate, app: string[]): Promise<Sample> {
  const s = new Spawner(c.command(app));
  try {
    for (let i = 0; i < WARM; i++) if ((await s.start()) !== 0) throw new Error(`${c.name}: ${app[0]} failed`);
    const stat = (): { ticks: number; childTicks: number } => parseStat(readFileSync(`/proc/${s.pid}/stat`, 'latin1'))!;
    const before = stat();
    const t0 = now();
    for (let i = 0; i < STARTS; i++) if ((await s.start()) !== 0) throw new Error(`${c.name}: ${app[0]} failed`);
    const wallMs = (now() - t0) / STARTS;
    const after = stat();
    const dirtyKiB = parsePrivateDirtyKiB(readFileSync(`/proc/${s.pid}/smaps_rollup`, 'latin1'));
    return { cpuMs: ((after.ticks - before.ticks) * msPerTick()) / STARTS, childMs: ((after.childTicks - before.childTicks) * msPerTick()) / STARTS, wallMs, dirtyKiB };
  } finally {
    s.stop();
  }
}

async function main(): Promise<void> {
  console.log(machine([]));
  const samples = new Map<string, Sample[]>();
  const key = (c: Candidate, a: { name: string }): string => `${c.name}\0${a.name}`;
  for (let r = 0; r < ROUNDS; r++) {
    for (const a of apps) {
      for (const c of candidates) {
        const list = samples.get(key(c, a)) ?? [];
        list.push(await round(c, a.argv));
        samples.set(key(c, a), list);
      }
    }
  }
  const m = (xs: Sample[], f: (s: Sample) => number): number => median(xs.map(f));
  const body = apps.flatMap((a) =>
    candidates.map((c) => {
      const xs = samples.get(key(c, a))!;
      return [c.name, a.name, m(xs, (s) => s.cpuMs).toFixed(3), m(xs, (s) => s.childMs).toFixed(3), m(xs, (s) => s.wallMs).toFixed(3), String(Math.round(m(xs, (s) => s.dirtyKiB)))];
    }),
  );
  console.log('');
  console.log(markdown(['spawner', 'app', 'spawner CPU ms/start', 'children CPU ms/start', 'wall ms/start', 'spawner Private_Dirty KiB'], body));
  console.log('');
  console.log(
    [
      `Each start asked for with one byte on a pipe and answered when the app has exited, one at a time; ${STARTS} starts after ${WARM}`,
      `to warm up, medians of ${ROUNDS} rounds. spawner CPU: user + system of the spawner (all its threads, /proc/PID/stat); children`,
      "CPU: of the children it reaped (the app's own, and whatever its fork cost the child before exec: page faults of copy-on-",
      'write); wall: request to answer (through this Node client); Private_Dirty: /proc/PID/smaps_rollup at the end of the round.',
      `load at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
    ].join('\n'),
  );
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`spawn: ${(e as Error).stack ?? String(e)}`);
    process.exit(1);
  },
);
