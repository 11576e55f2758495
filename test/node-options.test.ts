// The node options of our processes, as launchers start them, on the runtime this file runs
// on (`make check` runs it on each): every process runs with --use-openssl-ca (without it
// Node 22, 24 and 26 parse their ~140 bundled root certificates whenever `tls` loads), and the
// per-connection ones (the helper under tcpserver, the client under tcpclient) also with
// V8's compilers and collector on the main thread (see bin/ucspi-tls-wrap). The memory these
// save is asserted in hostile-memory.test.ts.
import t from 'tap';
import { readFileSync, readlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { APP, baseEnv, CLIENT, freePort, Lines, makeCert, relayClient, sleep, tcpserver, tempDir, ucspiTlsServer } from './helpers';
import { helperPid, processesOf, serve } from './hostile';

const OPTION = '--use-openssl-ca';
const PER_CONNECTION = [OPTION, '--no-concurrent-recompilation', '--no-concurrent-sparkplug', '--single-threaded-gc'];
/** The node this file runs on, which the tests' PATH gives the executables too. */
const THIS_NODE = readlinkSync('/proc/self/exe');

/** The node a process runs and its arguments, from /proc. */
function nodeArgs(pid: number): { exe: string; args: string[] } {
  return { exe: readlinkSync(`/proc/${pid}/exe`), args: readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').slice(1, -1) };
}

/** The node options of a process: its arguments before the script (or `-`). */
function options(pid: number): string[] {
  const { args } = nodeArgs(pid);
  const script = args.findIndex((a) => a === '-' || !a.startsWith('-'));
  return script === -1 ? args : args.slice(0, script);
}

t.test('the helper under tcpserver', async (t) => {
  const s = await serve(t);
  const sock = connect({ port: s.port, host: '127.0.0.1' });
  t.teardown(() => sock.destroy());
  await new Lines(sock).reply('220');
  const pid = await helperPid(s.srv);
  t.equal(nodeArgs(pid).exe, THIS_NODE, "this runtime's node");
  t.same(options(pid), PER_CONNECTION);
});

t.test("the server's launcher and each of its workers", async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir }), ['-w', '2'], [APP]);
  t.same(options(srv.pid), [OPTION], 'the launcher');
  const workers = srv.workers();
  t.equal(workers.length, 2);
  for (const w of workers) t.ok(options(w).includes(OPTION), `worker ${w}: ${options(w).join(' ')}`);
});

t.test('the client under tcpclient', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  // A server that never answers keeps the client in its handshake long enough to look at it.
  const silent = await tcpserver(port, { PATH: process.env.PATH }, ['sleep', '20']);
  t.teardown(() => silent.stop());
  const done = relayClient(port, { PATH: process.env.PATH, REPORT: dir, MODE: 'direct' }, ['-t', '3', '--insecure']);
  let pid: number | undefined;
  for (let i = 0; i < 100 && pid === undefined; i++) {
    // tcpclient connects, then execs the client: until then the process is tcpclient.
    pid = processesOf(dir).find((p) => {
      try {
        const { exe, args } = nodeArgs(p);
        return exe === THIS_NODE && args.includes(CLIENT);
      } catch {
        return false; // gone meanwhile
      }
    });
    if (pid === undefined) await sleep(20);
  }
  t.ok(pid, 'the client runs');
  t.same(options(pid!), PER_CONNECTION);
  t.equal((await done).status, 3, 'and times out as it should');
});
