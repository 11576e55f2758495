// --implicit: the handshake first (ports 465, 993, 995), then the app with the plaintext on
// fds 0/1 and the session's variables in its environment.
import t, { type Test } from 'tap';
import { chmodSync, existsSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { spawnSync } from 'node:child_process';
import {
  APP, appFds, appForAnyUser, baseEnv, DEMO, freePort, hashUntilEnd, HELPER, Lines, logged, makeCert, readReport, run, sendRandom, tcpserver, tempDir, waitFor,
  type Launcher,
} from './helpers';
import { issue, selfSigned } from './pki';

function tlsClient(port: number, o: ConnectionOptions = {}): Promise<TLSSocket> {
  return new Promise((res, rej) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'mail.example.test', rejectUnauthorized: false, ...o });
    s.once('secureConnect', () => res(s));
    s.once('error', rej);
  });
}

async function serve(t: Test, env: NodeJS.ProcessEnv, flags: string[], app: string[] = [APP]): Promise<{ port: number; srv: Launcher }> {
  const port = await freePort();
  const srv = await tcpserver(port, env, [HELPER, '-v', '--implicit', ...flags, ...app]);
  t.teardown(() => srv.stop());
  return { port, srv };
}

async function ended(srv: Launcher): Promise<string> {
  await logged(srv, /tcpserver: end \d+ status \d+/, 10000);
  const raw = /tcpserver: end \d+ status (\d+)/.exec(srv.err)?.[1];
  // tcpserver prints the wait status: the exit code is its high byte.
  return raw === undefined ? 'none' : String(Number(raw) >> 8);
}

t.test('the app starts after the handshake: fds 0-2 only, SSL_* in its environment, secrets and forged variables out', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const { port, srv } = await serve(t, baseEnv(certs, { REPORT: dir, SSL_CLIENT_VERIFY: 'SUCCESS', SSLCTLFD: '9' }), []);
  const tls = await tlsClient(port);
  const lines = new Lines(tls as unknown as Socket);
  t.equal(await lines.line(), '220 test ESMTP', 'the banner came through TLS');
  tls.write('NOOP\r\n');
  t.equal(await lines.line(), '250 no NOOP');
  tls.write('QUIT\r\n');
  t.equal(await lines.line(), '221 bye');
  t.same(appFds(dir), ['0', '1', '2'], 'no UCSPI-TLS fds');
  const fds = readReport(dir, 'fds');
  t.match(fds, /^0 socket:\[\d+\]$/m, 'fd 0 is the helper\'s socket, not the connection');
  const env = readReport(dir, 'env');
  t.match(env, /^SSL_PROTOCOL=TLSv1\.3$/m);
  t.match(env, /^SSL_TLS_SNI=mail\.example\.test$/m);
  t.match(env, /^SSL_SERVER_S_DN_CN=mail\.example\.test$/m);
  t.match(env, /^SSL_VERSION_INTERFACE=ucspi-tls-wrap\/\d/m);
  t.match(env, /^TCPREMOTEIP=127\.0\.0\.1$/m, "the launcher's variables stay");
  t.notMatch(env, /^(SSLCTLFD|SSLREADFD|SSLWRITEFD|CERTFILE|KEYFILE|SSL_CLIENT_VERIFY)=/m);
  t.equal(await ended(srv), '0');
  t.match(srv.err, /TLS started: TLSv1\.3 \S+ sni=mail\.example\.test\n[^]*app exited with 0\n[^]*TLS ended: /);
});

t.test('1 MiB each way, byte-exact, with the client half-closing first', async (t) => {
  const dir = tempDir(t);
  const bulk = 1 << 20;
  const { port } = await serve(t, baseEnv(makeCert(dir), { REPORT: dir, BULK: String(bulk) }), []);
  const tls = await tlsClient(port, { allowHalfOpen: true } as ConnectionOptions);
  const lines = new Lines(tls as unknown as Socket);
  await lines.line();
  tls.write('SINK\r\n');
  t.equal(await lines.line(), '354 send');
  lines.detach();
  tls.resume();
  const received = hashUntilEnd(tls);
  const sent = await sendRandom(tls, bulk);
  tls.end();
  const got = await received;
  t.equal((await waitFor(join(dir, 'sink.sha'))).trim(), sent, 'client -> app');
  t.equal(got.bytes, bulk);
  t.equal(got.sha, (await waitFor(join(dir, 'src.sha'))).trim(), 'app -> client');
});

t.test('openssl s_client and the demo app: the app knows TLS is on and offers no STARTTLS', async (t) => {
  const dir = tempDir(t);
  const { port } = await serve(t, baseEnv(makeCert(dir)), [], [DEMO]);
  const r = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'mail.example.test', '-quiet'], {
    input: 'EHLO x\r\nSTARTTLS\r\nTLS\r\nQUIT\r\n', encoding: 'utf8', timeout: 20000,
  });
  t.match(r.stdout, /^220 demo ESMTP \(TLS\)\r\n250-demo\r\n250 HELP\r\n503 5\.5\.1 TLS not available now\r\n250 TLSv1\.3 \S+ sni=mail\.example\.test\r\n221 bye\r\n$/);
});

t.test('no TLS from the client: one log line, exit 98, the app never runs', async (t) => {
  const dir = tempDir(t);
  const { port, srv } = await serve(t, baseEnv(makeCert(dir), { REPORT: dir }), ['-t', '1']);
  const { connect: netConnect } = await import('node:net');
  const plain = netConnect({ port, host: '127.0.0.1' });
  plain.write('EHLO plaintext.example\r\n');
  plain.resume();
  t.equal(await ended(srv), '98');
  t.match(srv.err, /ucspi-tls-wrap: pid \d+: handshake failed: client sent [^\n]*, not a TLS ClientHello\n/);
  t.match(srv.err, /app not started: no TLS/);
  t.notOk(existsSync(join(dir, 'pid')), 'the app never ran');
  plain.destroy();
});

t.test('a silent client: the handshake times out, exit 98', async (t) => {
  const dir = tempDir(t);
  const { port, srv } = await serve(t, baseEnv(makeCert(dir), { REPORT: dir }), ['-t', '1']);
  const { connect: netConnect } = await import('node:net');
  const silent = netConnect({ port, host: '127.0.0.1' });
  t.equal(await ended(srv), '98');
  t.match(srv.err, /handshake timed out after 1 s/);
  t.notOk(existsSync(join(dir, 'pid')));
  silent.destroy();
});

t.test('-y: a client certificate from CAFILE reaches the app as SSL_CLIENT_*; none, and the app never runs', async (t) => {
  const dir = tempDir(t);
  const ca = selfSigned(dir, 'ca', { subject: '/CN=Client CA', ca: true });
  const alice = issue(dir, 'alice', ca, { subject: '/O=Example/CN=alice' });
  const { port, srv } = await serve(t, baseEnv(makeCert(dir), { REPORT: dir, CAFILE: ca.cert }), ['-y']);
  const tls = await tlsClient(port, { cert: readFileSync(alice.cert), key: readFileSync(alice.key) });
  const lines = new Lines(tls as unknown as Socket);
  t.equal(await lines.line(), '220 test ESMTP');
  tls.write('QUIT\r\n');
  await lines.line();
  const env = await waitFor(join(dir, 'env'));
  t.match(env, /^SSL_CLIENT_VERIFY=SUCCESS$/m);
  t.match(env, /^SSL_CLIENT_S_DN_CN=alice$/m);
  t.match(env, /^SSL_CLIENT_I_DN=CN=Client CA$/m);
  await logged(srv, /end \d+ status 0/);

  const dir2 = tempDir(t);
  const two = await serve(t, baseEnv(makeCert(dir2), { REPORT: dir2, CAFILE: ca.cert }), ['-y']);
  const refused = await tlsClient(two.port).then(
    (s) => new Promise<string>((res) => { s.on('error', (e) => res(e.message)); s.on('end', () => res('end')); s.resume(); }),
    (e: Error) => e.message,
  );
  t.match(refused, /certificate required|end|socket hang up|ECONNRESET/, 'the client got no session');
  t.equal(await ended(two.srv), '98');
  t.match(two.srv.err, /client certificate refused|certificate required|peer did not return a certificate/);
  t.notOk(existsSync(join(dir2, 'pid')), 'the app never ran');
});

t.test('an app that cannot be run: one line, exit 127, before any TLS', async (t) => {
  const dir = tempDir(t);
  const { port, srv } = await serve(t, baseEnv(makeCert(dir)), [], ['/nonexistent/app']);
  const { connect: netConnect } = await import('node:net');
  const c = netConnect({ port, host: '127.0.0.1' });
  c.resume();
  t.equal(await ended(srv), '127');
  t.match(srv.err, /ucspi-tls-wrap: pid \d+: fatal: cannot run \/nonexistent\/app: no such file\n/);
  c.destroy();
});

t.test('started as root: the app runs as UID/GID, the helper handshakes as TLS_UID and the app cannot read it', async (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o777);
  const certs = makeCert(dir);
  chmodSync(certs.key, 0o600);
  const { port, srv } = await serve(t, baseEnv(certs, { REPORT: dir, PROBE_FILE: certs.key, UID: '65534', GID: '65534', TLS_UID: '1', TLS_GID: '1' }), [], [appForAnyUser(t)]);
  const tls = await tlsClient(port);
  const lines = new Lines(tls as unknown as Socket);
  t.equal(await lines.line(), '220 test ESMTP');
  tls.write('PROBE\r\n');
  t.equal(await lines.line(), '250 probed');
  const probe = await waitFor(join(dir, 'probe'));
  t.match(probe, /^uid 65534$/m);
  t.match(probe, /^gid 65534$/m);
  t.match(probe, /^key denied$/m);
  t.match(probe, /^helper-mem denied$/m);
  t.match(probe, /^helper-environ denied$/m);
  const ppid = /^ppid (\d+)$/m.exec(probe)![1]!;
  t.match(readFileSync(`/proc/${ppid}/status`, 'utf8'), /^Uid:\s+1\s+1\s+1/m, 'the helper is TLS_UID');
  tls.write('QUIT\r\n');
  await lines.line();
  t.match(srv.err, /helper now runs as 1:1/);
});

t.test('mailfront on the SMTPS port: swaks --tls-on-connect delivers a message', async (t) => {
  const dir = tempDir(t);
  const { port, srv } = await serve(t, baseEnv(makeCert(dir), { PLUGINS: 'accept' }), [], ['mailfront', 'smtp', 'echo']);
  const r = await run('swaks', ['--tls-on-connect', '--server', `127.0.0.1:${port}`, '--from', 'alice@example.test', '--to', 'bob@example.test',
    '--body', 'over implicit TLS'], { PATH: process.env.PATH }, 30000);
  t.equal(r.status, 0, r.out);
  t.match(r.out, /=== TLS started with cipher TLSv1\.[23]:/);
  t.match(r.out, /<~ {2}250 /);
  t.ok(await logged(srv, /mailfront\[\d+\]: RCPT TO:<bob@example\.test>/), 'the echo back-end got the envelope');
  t.equal(await ended(srv), '0');
});
