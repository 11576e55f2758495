// A restart with --reuse-port, run by test/server-restart.test.ts inside a network namespace
// of its own (unshare --net), where the test sets net.ipv4.tcp_migrate_req without touching
// the machine's. Prints one JSON object on stdout: what each scenario measured.
//
//   SCENARIO=stream: clients connect in a steady stream while the old server (A) is told to
//     stop and a new one (B) takes over; every attempt's outcome.
//   SCENARIO=queue: A at its -c 1 limit (not accepting) with clients waiting in its socket's
//     queue when it closes: what becomes of them.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { baseEnv, makeCert, SERVER, ServerLauncher, sleep, WITHOUT_TEST_HOOKS } from '../helpers';
import { QUICK_APP, quickSession, steadyStream } from '../takeover';

const PORT = 5870;
const dir = process.argv[2]!;
const env = baseEnv(makeCert(dir));

function server(flags: string[]): ServerLauncher {
  const [cmd, ...args] = [...WITHOUT_TEST_HOOKS, SERVER, '-v', '--reuse-port', ...flags, '127.0.0.1', String(PORT), ...QUICK_APP] as [string, ...string[]];
  return new ServerLauncher(cmd, args, env);
}

async function listening(s: ServerLauncher): Promise<void> {
  for (let i = 0; i < 1000 && !/ucspi-tls-server: listening on /.test(s.err); i++) {
    if (!s.running) throw new Error(`server exited: ${s.err}`);
    await sleep(20);
  }
}

function starts(s: ServerLauncher): number {
  return (s.err.match(/: start: /g) ?? []).length;
}

async function stream(): Promise<object> {
  // -c well above the stream: at its limit a server closes, on SIGTERM, the connections it
  // has accepted and not started yet (see ucspi-tls-server(1), SIGNALS).
  const a = server(['-w', '1', '-c', '1000']);
  await listening(a);
  const run = steadyStream(PORT, 5, 2000);
  await sleep(600);
  const b = server(['-w', '1', '-c', '1000']);
  await listening(b);
  a.proc.kill('SIGTERM');
  const outcomes = await run;
  const aExit = await a.exit();
  const servedByB = starts(b);
  await b.shutdown();
  return { outcomes, servedByA: starts(a), servedByB, aExit, aLog: a.err, bLog: b.err };
}

/** Connections waiting in the accept queue of the listening socket(s) on PORT, as the kernel counts them. */
function acceptQueue(): number {
  const hex = PORT.toString(16).toUpperCase().padStart(4, '0');
  let n = 0;
  // For a listening socket (state 0A) the rx_queue column is its accept queue's length.
  for (const m of readFileSync('/proc/net/tcp', 'latin1').matchAll(new RegExp(`^\\s*\\d+: [0-9A-F]+:${hex} [0-9A-F]+:0000 0A [0-9A-F]+:([0-9A-F]+)`, 'gm'))) n += parseInt(m[1]!, 16);
  return n;
}

/**
 * How many fds of process `pid` hold the listening socket on PORT. The launcher pauses by
 * closing its server and keeping a second fd of the socket (see acceptor/listener.ts); after a resume
 * it fetches that second fd anew, and until it is back a pause cannot take effect at once.
 */
function listeningFds(pid: number): number {
  const hex = PORT.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const m of readFileSync('/proc/net/tcp', 'latin1').matchAll(new RegExp(`^\\s*\\d+: [0-9A-F]+:${hex} [0-9A-F]+:0000 0A (?:\\S+\\s+){5}(\\d+)`, 'gm'))) inodes.add(m[1]!);
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m !== null && inodes.has(m[1]!)) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

/** A connection that records whether it got the banner, and how it ended. */
function waiter(): { sock: Socket; result: Promise<string> } {
  const sock = connect({ port: PORT, host: '127.0.0.1' });
  const result = new Promise<string>((resolve) => {
    let got = '';
    sock.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.includes('\n')) {
        sock.end('QUIT\r\n');
      }
    });
    sock.on('end', () => resolve(got.startsWith('220 takeover') ? 'served' : `closed: ${JSON.stringify(got)}`));
    sock.on('error', (e: NodeJS.ErrnoException) => resolve(got.startsWith('220 takeover') ? 'served' : (e.code ?? e.message)));
  });
  return { sock, result };
}

async function queue(): Promise<object> {
  const a = server(['-w', '1', '-c', '1']);
  await listening(a);
  // One whole session first: by its end A has what it needs to pause (see acceptor/listener.ts).
  if (!(await quickSession(PORT)).ok) throw new Error(`A does not serve: ${a.err}`);
  // A resumed accepting after that session: wait until it holds its second fd again, so that
  // the next connection pauses it at once and every later one waits in the kernel's queue.
  for (let i = 0; i < 250 && listeningFds(a.proc.pid!) < 2; i++) await sleep(20);
  if (listeningFds(a.proc.pid!) < 2) throw new Error(`A never held a second fd of its socket: ${a.err}`);
  // A's one session, held open: A stops accepting, its socket keeps queueing.
  const held = connect({ port: PORT, host: '127.0.0.1' });
  await new Promise((r) => held.once('data', r));
  // Each of these connects (the kernel completes the handshake) and waits in A's queue:
  // A's is the only socket on the port yet.
  const n = 20;
  const waiters = Array.from({ length: n }, () => waiter());
  let queued = 0;
  for (let i = 0; i < 250 && queued < n; i++) {
    await sleep(20);
    queued = acceptQueue();
  }
  if (queued !== n) throw new Error(`${queued} of ${n} in A's accept queue: ${a.err}`);
  const b = server(['-w', '1']);
  await listening(b);
  const servedBeforeClose = starts(b);
  a.proc.kill('SIGTERM');
  const results = await Promise.race([Promise.all(waiters.map((w) => w.result)), sleep(10000).then(() => undefined)]);
  held.end('QUIT\r\n');
  const aExit = await a.exit();
  for (const w of waiters) w.sock.destroy();
  await b.shutdown();
  const counted: Record<string, number> = {};
  for (const r of results ?? ['timeout']) counted[r] = (counted[r] ?? 0) + 1;
  return { queuedAtClose: n, servedBeforeClose, results: counted, aExit, aLog: a.err, bLog: b.err };
}

async function main(): Promise<void> {
  const out = process.env.SCENARIO === 'queue' ? await queue() : await stream();
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((e: Error) => {
  process.stdout.write(`${JSON.stringify({ error: e.stack })}\n`);
  process.exitCode = 1;
});
