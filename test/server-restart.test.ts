// ucspi-tls-server restarted under load: a new server takes the port while the old one
// drains, and no connection attempt is lost. Two ways: one listening socket shared (as
// systemd shares a socket unit's), on every runtime; SO_REUSEPORT (--reuse-port), where
// the runtime has it.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { allGone, baseEnv, freePort, makeCert, ROOT, SERVER, sleep, tempDir, treeOf, alive, WITHOUT_TEST_HOOKS } from './helpers';
import { failures, QUICK_APP, quickSession, steadyStream } from './takeover';
import { reusePortRefusal } from '../src/server/lifecycle/reuse-port';

/**
 * What systemd does with a socket unit: bind once, keep the socket, start services with it
 * as fd 3 (LISTEN_FDS=1, LISTEN_PID theirs). systemd-socket-activate binds and runs this
 * holder on it; each line on its stdin starts one more server on the same socket, its pid
 * in pidN, its log in logN, its exit status in exitN.
 */
const HOLDER = `
D=$1; shift
i=0
while IFS= read -r _; do
  i=$((i+1))
  ( sh -c 'echo $$ > "$0"; LISTEN_PID=$$ exec "$@"' "$D/pid$i" "$@" > /dev/null 2> "$D/log$i"; echo $? > "$D/exit$i" ) &
done
wait
`;

async function fileLine(file: string, re: RegExp, ms = 20000): Promise<string> {
  for (let i = 0; i < ms / 20; i++) {
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    const m = re.exec(text);
    if (m !== null) return m[0];
    await sleep(20);
  }
  throw new Error(`no ${re} in ${file} after ${ms} ms: ${existsSync(file) ? readFileSync(file, 'utf8') : '(none)'}`);
}

t.test('one socket shared as systemd shares it: a new server takes over while the old one drains, no attempt lost', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const holder = spawn('systemd-socket-activate', ['-l', `127.0.0.1:${port}`, '-E', 'CERTFILE', '-E', 'KEYFILE', '-E', 'PATH', 'bash', '-c', HOLDER, 'holder', dir, ...WITHOUT_TEST_HOOKS, SERVER, '-v', '-w', '1', '-c', '1000', ...QUICK_APP], {
    env: baseEnv(makeCert(dir)),
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let holderErr = '';
  holder.stderr!.on('data', (d: Buffer) => (holderErr += d.toString()));
  const holderGone = new Promise((r) => holder.once('exit', r));
  const servers: number[] = [];
  t.teardown(async () => {
    for (const pid of servers) {
      const tree = alive(pid) ? treeOf(pid) : [];
      for (const p of tree) process.kill(p, 'SIGKILL');
    }
    holder.stdin!.end();
    holder.kill('SIGTERM');
    await holderGone;
  });
  const start = async (n: number): Promise<number> => {
    holder.stdin!.write('start\n');
    await fileLine(join(dir, `log${n}`), /ucspi-tls-server: listening on 127\.0\.0\.1 port \d+, 1 worker, at most 1000 connections/);
    const pid = Number(readFileSync(join(dir, `pid${n}`), 'utf8'));
    servers.push(pid);
    return pid;
  };

  // systemd-socket-activate runs the holder at the first connection, as systemd would.
  for (let i = 0; i < 500 && !/Listening on/.test(holderErr); i++) await sleep(20);
  const first = quickSession(port);
  // -c well above the stream: at its limit a server closes, on SIGTERM, the connections it
  // has accepted and not started yet (see ucspi-tls-server(1), SIGNALS).
  const a = await start(1);
  t.same(await first, { ok: true }, 'the connection that started the holder is served');
  const run = steadyStream(port, 5, 2000);
  await sleep(600);
  await start(2);
  const aTree = treeOf(a);
  process.kill(a, 'SIGTERM');
  const outcomes = await run;
  t.ok(outcomes.length > 100, `a steady stream: ${outcomes.length} attempts`);
  t.same(failures(outcomes), {}, 'every attempt got the banner and its whole session: none refused or reset');

  t.equal(await fileLine(join(dir, 'exit1'), /^\d+/), '0', 'the old server exited 0 once its sessions were over');
  t.ok(await allGone(aTree), 'nothing of the old server is left running');
  const logA = readFileSync(join(dir, 'log1'), 'utf8');
  const logB = () => readFileSync(join(dir, 'log2'), 'utf8');
  const served = (log: string): number => (log.match(/: start: /g) ?? []).length;
  t.match(logA, /^ucspi-tls-server: SIGTERM: no longer accepting; (\d+ session\(s\) left, 30 s to end|no session left)$/m, 'the old server stopped accepting at once');
  t.ok(served(logA) > 0 && served(logB()) > 0, `both served: ${served(logA)} by the old, ${served(logB())} by the new`);
  t.equal(served(logA) + served(logB()), outcomes.length + 1, 'every attempt was served by one of them');
  t.equal((logA.match(/: end: exit 0, plaintext/g) ?? []).length, served(logA), 'every session of the old server ended with its app, exit 0');

  // The new server goes on alone on the socket.
  const again = await steadyStream(port, 10, 200);
  t.same(failures(again), {}, 'the new server serves on');
  const b = servers[1]!;
  const bTree = treeOf(b);
  process.kill(b, 'SIGTERM');
  t.equal(await fileLine(join(dir, 'exit2'), /^\d+/), '0', 'the new server exits 0 on SIGTERM');
  t.ok(await allGone(bTree), 'nothing of it is left');
});

const refused = reusePortRefusal(process.versions.node);

if (refused !== undefined) {
  t.test(`--reuse-port on Node.js ${process.versions.node}: one clear line, exit 111, before listening`, async (t) => {
    const dir = tempDir(t);
    const port = await freePort();
    const r = spawnSync(WITHOUT_TEST_HOOKS[0]!, [...WITHOUT_TEST_HOOKS.slice(1), SERVER, '--reuse-port', '127.0.0.1', String(port), ...QUICK_APP], {
      env: baseEnv(makeCert(dir)), encoding: 'utf8', timeout: 10000,
    });
    t.equal(r.status, 111, 'exit 111');
    t.match(r.stderr, /^ucspi-tls-server: pid \d+: fatal: --reuse-port needs Node\.js 22\.12 or later \(SO_REUSEPORT\); this is Node\.js \d+\.\d+\.\d+: use a systemd socket instead\n$/, 'one line, naming the version needed');
    t.equal(r.stdout, '', 'nothing else');
  });
} else {
  /** The driver in a network namespace of its own, where tcp_migrate_req is set as given. */
  const inNamespace = (scenario: string, migrate: 0 | 1, dir: string): Record<string, unknown> => {
    const r = spawnSync('unshare', ['--net', 'sh', '-c', `ip link set lo up && echo ${migrate} > /proc/sys/net/ipv4/tcp_migrate_req && exec node "$0" "$1"`, join(ROOT, 'build', 'test', 'apps', 'reuse-port-takeover.js'), dir], {
      env: { ...process.env, SCENARIO: scenario }, encoding: 'utf8', timeout: 60000,
    });
    if (r.status !== 0) throw new Error(`the driver failed (${r.status}): ${r.stdout} ${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };

  t.test('--reuse-port: a new server on the same port while the old one drains, no attempt lost', async (t) => {
    const dir = tempDir(t);
    // The kernel moves what waits in the old socket's queue to the new one (see the next test).
    const r = inNamespace('stream', 1, dir);
    const outcomes = r.outcomes as Array<{ ok: boolean }>;
    t.ok(outcomes.length > 100, `a steady stream: ${outcomes.length} attempts`);
    t.same(failures(outcomes as Parameters<typeof failures>[0]), {}, 'every attempt got the banner and its whole session');
    t.same(r.aExit, { status: 0, signal: null }, 'the old server exited 0');
    t.ok((r.servedByA as number) > 0 && (r.servedByB as number) > 0, `both served: ${String(r.servedByA)} by the old, ${String(r.servedByB)} by the new`);
    t.equal((r.servedByA as number) + (r.servedByB as number), outcomes.length, 'every attempt was served by one of them');
  });

  t.test('--reuse-port: what waits in the old socket\'s queue when it closes is reset, unless net.ipv4.tcp_migrate_req=1', async (t) => {
    const dir = tempDir(t);
    // 20 connections wait in the old server's queue (at its -c 1 limit) when the new one
    // starts and the old one is told to stop.
    const reset = inNamespace('queue', 0, dir);
    t.equal(reset.servedBeforeClose, 0, 'none of them went to the new server before the close');
    t.same(reset.results, { ECONNRESET: 20 }, 'tcp_migrate_req=0 (the default): each of them is reset');
    t.same(reset.aExit, { status: 0, signal: null }, 'the old server exited 0');
    const moved = inNamespace('queue', 1, dir);
    t.equal(moved.servedBeforeClose, 0);
    t.same(moved.results, { served: 20 }, 'tcp_migrate_req=1: the kernel gives them to the new server, every one served');
    t.same(moved.aExit, { status: 0, signal: null });
  });
}
