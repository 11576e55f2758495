// Started as root: the keys are read first, the app runs as $UID/$GID (or -u/-g), and
// the helper becomes $TLS_UID/$TLS_GID before it touches the network.
import t, { type Test } from 'tap';
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { appForAnyUser, freePort, HELPER, logged, tcpserver, tempDir, tlsSession, waitFor, type Launcher } from './helpers';
import { selfSigned } from './pki';

const NOBODY = 65534;
const DAEMON = 1;

t.test('the tests run as root, as an operator starts the launcher', async (t) => {
  t.equal(process.getuid?.(), 0);
});

const dir = tempDir(t, 'utw-priv-');
const app = appForAnyUser(t);
const server = selfSigned(dir, 'server', { subject: '/CN=mail.example.test' });
chmodSync(server.key, 0o600);

async function serve(t: Test, env: Record<string, string>, flags: string[] = []): Promise<{ port: number; report: string; srv: Launcher }> {
  const report = tempDir(t);
  chmodSync(report, 0o777); // the app, as nobody, writes its report here
  const port = await freePort();
  const srv = await tcpserver(
    port,
    { PATH: process.env.PATH, REPORT: report, CERTFILE: server.cert, KEYFILE: server.key, PROBE_FILE: server.key, ...env },
    [HELPER, '-v', ...flags, app],
  );
  t.teardown(() => srv.stop());
  return { port, report, srv };
}

function status(pid: string): { uid: string; gid: string; groups: string } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    uid: /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(s)!.slice(1).join(' '),
    gid: /^Gid:\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(s)!.slice(1).join(' '),
    groups: /^Groups:[ \t]*(.*)$/m.exec(s)![1]!.trim(),
  };
}

async function probe(t: Test, port: number, report: string): Promise<Map<string, string>> {
  const { startTls, Lines } = await import('./helpers');
  const tls = await startTls(port);
  const lines = new Lines(tls as never);
  tls.write('PROBE\r\n');
  t.equal(await lines.line(), '250 probed', 'the app answers through TLS after the helper dropped');
  const out = new Map<string, string>();
  for (const l of (await waitFor(join(report, 'probe'))).trim().split('\n')) {
    const i = l.indexOf(' ');
    out.set(l.slice(0, i), l.slice(i + 1));
  }
  const helper = status(out.get('ppid')!);
  out.set('helper-uid', helper.uid);
  out.set('helper-gid', helper.gid);
  out.set('helper-groups', helper.groups);
  tls.write('QUIT\r\n');
  await lines.line();
  tls.destroy();
  return out;
}

t.test('$UID/$GID (envuidgid) for the app, TLS_UID/TLS_GID for the helper', async (t) => {
  const s = await serve(t, { UID: String(NOBODY), GID: String(NOBODY), TLS_UID: String(DAEMON), TLS_GID: String(DAEMON) });
  const p = await probe(t, s.port, s.report);
  t.equal(p.get('uid'), String(NOBODY), 'the app runs as $UID');
  t.equal(p.get('gid'), String(NOBODY), 'the app runs as $GID');
  t.equal(p.get('groups'), String(NOBODY), 'and has no supplementary groups of root');
  t.equal(p.get('key'), 'denied', 'the app cannot read the key file (EACCES)');
  t.equal(p.get('helper-environ'), 'denied', "the app cannot read the helper's environment");
  t.equal(p.get('helper-mem'), 'denied', "the app cannot read the helper's memory");
  t.equal(p.get('helper-uid'), `${DAEMON} ${DAEMON} ${DAEMON}`, 'the helper runs as TLS_UID (real, effective, saved)');
  t.equal(p.get('helper-gid'), `${DAEMON} ${DAEMON} ${DAEMON}`, 'the helper runs as TLS_GID');
  t.equal(p.get('helper-groups'), '', 'the helper kept no supplementary groups');
  t.ok(await logged(s.srv, /helper now runs as 1:1/), 'the log says so');
});

t.test('-u/-g for the app; the helper stays root without TLS_UID', async (t) => {
  const s = await serve(t, {}, ['-u', String(NOBODY), '-g', String(NOBODY)]);
  const p = await probe(t, s.port, s.report);
  t.equal(p.get('uid'), String(NOBODY));
  t.equal(p.get('key'), 'denied');
  t.equal(p.get('helper-mem'), 'denied');
  t.equal(p.get('helper-uid'), '0 0 0');
});

t.test('the same app and helper user: the helper is still out of reach', async (t) => {
  const id = String(NOBODY);
  const s = await serve(t, { UID: id, GID: id, TLS_UID: id, TLS_GID: id });
  const p = await probe(t, s.port, s.report);
  t.equal(p.get('helper-uid'), `${id} ${id} ${id}`);
  // Changing user from root makes a process non-dumpable: same uid, still no ptrace access.
  t.equal(p.get('helper-environ'), 'denied');
  t.equal(p.get('helper-mem'), 'denied');
  t.equal(p.get('key'), 'denied');
});

t.test('without $UID the app runs as the helper does (a session for the record)', async (t) => {
  const s = await serve(t, {});
  const r = await tlsSession(s.port, s.report);
  t.equal(r.answer, '250 yes NOOP');
});
