// `make profile`: where today's ucspi-tls-server spends its CPU under the bench's session
// load (whole STARTTLS sessions, 16 at once, as make bench's sessions/s), each process kind
// apart: the launcher runs under `node --cpu-prof`, the TLS workers get --cpu-prof through
// UCSPI_TLS_WORKER_NODE_ARGS. Prints the top self-time entries of each kind of process and
// each group's share. PROFILE_SECONDS=N: the load's length (default 20); PROFILE_KEEP=DIR:
// the .cpuprofile files are copied there (for Chrome's DevTools or speedscope).
import { spawn } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { guard } from './guard';
import { machine, portBase } from './machine';
import { rate, settle } from './measure';
import { shares, selfTimes, type CpuProfile, type Entry, type Kind } from './profile-summary';
import { markdown } from './report';
import { APP, listening, makeSetup, ROOT, stopAll, type Server } from './servers';

const SECONDS = Number(process.env.PROFILE_SECONDS ?? 20);
const TOP = 15;
const BUNDLE = join(ROOT, 'build', 'ucspi-tls-server.js');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function read(dir: string): CpuProfile[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as CpuProfile);
}

function summary(title: string, entries: Entry[], files: number): string {
  const total = entries.reduce((s, e) => s + e.selfUs, 0);
  const pct = (us: number): string => ((100 * us) / total).toFixed(1);
  const share = shares(entries);
  const groups = (Object.keys(share) as Kind[]).map((k) => `${k} ${share[k].toFixed(1)} %`).join(', ');
  return [
    `${title}: ${files} profile(s), ${(total / 1e6).toFixed(2)} s of CPU sampled (idle left out); ${groups}`,
    '',
    markdown(
      ['function', 'file', 'kind', '% self'],
      entries.slice(0, TOP).map((e) => [e.name, e.file || '–', e.kind, pct(e.selfUs)]),
    ),
  ].join('\n');
}

async function main(): Promise<number> {
  if (!Number.isFinite(SECONDS) || SECONDS <= 0) throw new Error(`PROFILE_SECONDS=${process.env.PROFILE_SECONDS}: not a number of seconds`);
  const dir = mkdtempSync(join(tmpdir(), 'utw-profile-'));
  const setup = makeSetup(dir, 1000);
  const launcherDir = join(dir, 'launcher');
  const workersDir = join(dir, 'workers');
  mkdirSync(launcherDir);
  mkdirSync(workersDir);
  // The workers run as another user (nobody, when this runs as root): they write there.
  chmodSync(dir, 0o711);
  chmodSync(workersDir, 0o1777);
  const port = portBase();
  const cpuFile = join(dir, 'cpu-server.log');
  const row: Server = { name: 'ucspi-tls-server (STARTTLS)', kind: 'starttls', perConnection: false, port, started: [], cpuFile, log: '' };
  const g = guard('profile', () => [row], setup.marker, dir, SECONDS + 300);
  try {
    const [name, value] = setup.marker.split('=') as [string, string];
    const env = { PATH: process.env.PATH, CERTFILE: setup.cert, KEYFILE: setup.key, [name]: value, UCSPI_TLS_WORKER_NODE_ARGS: `--cpu-prof --cpu-prof-dir=${workersDir}` };
    // As bin/ucspi-tls-server starts it, with the profiler.
    const argv = ['--use-openssl-ca', '--cpu-prof', `--cpu-prof-dir=${launcherDir}`, BUNDLE, '-c', '1000', '127.0.0.1', String(port), APP, 'starttls', cpuFile];
    const child = spawn(process.execPath, argv, { env, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    child.stderr!.on('data', (d: Buffer) => (row.log = (row.log + d.toString()).slice(-4000)));
    row.started.push(child);
    await listening([row]);
    console.log(machine([]));
    // Warm up, as make bench does, then the load.
    await rate(row, 16, 2);
    const r = await rate(row, 16, SECONDS);
    await settle(row);
    console.log('');
    console.log(`load: whole STARTTLS sessions, 16 at once, for ${SECONDS} s: ${r.perSecond.toFixed(1)} sessions/s, ${r.cpuMs.toFixed(2)} ms of server CPU per session (profiled)`);
    // SIGTERM: the server drains, the workers end, and each writes its profile as it exits.
    const exited = new Promise<void>((res) => child.once('exit', () => res()));
    process.kill(child.pid!, 'SIGTERM');
    await Promise.race([exited, sleep(15000)]);
    for (let t = 0; t < 50 && read(workersDir).length === 0; t++) await sleep(100);
    const launcher = read(launcherDir);
    const workers = read(workersDir);
    if (launcher.length === 0 || workers.length === 0) throw new Error(`no profile written (launcher: ${launcher.length}, workers: ${workers.length})\n${row.log}`);
    if (process.env.PROFILE_KEEP) {
      cpSync(launcherDir, join(process.env.PROFILE_KEEP, 'launcher'), { recursive: true });
      cpSync(workersDir, join(process.env.PROFILE_KEEP, 'workers'), { recursive: true });
    }
    console.log('');
    console.log(summary('launcher', selfTimes(launcher), launcher.length));
    console.log('');
    console.log(summary('TLS workers', selfTimes(workers), workers.length));
    console.log('');
    console.log(
      [
        "% self: of the process kind's sampled CPU, without idle. ours: our bundles (build/*.js); Node's JS: node:internal;",
        'V8/GC: the garbage collector; OpenSSL/native: frames with no script: a C++ binding called from JS, and "(program)",',
        "native code with no JS on the stack (libuv's callbacks, TLSWrap, OpenSSL under them).",
        `load at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
      ].join('\n'),
    );
    return 0;
  } finally {
    g.done();
    await stopAll([row], setup.marker);
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
