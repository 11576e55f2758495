// The servers the bench measures, each run as a user would run it, in front of bench/app.c;
// how to start them, which processes are theirs, and how to stop every one of them.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { descendants, pidsWithEnv, processes, type Proc } from './procs';

export const ROOT = resolve(__dirname, '..', '..');
export const APP = join(ROOT, 'build', 'bench', 'bench-app');
/** The app's command name in /proc (its file name, at most 15 bytes). */
export const APP_COMM = 'bench-app';
const HELPER = join(ROOT, 'bin', 'ucspi-tls-wrap');
const SERVER = join(ROOT, 'bin', 'ucspi-tls-server');
const FLOOR = join(ROOT, 'bench', 'node-floor');
const TLS_FLOOR = join(ROOT, 'bench', 'node-tls-floor');
const TLS_SERVER = join(ROOT, 'bench', 'node-tls-server');

/** What the client does after connecting: STARTTLS then TLS, TLS at once, or STARTTLS and plaintext on. */
export type Kind = 'starttls' | 'implicit' | 'plain';

export interface Server {
  name: string;
  kind: Kind;
  /** One process in front of each connection's app (started by tcpserver), or resident processes for all. */
  perConnection: boolean;
  port: number;
  /** Why the row has no figures (a program not built); the row prints it. */
  missing?: string;
  /** The processes started for it: their trees, less the apps, are the server's processes. */
  started: ChildProcess[];
  /** The app's CPU times, one line per app that ended (see bench/app.c). */
  cpuFile: string;
  log: string;
}

export interface Setup {
  dir: string;
  cert: string;
  key: string;
  /** Key and certificate in one file, as hitch wants them. */
  pem: string;
  /** NAME=VALUE in the environment of every process started, to find them all at the end. */
  marker: string;
  /** tcpserver's and ucspi-tls-server's limit on concurrent connections. */
  limit: number;
  /** More for the ucspi-tls-server rows: options before *host*, and variables (for them and their apps). */
  server?: { flags?: string[]; env?: Record<string, string> };
}

export function makeSetup(dir: string, limit: number): Setup {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '30', '-subj', '/CN=bench.example.test'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl req: ${r.stderr}`);
  const pem = join(dir, 'hitch.pem');
  writeFileSync(pem, readFileSync(key, 'latin1') + readFileSync(cert, 'latin1'), { mode: 0o600 });
  return { dir, cert, key, pem, marker: `UCSPI_TLS_BENCH_RUN=${process.pid}.${Date.now()}`, limit };
}

export type RowId =
  | 'wrap'
  | 'wrap-implicit'
  | 'stunnel-inetd'
  | 'node-floor'
  | 'node-tls-floor'
  | 'server'
  | 'server-implicit'
  | 'node-tls-server'
  | 'hitch'
  | 'stunnel-daemon'
  | 'tcpserver-floor';

interface Spec {
  id: RowId;
  name: string;
  kind: Kind;
  perConnection: boolean;
  missing?: string;
  /** Commands to start, given the row's ports (the first is the client's) and the app's command line. */
  commands: (ports: number[], app: (mode: 'starttls' | 'plain') => string[]) => string[][];
}

const tcpserver = (s: Setup, port: number, cmd: string[]): string[] => ['tcpserver', '-R', '-H', '-l', 'localhost', '-c', String(s.limit), '-b', '100', '127.0.0.1', String(port), ...cmd];

function specs(s: Setup): Spec[] {
  const serverMissing = existsSync(SERVER) ? undefined : 'not built';
  const stunnelConf = (name: string, text: string): string => {
    const file = join(s.dir, name);
    writeFileSync(file, text);
    return file;
  };
  return [
    { id: 'wrap', name: 'ucspi-tls-wrap (STARTTLS)', kind: 'starttls', perConnection: true, commands: ([p], app) => [tcpserver(s, p!, [HELPER, ...app('starttls')])] },
    { id: 'wrap-implicit', name: 'ucspi-tls-wrap --implicit', kind: 'implicit', perConnection: true, commands: ([p], app) => [tcpserver(s, p!, [HELPER, '--implicit', ...app('plain')])] },
    {
      id: 'stunnel-inetd',
      name: 'stunnel (implicit, inetd mode)',
      kind: 'implicit',
      perConnection: true,
      commands: ([p], app) => {
        const [file, ...args] = app('plain');
        // execArgs starts with the app's argv[0].
        const conf = stunnelConf('stunnel-inetd.conf', `pid =\nsyslog = no\ndebug = 0\ncert = ${s.cert}\nkey = ${s.key}\nexec = ${file}\nexecArgs = ${APP_COMM} ${args.join(' ')}\nTIMEOUTclose = 0\n`);
        return [tcpserver(s, p!, ['stunnel4', conf])];
      },
    },
    { id: 'node-floor', name: 'Node floor (spawn only, no TLS)', kind: 'plain', perConnection: true, commands: ([p], app) => [tcpserver(s, p!, [FLOOR, ...app('plain')])] },
    { id: 'node-tls-floor', name: 'Node TLS floor (spawn, bare tls)', kind: 'starttls', perConnection: true, commands: ([p], app) => [tcpserver(s, p!, [TLS_FLOOR, ...app('starttls')])] },
    {
      id: 'server',
      name: 'ucspi-tls-server (STARTTLS)',
      kind: 'starttls',
      perConnection: false,
      missing: serverMissing,
      commands: ([p], app) => [[SERVER, '-c', String(s.limit), ...(s.server?.flags ?? []), '127.0.0.1', String(p), ...app('starttls')]],
    },
    {
      id: 'server-implicit',
      name: 'ucspi-tls-server --implicit',
      kind: 'implicit',
      perConnection: false,
      missing: serverMissing,
      commands: ([p], app) => [[SERVER, '--implicit', '-c', String(s.limit), ...(s.server?.flags ?? []), '127.0.0.1', String(p), ...app('plain')]],
    },
    // The floor of a resident Node server: one tls.Server that spawns each app and pipes.
    { id: 'node-tls-server', name: 'Node tls.Server (spawn, pipe)', kind: 'implicit', perConnection: false, commands: ([p], app) => [[TLS_SERVER, '127.0.0.1', String(p), ...app('plain')]] },
    {
      id: 'hitch',
      name: 'hitch → tcpserver (implicit)',
      kind: 'implicit',
      perConnection: false,
      commands: ([p, backend], app) => [
        tcpserver(s, backend!, app('plain')),
        // hitch refuses to run its workers as root; one worker per core, like ucspi-tls-server.
        ['hitch', `--frontend=[127.0.0.1]:${p}`, `--backend=[127.0.0.1]:${backend}`, `--workers=${cpus().length}`, '--backlog=100', '--user=nobody', '--log-level=1', s.pem],
      ],
    },
    {
      id: 'stunnel-daemon',
      name: 'stunnel (implicit, daemon)',
      kind: 'implicit',
      perConnection: false,
      commands: ([p], app) => {
        const [file, ...args] = app('plain');
        const conf = stunnelConf(
          'stunnel-daemon.conf',
          `pid =\nforeground = yes\nsyslog = no\ndebug = 0\n[bench]\naccept = 127.0.0.1:${p}\ncert = ${s.cert}\nkey = ${s.key}\nexec = ${file}\nexecArgs = ${APP_COMM} ${args.join(' ')}\nTIMEOUTclose = 0\n`,
        );
        return [['stunnel4', conf]];
      },
    },
    { id: 'tcpserver-floor', name: 'tcpserver floor (C app, no TLS)', kind: 'plain', perConnection: false, commands: ([p], app) => [tcpserver(s, p!, app('plain'))] },
  ];
}

export interface Started extends Server {
  id: RowId;
}

/** Starts the rows named (all when `only` is undefined) on ports from `base` on. */
export function startServers(s: Setup, base: number, only?: readonly RowId[]): Started[] {
  const out: Started[] = [];
  specs(s)
    .filter((spec) => only === undefined || only.includes(spec.id))
    .forEach((spec, i) => {
      const ports = [base + 2 * i, base + 2 * i + 1];
      const cpuFile = join(s.dir, `cpu-${spec.id}.log`);
      const row: Started = { id: spec.id, name: spec.name, kind: spec.kind, perConnection: spec.perConnection, port: ports[0]!, missing: spec.missing, started: [], cpuFile, log: '' };
      out.push(row);
      if (spec.missing !== undefined) return;
      const app = (mode: 'starttls' | 'plain'): string[] => [APP, mode, cpuFile];
      const [name, value] = splitMarker(s.marker);
      const env = { PATH: process.env.PATH, CERTFILE: s.cert, KEYFILE: s.key, [name]: value, ...(spec.id.startsWith('server') ? s.server?.env : {}) };
      for (const [file, ...args] of spec.commands(ports, app)) {
        const child = spawn(file!, args, { env, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
        child.stderr!.on('data', (d: Buffer) => (row.log = (row.log + d.toString()).slice(-4000)));
        child.on('error', (e) => (row.log += `${file}: ${e.message}\n`));
        row.started.push(child);
      }
    });
  return out;
}

function splitMarker(marker: string): [string, string] {
  const i = marker.indexOf('=');
  return [marker.slice(0, i), marker.slice(i + 1)];
}

/** The server's own processes now: the trees of what was started, less the apps. */
export function serverProcs(row: Server, all = processes()): Proc[] {
  const roots = row.started.map((c) => c.pid).filter((p): p is number => p !== undefined);
  return descendants(roots, all).filter((p) => p.comm !== APP_COMM);
}

/** The apps running under the row now. */
export function appProcs(row: Server, all = processes()): Proc[] {
  const roots = row.started.map((c) => c.pid).filter((p): p is number => p !== undefined);
  return descendants(roots, all).filter((p) => p.comm === APP_COMM);
}

/** Whether something listens on 127.0.0.1:port (from /proc/net/tcp). */
export function isListening(port: number): boolean {
  const hex = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')} `;
  return readFileSync('/proc/net/tcp', 'latin1')
    .split('\n')
    .some((l) => l.includes(hex) && / 0A /.test(l));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until every row that has a program listens, at most `ms`. */
export async function listening(rows: readonly Server[], ms = 10000): Promise<void> {
  const t0 = Date.now();
  for (const row of rows) {
    if (row.missing !== undefined) continue;
    while (!isListening(row.port)) {
      const gone = row.started.find((c) => c.exitCode !== null || c.signalCode !== null);
      if (gone !== undefined || Date.now() - t0 > ms) throw new Error(`${row.name}: nothing listens on ${row.port}${gone ? ` (${gone.spawnfile} exited)` : ''}\n${row.log}`);
      await sleep(25);
    }
  }
}

/**
 * Stops everything: SIGTERM to each started process group, up to 3 s for them to go, then
 * SIGKILL to every process that still carries the run's marker (apps and helpers that a
 * server left behind included), until none is left or 5 s have passed.
 */
export async function stopAll(rows: readonly Server[], marker: string): Promise<void> {
  const started = rows.flatMap((r) => r.started).filter((c) => c.pid !== undefined);
  for (const c of started) signalGroup(c.pid!, 'SIGTERM');
  for (const t0 = Date.now(); Date.now() - t0 < 3000 && started.some((c) => c.exitCode === null && c.signalCode === null); ) await sleep(50);
  for (const t0 = Date.now(); Date.now() - t0 < 5000; ) {
    const left = pidsWithEnv(marker);
    if (left.length === 0) return;
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    await sleep(100);
  }
  const left = pidsWithEnv(marker);
  if (left.length > 0) process.stderr.write(`bench: could not stop ${left.join(' ')}\n`);
}

/** The last resort, synchronous (for process 'exit'): SIGKILL to every group started and every process with the marker. */
export function killNow(rows: readonly Server[], marker: string): void {
  for (const c of rows.flatMap((r) => r.started)) if (c.pid !== undefined) signalGroup(c.pid, 'SIGKILL');
  for (let round = 0; round < 5; round++) {
    const left = pidsWithEnv(marker);
    if (left.length === 0) return;
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      // gone
    }
  }
}
