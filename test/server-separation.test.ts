// ucspi-tls-server's three kinds of process: the acceptor reads the network and is not root
// once listening; the spawner is root and reads nothing from the network; the workers run
// TLS as TLS_UID. And what the spawner takes from the acceptor: a request outside its
// contract (another argv, a variable the acceptor may not set, an unknown request) is
// refused with one line, and it keeps serving.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { APP, appForAnyUser, baseEnv, freePort, Lines, makeCert, ROOT, sleep, startTls, tempDir, treeOf, ucspiTlsServer, uidsOf, waitFor, within, WITHOUT_TEST_HOOKS } from './helpers';
import { stopServer } from './modes';
import { parseServerArgs } from '../src/server/options';
import { planServerPrivileges } from '../src/server/privileges';
import { spawnerSetup } from '../src/server/spawner/setup';
import type { FromSpawner, ToSpawner } from '../src/server/protocol';

const NOBODY = 65534;
const DAEMON = 1;

/** Inodes of the TCP sockets on `port` (either end), and of its listening one, from /proc/net/tcp. */
function tcpInodes(port: number): { all: Set<string>; listening: Set<string> } {
  const all = new Set<string>();
  const listening = new Set<string>();
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const [local, remote, state, inode] = [f[1]!, f[2]!, f[3]!, f[9]!];
      if (!local.endsWith(`:${hex}`) && !remote.endsWith(`:${hex}`)) continue;
      all.add(inode);
      if (state === '0A') listening.add(inode);
    }
  }
  return { all, listening };
}

/** The socket inodes a process holds. */
function socketsOf(pid: number): Set<string> {
  const out = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

t.test('PROXY traffic and TLS sessions flowing: no process that holds a socket of the port is root; the spawner, root, holds none', async (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o777); // the apps, as nobody, write their reports here
  const port = await freePort();
  // The app as nobody: a copy it may run, wherever the checkout is.
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1', UID: String(NOBODY), GID: String(NOBODY), TLS_UID: String(DAEMON), TLS_GID: String(DAEMON) }), ['--proxy', '-w', '2'], [appForAnyUser(t)]);
  const sessions = await Promise.all(['192.0.2.1', '192.0.2.2', '192.0.2.3'].map((a, i) => startTls(port, { first: `PROXY TCP4 ${a} 127.0.0.1 ${40001 + i} 25\r\n` })));
  for (const s of sessions) s.write('NOOP\r\n');
  // And one connection whose header is still being read, by the acceptor.
  const pending = connect({ port, host: '127.0.0.1' });
  pending.on('error', () => {});
  pending.write('PROXY TCP4 192.0.2.9 ');
  await sleep(300);

  const { all, listening } = tcpInodes(port);
  const tree = treeOf(srv.pid);
  const holders = tree.filter((pid) => [...socketsOf(pid)].some((i) => all.has(i)));
  t.ok(holders.includes(srv.pid), 'the acceptor holds sockets of the port');
  t.ok(srv.workers().every((w) => holders.includes(w)), 'so do the workers');
  for (const pid of holders) t.notMatch(uidsOf(pid), /(^| )0( |$)/, `pid ${pid} (${readFileSync(`/proc/${pid}/comm`, 'utf8').trim()}) holds a socket of the port: uids ${uidsOf(pid)}, none 0`);
  const spawner = srv.spawner()!;
  t.equal(uidsOf(spawner), '0 0 0', 'the spawner is root');
  t.notOk(holders.includes(spawner), 'and holds no socket of the port');
  const listeners = tree.filter((pid) => [...socketsOf(pid)].some((i) => listening.has(i)));
  t.same(listeners, [srv.pid], 'the listening socket: held by the acceptor alone');
  t.equal(uidsOf(srv.pid), `${DAEMON} ${DAEMON} ${DAEMON}`, 'which runs as TLS_UID since it listens');
  t.equal(readFileSync(join(dir, '40001', 'cwd'), 'utf8').trim(), process.cwd(), 'the apps start where the server started');

  for (const s of sessions) s.destroy();
  pending.destroy();
  await stopServer(t, srv);
});

interface Spawned {
  err: () => string;
  messages: FromSpawner[];
  send(m: unknown, handle?: Socket): void;
  next(pred: (m: FromSpawner) => boolean): Promise<FromSpawner>;
  stop(): Promise<void>;
}

/** The spawner, forked and set up as the acceptor does it. */
async function startSpawner(t: Test, dir: string, report: string): Promise<Spawned> {
  const env = baseEnv(makeCert(dir), { REPORT: report, REPORT_EACH: '1' }) as Record<string, string>;
  const parsed = parseServerArgs(['-w', '1', '127.0.0.1', '0', APP], env, availableParallelism(), process.pid);
  if (parsed.kind !== 'run') throw new Error(`parse: ${parsed.kind}`);
  const plan = planServerPrivileges(undefined, undefined, { uid: 0, gid: 0 });
  if (typeof plan === 'string') throw new Error(plan);
  const base: Record<string, string> = { PATH: env.PATH!, REPORT: report, REPORT_EACH: '1', SSLCTLFD: '3', SSLREADFD: '4', SSLWRITEFD: '5' };
  const setup = spawnerSetup(parsed.config, plan, base, env, undefined, process.cwd());
  // Without the test runner's hooks (see WITHOUT_TEST_HOOKS): its workers, as nobody, could not load them.
  const [cmd, ...args] = WITHOUT_TEST_HOOKS as [string, ...string[]];
  const child = spawn(cmd, [...args, process.execPath, '--use-openssl-ca', join(ROOT, 'build', 'ucspi-tls-server-spawner.js')], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: { PATH: env.PATH } });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const messages: FromSpawner[] = [];
  const waits: Array<() => void> = [];
  child.on('message', (m: FromSpawner) => {
    messages.push(m);
    for (const w of waits.splice(0)) w();
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  t.teardown(() => void child.kill('SIGKILL'));
  const s: Spawned = {
    err: () => err,
    messages,
    send: (m, handle) => child.send(m as ToSpawner, handle),
    next: async (pred) => {
      for (let i = 0; i < 500; i++) {
        const found = messages.find(pred);
        if (found !== undefined) return found;
        await new Promise<void>((r) => {
          waits.push(r);
          setTimeout(r, 50);
        });
      }
      throw new Error(`no such message from the spawner: ${JSON.stringify(messages)}\n${err}`);
    },
    stop: async () => {
      child.disconnect();
      await within(exited, 10000, 'the spawner exits once disconnected');
    },
  };
  s.send({ t: 'init', setup });
  const ready = await s.next((m) => m.t === 'ready');
  t.equal((ready as { broken?: string }).broken, undefined, 'the spawner and its worker are up');
  return s;
}

t.test('the spawner refuses another argv, a variable the acceptor may not set, an unknown request: one line each, and serves on', async (t) => {
  const dir = tempDir(t);
  const report = tempDir(t);
  const sp = await startSpawner(t, dir, report);
  // Client connections, accepted here as the acceptor accepts them: unread.
  const server = createServer({ pauseOnConnect: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => void server.close());
  const port = (server.address() as { port: number }).port;
  const accepted: Socket[] = [];
  server.on('connection', (s) => accepted.push(s));
  const client = async (): Promise<{ c: Socket; s: Socket }> => {
    const c = connect({ port, host: '127.0.0.1' });
    c.on('error', () => {});
    while (accepted.length === 0) await sleep(10);
    return { c, s: accepted.shift()! };
  };
  const closed = (c: Socket): Promise<void> => new Promise((r) => (c.destroyed ? r() : c.once('close', () => r())));
  // The connection's variables: the spawner adds them to the apps' common environment.
  const env = (more: Record<string, string> = {}): Record<string, string> => ({ PROTO: 'TCP', TCPREMOTEIP: '127.0.0.1', TCPREMOTEPORT: '1', ...more });

  const a = await client();
  sp.send({ t: 'start', id: 1, argv: ['/bin/sh', '-c', 'id > /tmp/owned'], env: env() }, a.s);
  t.same(await sp.next((m) => m.t === 'not-started' && m.id === 1), { t: 'not-started', id: 1, reason: 'refused' }, 'another argv: not started');
  await within(closed(a.c), 10000, 'its client is closed');
  t.match(sp.err(), /^ucspi-tls-server: spawner: request refused: start: an argv other than the one given at start \(\["\/bin\/sh","-c","id > \/tmp\/owned"\]\)$/m, 'one line says why');

  const b = await client();
  sp.send({ t: 'start', id: 2, argv: [APP], env: env({ LD_PRELOAD: '/tmp/evil.so' }) }, b.s);
  t.same(await sp.next((m) => m.t === 'not-started' && m.id === 2), { t: 'not-started', id: 2, reason: 'refused' }, 'LD_PRELOAD: not started');
  await within(closed(b.c), 10000, 'its client is closed');
  t.match(sp.err(), /^ucspi-tls-server: spawner: request refused: start: variable "LD_PRELOAD" is not one the acceptor may set$/m, 'one line says why');

  // Nor a variable of the common environment, set again for one connection.
  const d = await client();
  sp.send({ t: 'start', id: 4, argv: [APP], env: env({ PATH: '/tmp/evil' }) }, d.s);
  t.same(await sp.next((m) => m.t === 'not-started' && m.id === 4), { t: 'not-started', id: 4, reason: 'refused' }, 'PATH again: not started');
  await within(closed(d.c), 10000, 'its client is closed');
  t.match(sp.err(), /^ucspi-tls-server: spawner: request refused: start: variable "PATH" is not one the acceptor may set$/m, 'one line says why');

  sp.send({ t: 'exec', argv: ['/bin/sh'] });
  sp.send({ t: 'signal', signal: 'SIGSTOP' });
  sp.send({ t: 'notify', assignments: ['MAINPID=1'] });
  sp.send({ t: 'init', setup: {} });
  await sleep(300);
  for (const re of [/request refused: unknown request "exec"$/m, /request refused: signal: "SIGSTOP" is not SIGTERM or SIGKILL$/m, /request refused: notify: "MAINPID" is not a readiness assignment$/m, /request refused: init, once more$/m]) t.match(sp.err(), re, `one line: ${re.source}`);
  t.equal(sp.err().split('\n').filter((l) => l.includes('request refused')).length, 7, 'one line per refusal, no more');
  t.notOk(readdirSync(report).length > 0, 'no app ran for any of them');

  // And it serves on: the app for a request within its contract, with the client on fds 0/1.
  const c = await client();
  sp.send({ t: 'start', id: 3, argv: [APP], env: env({ TCPREMOTEPORT: '3' }) }, c.s);
  const started = await sp.next((m) => m.t === 'started' && m.id === 3);
  t.ok((started as { pid: number }).pid > 0, 'started, with its pid');
  const lines = new Lines(c.c);
  t.equal(await lines.line(), '220 test ESMTP', 'its banner reaches the client');
  c.c.write('QUIT\r\n');
  await lines.line();
  const appEnv = await waitFor(join(report, '3', 'env'));
  t.match(appEnv, /^TCPREMOTEPORT=3$/m, 'with its connection\'s variables');
  t.match(appEnv, new RegExp(`^REPORT=${report}$`, 'm'), 'on the common environment given at start');
  await sp.next((m) => m.t === 'ended' && m.id === 3);
  c.c.destroy();
  await sp.stop();
});

t.test('the acceptor killed (SIGKILL): the spawner and the workers, which ignore SIGTERM, are gone too', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir }), ['-w', '2'], [APP]);
  while (srv.workers().length < 2) await sleep(20);
  const left = [srv.spawner()!, ...srv.workers()];
  process.kill(srv.pid, 'SIGKILL');
  const gone = (): boolean => left.every((p) => !existsSync(`/proc/${p}`) || /^State:\s+Z/m.test(readFileSync(`/proc/${p}/status`, 'utf8')));
  for (let i = 0; i < 100 && !gone(); i++) await sleep(100);
  t.ok(gone(), `spawner and workers (${left.join(', ')}) gone`);
});
