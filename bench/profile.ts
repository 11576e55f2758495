// `make profile`: where today's ucspi-tls-server spends its CPU under the bench's session
// load (whole STARTTLS sessions, 16 at once, as make bench's sessions/s), each kind of process
// apart, the acceptor, the spawner and the TLS workers. Twice, a server each time:
//  - V8's profiler: the acceptor under `node --cpu-prof`, the spawner and the workers given it through
//    UCSPI_TLS_WORKER_NODE_ARGS. JS functions by name, but a native call's time goes to the JS
//    function that made it (child_process's spawn holds fork(), _tls_wrap's initRead the
//    handshake);
//  - perf (when installed): `perf record -g` on the acceptor, the spawner and the workers, all under
//    --perf-basic-prof so that JS frames have names, and every native frame its own.
// Prints each one's top self-time entries and each group's share. PROFILE_SECONDS=N: the
// load's length (default 20); PROFILE_KEEP=DIR: the .cpuprofile files, perf.data and the
// perf-PID.map files are copied there (for Chrome's DevTools, speedscope; perf report wants the
// maps back in /tmp).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { guard } from './guard';
import { machine, portBase } from './machine';
import { rate, settle } from './measure';
import { isGc, nativePart, parsePerfSample, perfEntries, selfTimes, shares, type CpuProfile, type Entry, type Kind, type PerfSample } from './profile-summary';
import { markdown } from './report';
import { APP, listening, makeSetup, ROOT, stopAll, type Server, type Setup } from './servers';

const SECONDS = Number(process.env.PROFILE_SECONDS ?? 20);
const TOP = 15;
const BUNDLE = join(ROOT, 'build', 'ucspi-tls-server.js');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const KINDS: Kind[] = ['ours', "Node's JS", 'V8/GC', 'OpenSSL/native', 'JS, unnamed'];

/** Starts the server as bin/ucspi-tls-server does, with more node options for the launcher and the workers. */
async function startServer(setup: Setup, rows: Server[], launcherArgs: string[], workerArgs: string, spawnerArgs = workerArgs): Promise<{ row: Server; child: ChildProcess }> {
  const port = portBase();
  const cpuFile = join(setup.dir, `cpu-${rows.length}.log`);
  const row: Server = { name: 'ucspi-tls-server (STARTTLS)', kind: 'starttls', perConnection: false, port, started: [], cpuFile, log: '' };
  rows.push(row);
  const [name, value] = setup.marker.split('=') as [string, string];
  const env = { PATH: process.env.PATH, CERTFILE: setup.cert, KEYFILE: setup.key, [name]: value, UCSPI_TLS_WORKER_NODE_ARGS: workerArgs, UCSPI_TLS_SPAWNER_NODE_ARGS: spawnerArgs };
  const argv = ['--use-openssl-ca', ...launcherArgs, BUNDLE, '-c', '1000', '127.0.0.1', String(port), APP, 'starttls', cpuFile];
  // In the run's directory: node --perf-basic-prof also writes V8's log in its working directory.
  const child = spawn(process.execPath, argv, { env, cwd: setup.dir, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  child.stderr!.on('data', (d: Buffer) => (row.log = (row.log + d.toString()).slice(-4000)));
  row.started.push(child);
  await listening([row]);
  // Warm up, as make bench does.
  await rate(row, 16, 2);
  return { row, child };
}

async function load(row: Server): Promise<string> {
  const r = await rate(row, 16, SECONDS);
  await settle(row);
  return `whole STARTTLS sessions, 16 at once, for ${SECONDS} s: ${r.perSecond.toFixed(1)} sessions/s, ${r.cpuMs.toFixed(2)} ms of server CPU per session`;
}

/** SIGTERM: the server drains, the workers end, each writing its profile as it exits. */
async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  process.kill(child.pid!, 'SIGTERM');
  await Promise.race([exited, sleep(15000)]);
}

function table(title: string, entries: Entry[], detail: string): string {
  const total = entries.reduce((s, e) => s + e.selfUs, 0);
  const pct = (us: number): string => ((100 * us) / total).toFixed(1);
  const share = shares(entries);
  return [
    `${title}: ${KINDS.filter((k) => k !== 'JS, unnamed' || share[k] > 0).map((k) => `${k} ${share[k].toFixed(1)} %`).join(', ')}${detail}`,
    '',
    markdown(['function', 'file', 'kind', '% self'], entries.slice(0, TOP).map((e) => [e.name, e.file || '–', e.kind, pct(e.selfUs)])),
  ].join('\n');
}

/** The profiles in `dir`, of the processes `pids` if given (V8 names each file CPU.date.time.PID.thread.n). */
function readProfiles(dir: string, pids?: number[]): CpuProfile[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile') && (pids === undefined || pids.includes(Number(f.split('.')[3]))))
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as CpuProfile);
}

/** The server's other processes: the acceptor's child, the spawner, and the spawner's node children, the workers. */
function serverKinds(acceptor: number): { spawner: number[]; workers: number[] } {
  const children = (pid: number, entry: string): number[] =>
    readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .filter((d) => {
        try {
          const stat = readFileSync(`/proc/${d}/stat`, 'latin1');
          return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid && readFileSync(`/proc/${d}/cmdline`, 'latin1').includes(entry);
        } catch {
          return false;
        }
      })
      .map(Number);
  const spawner = children(acceptor, 'ucspi-tls-server-spawner');
  return { spawner, workers: spawner.flatMap((p) => children(p, 'ucspi-tls-server-worker')) };
}

async function cpuProf(setup: Setup, rows: Server[]): Promise<void> {
  const launcherDir = join(setup.dir, 'launcher');
  const workersDir = join(setup.dir, 'workers');
  mkdirSync(launcherDir);
  mkdirSync(workersDir);
  // The acceptor (once listening) and the workers run as another user (nobody, when this
  // runs as root): they write there.
  chmodSync(setup.dir, 0o711);
  chmodSync(launcherDir, 0o1777);
  chmodSync(workersDir, 0o1777);
  const { row, child } = await startServer(setup, rows, ['--cpu-prof', `--cpu-prof-dir=${launcherDir}`], `--cpu-prof --cpu-prof-dir=${workersDir}`);
  const kinds = serverKinds(child.pid!);
  const what = await load(row);
  await stop(child);
  for (let t = 0; t < 50 && readProfiles(workersDir).length < kinds.spawner.length + kinds.workers.length; t++) await sleep(100);
  const launcher = readProfiles(launcherDir);
  const spawner = readProfiles(workersDir, kinds.spawner);
  const workers = readProfiles(workersDir, kinds.workers);
  if (launcher.length === 0 || spawner.length === 0 || workers.length === 0) throw new Error(`no profile written (acceptor: ${launcher.length}, spawner: ${spawner.length}, workers: ${workers.length})\n${row.log}`);
  if (process.env.PROFILE_KEEP) {
    cpSync(launcherDir, join(process.env.PROFILE_KEEP, 'launcher'), { recursive: true });
    cpSync(workersDir, join(process.env.PROFILE_KEEP, 'workers'), { recursive: true });
  }
  const sampled = (ps: CpuProfile[]): string => `; ${(selfTimes(ps).reduce((s, e) => s + e.selfUs, 0) / 1e6).toFixed(2)} s sampled`;
  console.log(`\nV8's profiler (--cpu-prof), ${what}:\n`);
  console.log(table('acceptor', selfTimes(launcher), sampled(launcher)));
  console.log('');
  console.log(table('spawner', selfTimes(spawner), sampled(spawner)));
  console.log('');
  console.log(table(`TLS workers (${workers.length})`, selfTimes(workers), sampled(workers)));
}

/** Every sample perf took, the frame it was taken in. */
function perfSamples(data: string): PerfSample[] {
  const r = spawnSync('perf', ['script', '-i', data, '-F', 'comm,pid,ip,sym,dso', '-G'], { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`perf script: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .map(parsePerfSample)
    .filter((x) => x !== undefined);
}

function nativeDetail(entries: Entry[]): string {
  const total = entries.reduce((s, e) => s + e.selfUs, 0);
  const sum = (f: (e: Entry) => boolean): string => ((100 * entries.filter(f).reduce((s, e) => s + e.selfUs, 0)) / total).toFixed(1);
  const native = (p: string) => (e: Entry): boolean => e.kind === 'OpenSSL/native' && nativePart(e.file, e.name) === p;
  return ` (GC ${sum((e) => isGc(e.name))} %; native: OpenSSL ${sum(native('OpenSSL'))} %, kernel ${sum(native('kernel'))} %, other ${sum(native('other'))} %)`;
}

async function perf(setup: Setup, rows: Server[]): Promise<void> {
  // Not the acceptor: at start it closes every fd it did not expect (so that none leaks into
  // an app), V8's map file too, whose fd its IPC channel then takes. Its JS frames go unnamed.
  const { row, child } = await startServer(setup, rows, ['--interpreted-frames-native-stack'], '--perf-basic-prof --interpreted-frames-native-stack');
  const launcher = child.pid!;
  const { spawner: spawners, workers } = serverKinds(launcher);
  const spawner = spawners[0]!;
  const data = join(setup.dir, 'perf.data');
  const rec = spawn('perf', ['record', '-g', '-F', '997', '-o', data, '-p', [launcher, spawner, ...workers].join(',')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let recLog = '';
  rec.stderr!.on('data', (d: Buffer) => (recLog += d.toString()));
  await sleep(500);
  const what = await load(row);
  const recorded = new Promise<void>((res) => rec.once('exit', () => res()));
  rec.kill('SIGINT');
  await recorded;
  if (rec.exitCode !== 0 && rec.signalCode === null) throw new Error(`perf record: ${recLog}`);
  // perf script reads the JS names from /tmp/perf-PID.map, which each process leaves behind.
  const samples = perfSamples(data);
  const launcherEntries = perfEntries(samples.filter((x) => x.pid === launcher));
  const spawnerEntries = perfEntries(samples.filter((x) => x.pid === spawner));
  const workerEntries = perfEntries(samples.filter((x) => workers.includes(x.pid)));
  await stop(child);
  if (process.env.PROFILE_KEEP) {
    cpSync(data, join(process.env.PROFILE_KEEP, 'perf.data'));
    for (const pid of [spawner, ...workers]) cpSync(`/tmp/perf-${pid}.map`, join(process.env.PROFILE_KEEP, `perf-${pid}.map`));
  }
  for (const pid of [spawner, ...workers]) rmSync(`/tmp/perf-${pid}.map`, { force: true });
  const all = (es: Entry[]): string => `${((100 * es.reduce((s, e) => s + e.selfUs, 0)) / samples.length).toFixed(1)} %`;
  // The rest: the apps (what a fork leaves the child to do before exec is bench/spawn.ts's to measure).
  console.log(`\nperf record -g, ${what}; ${samples.length} samples: acceptor ${all(launcherEntries)}, spawner ${all(spawnerEntries)}, workers ${all(workerEntries)}, the rest the apps:\n`);
  console.log(table('acceptor', launcherEntries, nativeDetail(launcherEntries)));
  console.log('');
  console.log(table('spawner', spawnerEntries, nativeDetail(spawnerEntries)));
  console.log('');
  console.log(table(`TLS workers (${workers.length})`, workerEntries, nativeDetail(workerEntries)));
}

async function main(): Promise<number> {
  if (!Number.isFinite(SECONDS) || SECONDS <= 0) throw new Error(`PROFILE_SECONDS=${process.env.PROFILE_SECONDS}: not a number of seconds`);
  const dir = mkdtempSync(join(tmpdir(), 'utw-profile-'));
  const setup = makeSetup(dir, 1000);
  const rows: Server[] = [];
  const g = guard('profile', () => rows, setup.marker, dir, 2 * SECONDS + 300);
  try {
    console.log(machine([]));
    await cpuProf(setup, rows);
    const hasPerf = spawnSync('perf', ['--version']).status === 0;
    if (hasPerf) await perf(setup, rows);
    console.log('');
    console.log(
      [
        "% self: of the process kind's sampled CPU, idle left out. ours: our bundles; Node's JS: node:internal; V8/GC: the",
        "collector, and (perf) V8's builtins, interpreter and C++; OpenSSL/native: (--cpu-prof) frames with no script, a",
        'C++ binding called from JS, and "(program)", native code with no JS below it; (perf) OpenSSL, Node\'s C++, libuv,',
        "libc and the kernel; JS, unnamed: (perf) JS code that V8 did not name in perf's map." + (hasPerf ? '' : ' perf is not installed: no perf figures.'),
        `load at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
      ].join('\n'),
    );
    return 0;
  } finally {
    g.done();
    await stopAll(rows, setup.marker);
    await g.stop();
  }
}

main().then(
  (status) => process.exit(status),
  (e: unknown) => {
    console.error(`profile: ${(e as Error).stack ?? String(e)}`);
    process.exit(1);
  },
);
