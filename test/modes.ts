// The two ways a connection gets UCSPI-TLS: ucspi-tls-wrap started for it by tcpserver, and
// the resident ucspi-tls-server. The contract suites run each case in both modes; what a
// mode differs in (who logs what, where the app's status shows) is answered here.
import type { Test } from 'tap';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { readFileSync } from 'node:fs';
import {
  APP, baseEnv, freePort, HELPER, Launcher, makeCert, SERVER, ServerLauncher, sleep, tcpserver, tempDir, ucspiTlsServer, WITHOUT_TEST_HOOKS,
  type Certs,
} from './helpers';
import { helperPid, killLeftovers, processesOf } from './hostile';

export interface Served {
  dir: string;
  port: number;
  certs: Certs;
  launcher: Launcher;
  /** Everything logged: tcpserver's lines with the helper's, or the server's. */
  log(): string;
  /** The nth connection's app: its exit code, or 128+N when signal N ended it. */
  appStatus(nth?: number): Promise<number>;
  /** Stop the launcher as an operator does; assert that nothing of the case is left running. */
  finish(t: Test): Promise<void>;
  /** The processes that run TLS for this app: its helper (its parent), or the server's workers. */
  tlsPids(app: number): number[];
}

export interface ServeOptions {
  app?: string[];
  /** The report folder and certificate, when the case made them itself. */
  dir?: string;
  certs?: Certs;
  /** Words before the launcher's own (a shell that opens fds first). */
  prefix?: string[];
}

export interface Mode {
  name: string;
  program: 'ucspi-tls-wrap' | 'ucspi-tls-server';
  /** The start of a log line about a connection, as a regular expression's source. */
  conn: string;
  /** The start of a fatal line, before anything is served. */
  fatal: string;
  serve(t: Test, env: Record<string, string>, flags: string[], o?: ServeOptions): Promise<Served>;
  /** The program alone, for what it refuses at start (it must exit at once; 10 s at most). */
  runAlone(flags: string[], app: string[], env: NodeJS.ProcessEnv): Promise<SpawnSyncReturns<string>>;
  /** The log line that tells how the app ended (an exit code or a signal's name). */
  appEnded(how: number | NodeJS.Signals): RegExp;
}

function parentOf(pid: number): number {
  return Number(/^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

/** tcpserver's `end PID status S` lines carry a wait status. */
function waitStatus(w: number): number {
  return (w & 0x7f) !== 0 ? 128 + (w & 0x7f) : w >> 8;
}

async function appsGone(t: Test, dir: string, launcher: number): Promise<void> {
  let left = processesOf(dir, launcher);
  for (let i = 0; i < 100 && left.length > 0; i++) {
    await sleep(50);
    left = processesOf(dir, launcher);
  }
  t.same(left, [], 'no app or helper of this case left running');
}

export const HELPER_MODE: Mode = {
  name: 'ucspi-tls-wrap under tcpserver',
  program: 'ucspi-tls-wrap',
  conn: 'ucspi-tls-wrap: pid \\d+: ',
  fatal: 'ucspi-tls-wrap: pid \\d+: fatal: ',
  async serve(t, env, flags, o = {}) {
    const dir = o.dir ?? tempDir(t);
    const certs = o.certs ?? makeCert(dir);
    const port = await freePort();
    const srv = await tcpserver(port, baseEnv(certs, { REPORT: dir, ...env }), [HELPER, ...flags, ...(o.app ?? [APP])], o.prefix);
    t.teardown(() => srv.stop());
    t.teardown(() => killLeftovers(dir, srv.pid));
    return {
      dir, port, certs, launcher: srv,
      log: () => srv.err,
      async appStatus(nth = 0) {
        const pid = await helperPid(srv, nth);
        const re = new RegExp(`^tcpserver: end ${pid} status (\\d+)$`, 'm');
        for (let i = 0; i < 1000; i++) {
          const m = re.exec(srv.err);
          if (m) return waitStatus(Number(m[1]));
          await sleep(20);
        }
        throw new Error(`helper ${pid} still running: ${srv.err}`);
      },
      async finish(t) {
        await appsGone(t, dir, srv.pid);
        await srv.stop();
      },
      tlsPids: (app) => [parentOf(app)],
    };
  },
  async runAlone(flags, app, env) {
    return spawnSync(HELPER, [...flags, ...app], { env, stdio: ['pipe', 'pipe', 'pipe'], encoding: 'utf8', timeout: 10000 });
  },
  appEnded: (how) => new RegExp(`^ucspi-tls-wrap: pid \\d+: app exited ${typeof how === 'number' ? `with ${how}` : `on ${how}`}$`, 'm'),
};

export const SERVER_MODE: Mode = {
  name: 'ucspi-tls-server',
  program: 'ucspi-tls-server',
  conn: 'ucspi-tls-server: pid \\d+: ',
  fatal: 'ucspi-tls-server: pid \\d+: fatal: ',
  async serve(t, env, flags, o = {}) {
    const dir = o.dir ?? tempDir(t);
    const certs = o.certs ?? makeCert(dir);
    const port = await freePort();
    const srv = await ucspiTlsServer(t, port, baseEnv(certs, { REPORT: dir, ...env }), flags, o.app ?? [APP], { prefix: o.prefix });
    t.teardown(() => killLeftovers(dir, srv.pid));
    return {
      dir, port, certs, launcher: srv,
      log: () => srv.err,
      appStatus: async (nth = 0) => (await srv.end({ nth })).status,
      async finish(t) {
        await stopServer(t, srv);
        await appsGone(t, dir, srv.pid);
      },
      tlsPids: () => srv.workers(),
    };
  },
  async runAlone(flags, app, env) {
    const port = await freePort();
    return spawnSync(WITHOUT_TEST_HOOKS[0]!, [...WITHOUT_TEST_HOOKS.slice(1), SERVER, ...flags, '127.0.0.1', String(port), ...app], {
      env, stdio: ['pipe', 'pipe', 'pipe'], encoding: 'utf8', timeout: 10000, killSignal: 'SIGTERM',
    });
  },
  appEnded: (how) => new RegExp(`^ucspi-tls-server: pid \\d+: end: ${typeof how === 'number' ? `exit ${how}` : `signal ${how}`}, `, 'm'),
};

export const MODES: Mode[] = [HELPER_MODE, SERVER_MODE];

/** SIGTERM to the server: it exits 0 and leaves nothing running (no app, worker or zombie). */
export async function stopServer(t: Test, srv: ServerLauncher): Promise<void> {
  const r = await srv.shutdown();
  t.same({ status: r.status, signal: r.signal }, { status: 0, signal: null }, 'the server exits 0 on SIGTERM');
  t.same(r.left, [], 'no worker or app of the server is left running');
  // -q leaves only fatal lines: a server that said it was listening says it is exiting.
  if (/^ucspi-tls-server: listening on /m.test(srv.err)) t.match(srv.err, /ucspi-tls-server: exiting\n$/, 'its last line');
  else t.equal(srv.err, '', '-q: nothing logged at all');
}
