// ucspi-tls-server started as root: the apps run as -u/-g or $UID/$GID, the TLS workers as
// TLS_UID/TLS_GID (nobody by default), never root; an app can read neither the key files
// nor the workers' memory.
import t, { type Test } from 'tap';
import { chmodSync, readFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { spawnSync } from 'node:child_process';
import {
  appForAnyUser, freePort, Lines, readReport, SERVER, startTls, tempDir, ucspiTlsServer, uidsOf, WITHOUT_TEST_HOOKS, type ServerLauncher,
} from './helpers';
import { stopServer } from './modes';
import { selfSigned } from './pki';

const NOBODY = '65534';
const DAEMON = '1';

const dir = tempDir(t, 'utw-spriv-');
const app = appForAnyUser(t);
const server = selfSigned(dir, 'server', { subject: '/CN=mail.example.test' });
chmodSync(server.key, 0o600);

function gidsOf(pid: number): { gid: string; groups: string } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { gid: /^Gid:\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(s)!.slice(1).join(' '), groups: /^Groups:[ \t]*(.*)$/m.exec(s)![1]!.trim() };
}

async function serve(t: Test, env: Record<string, string>, flags: string[] = []): Promise<{ report: string; srv: ServerLauncher; port: number }> {
  const report = tempDir(t);
  chmodSync(report, 0o777); // the app, as nobody, writes its report here
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port,
    { PATH: process.env.PATH, REPORT: report, CERTFILE: server.cert, KEYFILE: server.key, PROBE_FILE: server.key, ...env },
    ['-v', ...flags], [app]);
  return { report, srv, port };
}

/** A STARTTLS session whose app probes each worker; what the app found, per worker. */
async function probeWorkers(t: Test, s: { report: string; srv: ServerLauncher; port: number }): Promise<Map<number, string>> {
  const tls = await startTls(s.port);
  const lines = new Lines(tls as unknown as Socket);
  const workers = s.srv.workers();
  t.ok(workers.length >= 1, `the workers: ${workers.join(' ')}`);
  const out = new Map<number, string>();
  for (const w of workers) {
    tls.write(`PROBE ${w}\r\n`);
    t.equal(await lines.line(), '250 probed', 'the app answers through TLS');
    out.set(w, readReport(s.report, 'probe'));
  }
  tls.write('QUIT\r\n');
  await lines.line();
  tls.destroy();
  await s.srv.end();
  return out;
}

t.test('the tests run as root, as an operator starts the server', async (t) => {
  t.equal(process.getuid?.(), 0);
});

t.test('$UID/$GID for the apps, TLS_UID/TLS_GID for the workers: the app reaches neither key nor worker', async (t) => {
  const s = await serve(t, { UID: NOBODY, GID: NOBODY, TLS_UID: DAEMON, TLS_GID: DAEMON });
  for (const [w, probe] of await probeWorkers(t, s)) {
    t.match(probe, new RegExp(`^uid ${NOBODY}$`, 'm'), 'the app runs as $UID');
    t.match(probe, new RegExp(`^gid ${NOBODY}$`, 'm'), 'the app runs as $GID');
    t.match(probe, new RegExp(`^groups ${NOBODY}$`, 'm'), 'with no supplementary group of root');
    t.match(probe, /^key denied$/m, 'the app cannot read the key file');
    t.match(readReport(s.report, 'key-error'), /Permission denied/, '... EACCES');
    t.match(probe, /^helper-mem denied$/m, `the app cannot open /proc/${w}/mem`);
    t.match(probe, /^helper-environ denied$/m, `nor /proc/${w}/environ`);
    t.equal(uidsOf(w), `${DAEMON} ${DAEMON} ${DAEMON}`, `worker ${w} runs as TLS_UID (real, effective, saved)`);
    t.same(gidsOf(w), { gid: `${DAEMON} ${DAEMON} ${DAEMON}`, groups: '' }, 'and TLS_GID, no supplementary groups');
  }
  await stopServer(t, s.srv);
});

t.test('-u/-g for the apps; the workers are nobody by default, not root', async (t) => {
  const s = await serve(t, { TLS_UID: DAEMON, TLS_GID: DAEMON }, ['-u', NOBODY, '-g', NOBODY]);
  for (const [w, probe] of await probeWorkers(t, s)) {
    t.match(probe, new RegExp(`^uid ${NOBODY}$`, 'm'), 'the app runs as -u');
    t.match(probe, new RegExp(`^gid ${NOBODY}$`, 'm'), 'the app runs as -g');
    t.match(probe, /^key denied$/m);
    t.match(probe, /^helper-mem denied$/m);
    t.equal(uidsOf(w), `${DAEMON} ${DAEMON} ${DAEMON}`);
  }
  await stopServer(t, s.srv);

  // No TLS_UID: the workers run as nobody; the apps as root, who can reach anything (the
  // probe says so: it is not a probe that always finds the door shut).
  const d = await serve(t, {});
  for (const [w, probe] of await probeWorkers(t, d)) {
    t.equal(uidsOf(w), `${NOBODY} ${NOBODY} ${NOBODY}`, `worker ${w} is nobody`);
    t.match(probe, /^uid 0$/m, 'the app runs as the server does');
    t.match(probe, /^helper-mem readable$/m, 'root may open a worker\'s memory');
  }
  t.equal(uidsOf(d.srv.pid), `${NOBODY} ${NOBODY} ${NOBODY}`, 'the acceptor, which reads the network, runs as the workers\' user once listening');
  t.equal(uidsOf(d.srv.spawner()!), '0 0 0', 'the spawner stays root, to start apps as their users');
  await stopServer(t, d.srv);
});

t.test('the apps as the workers\' user: refused at start, exit 111, nothing listens', async (t) => {
  const port = await freePort();
  const r = spawnSync(WITHOUT_TEST_HOOKS[0]!, [...WITHOUT_TEST_HOOKS.slice(1), SERVER, '-u', NOBODY, '-g', NOBODY, '127.0.0.1', String(port), app], {
    env: { PATH: process.env.PATH, CERTFILE: server.cert, KEYFILE: server.key }, encoding: 'utf8', timeout: 10000,
  });
  t.equal(r.status, 111);
  t.match(r.stderr, /^ucspi-tls-server: pid \d+: fatal: [^\n]+\n$/, 'one line');
  t.notMatch(readFileSync('/proc/net/tcp', 'utf8'), new RegExp(`: 0100007F:${port.toString(16).toUpperCase().padStart(4, '0')} 0+:0000 0A`));
});

t.test('a socket below 1024: started as root, it listens, and still no worker is root', async (t) => {
  // 127.0.0.1 port 587 may be taken on a test machine: any free one below 1024 will do.
  let port = 0;
  for (const p of [587, 465, 993, 143, 25, 110, 995, 24, 26]) {
    const free = await new Promise<boolean>((res) => {
      const srv = createServer().once('error', () => res(false)).listen(p, '127.0.0.1', () => srv.close(() => res(true)));
    });
    if (free) { port = p; break; }
  }
  t.ok(port > 0 && port < 1024, `port ${port}`);
  const report = tempDir(t);
  chmodSync(report, 0o777);
  const srv = await ucspiTlsServer(t, port, { PATH: process.env.PATH, REPORT: report, CERTFILE: server.cert, KEYFILE: server.key, UID: NOBODY, GID: NOBODY, TLS_UID: DAEMON, TLS_GID: DAEMON }, ['-v'], [app]);
  const tls = await startTls(port);
  const lines = new Lines(tls as unknown as Socket);
  tls.write('NOOP\r\n');
  t.equal(await lines.line(), '250 yes NOOP');
  tls.write('QUIT\r\n');
  await lines.line();
  tls.destroy();
  const workers = srv.workers();
  t.ok(workers.length >= 1);
  for (const w of workers) t.notOk(uidsOf(w).split(' ').includes('0'), `worker ${w} is not root in any of its uids`);
  t.equal((await srv.end()).status, 0);
  await stopServer(t, srv);
});
