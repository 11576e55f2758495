// ucspi-tls-client under tcpclient, with a client app written with the app-side module,
// against ucspi-tls-wrap under tcpserver and against openssl s_server.
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  APP, appFds, baseEnv, CLIENT, DEMO, freePort, HELPER, Launcher, logged, readReport, relayClient, RELAY_CLIENT, run, tcpserver, tempDir,
} from './helpers';
import { issue, selfSigned, type Pair } from './pki';

interface Pki {
  ca: Pair;
  server: Pair;
}

function pki(dir: string, san = 'DNS:mail.example.test,IP:127.0.0.1'): Pki {
  const ca = selfSigned(dir, 'ca', { subject: '/O=Test CA/CN=Test Root', ca: true });
  const server = issue(dir, 'server', ca, { subject: '/O=Example/CN=mail.example.test', san });
  return { ca, server };
}

/** The demo app (written with the app-side module) behind tcpserver and ucspi-tls-wrap. */
async function demoServer(t: { teardown(fn: () => void): void }, dir: string, server: Pair): Promise<{ port: number; srv: Launcher }> {
  const port = await freePort();
  const srv = await tcpserver(port, baseEnv(server, { REPORT: dir }), [HELPER, '-v', DEMO]);
  t.teardown(() => srv.stop());
  return { port, srv };
}

function vars(dir: string): Record<string, string> {
  return JSON.parse(readReport(dir, 'vars.json')) as Record<string, string>;
}

t.test('STARTTLS client to ucspi-tls-wrap: certificate and name checked, SNI sent, 1 MiB through exact', async (t) => {
  const dir = tempDir(t);
  const { ca, server } = pki(dir);
  const { port, srv } = await demoServer(t, dir, server);
  const r = await relayClient(port, { PATH: process.env.PATH, REPORT: dir, CAFILE: ca.cert, BULK: String(1 << 20) }, ['-v', '-k', 'mail.example.test']);
  t.equal(r.status, 0, `client exit 0: ${r.err}`);
  t.notOk(existsSync(join(dir, 'error')), 'the app saw no error');
  const v = vars(dir);
  t.equal(v.SSL_SERVER_VERIFY, 'SUCCESS');
  t.equal(v.SSL_TLS_SNI, 'mail.example.test');
  t.equal(v.SSL_SERVER_S_DN_CN, 'mail.example.test');
  t.equal(v.SSL_SERVER_I_DN, 'CN=Test Root,O=Test CA');
  t.match(v.SSL_PROTOCOL, /^TLSv1\.[23]$/);
  t.match(v.SSL_VERSION_INTERFACE, /^ucspi-tls-client\//);
  t.equal(v.SSL_CLIENT_S_DN, undefined, 'no client certificate, no SSL_CLIENT_*');
  t.match(readReport(dir, 'answer'), /^250 TLSv1\.[23] \S+ sni=mail\.example\.test$/, 'the server saw the name as SNI');
  const [sent, ack] = readReport(dir, 'data').trim().split('\n');
  const m = /^(\d+) bytes sha256=([0-9a-f]{64})$/.exec(sent!);
  t.ok(m && Number(m[1]) >= 1 << 20, 'at least 1 MiB sent');
  t.equal(ack, `250 2.0.0 ${m![1]} bytes sha256=${m![2]}`, 'the server app got every byte');
  t.match(r.err, /ucspi-tls-client: pid \d+: server certificates checked against CAFILE /);
  t.match(r.err, /ucspi-tls-client: pid \d+: TLS started: TLSv1\.[23] \S+ server=mail\.example\.test cn="mail\.example\.test"/);
  t.match(r.err, /TLS ended: \d+ bytes to server, \d+ bytes to app/);
  t.ok(await logged(srv, /TLS started: TLSv1\.[23] \S+ sni=mail\.example\.test/), 'the server side logged the session');
});

t.test('y instead of Y: no variables, the session works', async (t) => {
  const dir = tempDir(t);
  const { ca, server } = pki(dir);
  const { port } = await demoServer(t, dir, server);
  const r = await relayClient(port, { PATH: process.env.PATH, REPORT: dir, CAFILE: ca.cert, INFO: 'y' }, ['-k', 'mail.example.test']);
  t.equal(r.status, 0, r.err);
  t.same(vars(dir), {});
  t.match(readReport(dir, 'answer'), /^250 TLSv1\.[23] /);
});

t.test('the server certificate is refused: wrong name, unknown CA, system store, expired', async (t) => {
  const dir = tempDir(t);
  const { ca, server } = pki(dir);
  const { port } = await demoServer(t, dir, server);
  const env = { PATH: process.env.PATH, REPORT: dir };
  const cases: Array<[string, NodeJS.ProcessEnv, string[], RegExp]> = [
    ['a name the certificate lacks', { CAFILE: ca.cert }, ['-k', 'other.example.test'], /server certificate refused: the certificate does not name other\.example\.test \(DNS:mail\.example\.test, IP Address:127\.0\.0\.1\)/],
    ['a CA it was not issued by', { CAFILE: selfSigned(dir, 'other-ca', { subject: '/CN=Other Root', ca: true }).cert }, ['-k', 'mail.example.test'], /server certificate refused: unable to verify the first certificate/],
    ['the system store, which lacks the test CA', {}, ['-v', '-k', 'mail.example.test'], /server certificate refused: unable to verify the first certificate/],
  ];
  for (const [what, extra, args, line] of cases) {
    const r = await relayClient(port, { ...env, ...extra }, args);
    t.equal(r.status, 3, `${what}: the app's exit status`);
    t.match(r.err, line, `${what}: the log says why`);
    t.equal(readReport(dir, 'error'), 'StartTlsError: TLS not started: the helper closed the control socket without a reply', `${what}: the app saw the failure`);
    t.notOk(existsSync(join(dir, 'answer')), `${what}: no byte went through`);
  }
  const sys = await relayClient(port, env, ['-v', '-k', 'mail.example.test']);
  t.match(sys.err, /checked against \/etc\/ssl\/certs\/ca-certificates\.crt/, 'no CAFILE: the system trust store');
});

t.test('an expired server certificate is refused', async (t) => {
  const dir = tempDir(t);
  const ca = selfSigned(dir, 'ca', { subject: '/CN=Test Root', ca: true });
  const server = issue(dir, 'server', ca, { subject: '/CN=mail.example.test', san: 'DNS:mail.example.test', days: -1 });
  const { port } = await demoServer(t, dir, server);
  const r = await relayClient(port, { PATH: process.env.PATH, REPORT: dir, CAFILE: ca.cert }, ['-k', 'mail.example.test']);
  t.equal(r.status, 3);
  t.match(r.err, /server certificate refused: certificate has expired/);
});

t.test('--insecure takes any certificate and says so', async (t) => {
  const dir = tempDir(t);
  const server = selfSigned(dir, 'self', { subject: '/CN=mail.example.test', san: 'DNS:mail.example.test' });
  const { port } = await demoServer(t, dir, server);
  const r = await relayClient(port, { PATH: process.env.PATH, REPORT: dir }, ['--insecure', '-k', 'wrong.example.test']);
  t.equal(r.status, 0, r.err);
  t.match(r.err, /server certificate not checked \(--insecure\): self-signed certificate/);
  t.equal(vars(dir).SSL_SERVER_VERIFY, 'FAILED:self-signed certificate');
});

t.test('the name: TCPREMOTEHOST by default, an IP address checked but not sent as SNI, none at all refused', async (t) => {
  const dir = tempDir(t);
  const { ca, server } = pki(dir, 'DNS:localhost,IP:127.0.0.1');
  const { port } = await demoServer(t, dir, server);
  const env = { PATH: process.env.PATH, REPORT: dir, CAFILE: ca.cert };
  // tcpclient sets TCPREMOTEHOST from a DNS lookup, and this machine has no DNS: set it as a lookup would.
  const byHost = await run('tcpclient', ['-RH', '127.0.0.1', String(port), 'env', 'TCPREMOTEHOST=localhost', CLIENT, process.execPath, RELAY_CLIENT], env);
  t.equal(byHost.status, 0, byHost.err);
  t.equal(vars(dir).SSL_TLS_SNI, 'localhost', 'TCPREMOTEHOST was checked and sent');
  const byIp = await relayClient(port, env, ['-k', '127.0.0.1']);
  t.equal(byIp.status, 0, byIp.err);
  t.equal(vars(dir).SSL_TLS_SNI, undefined, 'no SNI for an address');
  t.match(readReport(dir, 'answer'), /sni=none$/, 'the server got no name');
  const none = await relayClient(port, env, []);
  t.equal(none.status, 100);
  t.match(none.err, /^ucspi-tls-client: pid \d+: fatal: no server name to check the certificate against: give -k NAME \(tcpclient -H leaves TCPREMOTEHOST unset\) \(see ucspi-tls-client --help\)\n$/);
});

t.test('against openssl s_server: TLS at once, a client certificate that the server requires', async (t) => {
  const dir = tempDir(t);
  const { ca, server } = pki(dir);
  const client = issue(dir, 'client', ca, { subject: '/O=Example/CN=relay.example.test', type: 'ec' });
  const port = await freePort();
  const s = new Launcher('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', server.cert, '-key', server.key,
    '-CAfile', ca.cert, '-Verify', '1', '-verify_return_error', '-rev', '-naccept', '1'], { PATH: process.env.PATH });
  t.teardown(() => s.stop());
  await s.ready(port);
  const env = { PATH: process.env.PATH, REPORT: dir, MODE: 'direct', CAFILE: ca.cert, CERTFILE: client.cert, KEYFILE: client.key };
  const r = await relayClient(port, env, ['-v', '-k', 'mail.example.test']);
  t.equal(r.status, 0, r.err);
  t.equal(readReport(dir, 'answer'), 'slt revo olleh', 's_server -rev answered through TLS');
  const v = vars(dir);
  t.equal(v.SSL_CLIENT_S_DN_CN, 'relay.example.test', 'our own certificate in SSL_CLIENT_*');
  t.equal(v.SSL_SERVER_S_DN_CN, 'mail.example.test');
  t.match(s.out + s.err, /relay\.example\.test/, 's_server saw the client certificate');
});

t.test('the app runs with fds 0-2, the UCSPI-TLS fds 3-5 and the connection on 6/7; configuration stays out of its environment', async (t) => {
  const dir = tempDir(t);
  const { ca, server } = pki(dir);
  const { port } = await demoServer(t, dir, server);
  const client = issue(dir, 'client', ca, { subject: '/CN=relay' });
  const env = { PATH: process.env.PATH, REPORT: dir, CAFILE: ca.cert, CERTFILE: client.cert, KEYFILE: client.key };
  const r = await run('tcpclient', ['-RH', '127.0.0.1', String(port), CLIENT, '-k', 'mail.example.test', APP], env);
  t.equal(r.status, 0, r.err);
  t.same(appFds(dir), ['0', '1', '2', '3', '4', '5', '6', '7']);
  const appEnv = readReport(dir, 'env');
  t.match(appEnv, /^SSLCTLFD=3$/m);
  t.match(appEnv, /^SSLREADFD=4$/m);
  t.match(appEnv, /^SSLWRITEFD=5$/m);
  t.notMatch(appEnv, /^(CAFILE|CERTFILE|KEYFILE)=/m);
  t.match(appEnv, /^TCPREMOTEPORT=/m, "tcpclient's variables stay");
});

t.test('bad configuration: one line, exit 111 or 100, the app never runs', async (t) => {
  const dir = tempDir(t);
  const { ca, server } = pki(dir);
  const other = selfSigned(dir, 'other', { subject: '/CN=other' });
  const { port } = await demoServer(t, dir, server);
  const base = { PATH: process.env.PATH, REPORT: dir };
  const cases: Array<[NodeJS.ProcessEnv, string[], number, string]> = [
    [{ CAFILE: join(dir, 'missing.pem') }, ['-k', 'a.test'], 111, `cannot read CAFILE ${join(dir, 'missing.pem')}: no such file`],
    [{ CAFILE: ca.cert, CERTFILE: server.cert, KEYFILE: other.key }, ['-k', 'a.test'], 111, `KEYFILE ${other.key} does not match the certificate in CERTFILE ${server.cert}`],
    [{ CAFILE: ca.cert, TLS_MIN_VERSION: '1.4' }, ['-k', 'a.test'], 111, "TLS_MIN_VERSION: '1.4' is not one of 1.0, 1.1, 1.2, 1.3"],
    [{ CAFILE: ca.cert }, ['-k', '*.a.test'], 100, "--servername: '*.a.test' is not a host name or IP address"],
    [{ CAFILE: ca.cert }, ['--bogus'], 100, 'unknown option --bogus'],
  ];
  for (const [extra, args, status, line] of cases) {
    const r = await relayClient(port, { ...base, ...extra }, args);
    t.equal(r.status, status, line);
    const usage = status === 100 ? ' (see ucspi-tls-client --help)' : '';
    t.match(r.err, new RegExp(`^ucspi-tls-client: pid \\d+: fatal: ${`${line}${usage}`.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n$`));
  }
  t.notOk(existsSync(join(dir, 'vars.json')), 'the app never ran');
  const noConn = await run(CLIENT, ['-k', 'a.test', 'true'], { PATH: process.env.PATH });
  t.equal(noConn.status, 111);
  t.match(noConn.err, /^ucspi-tls-client: pid \d+: fatal: no connection on fds 6 and 7 \(a socket\): run me under tcpclient\n$/);
});

t.test('a server that never answers: the handshake times out, the app sees the failure', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const silent = await tcpserver(port, { PATH: process.env.PATH }, ['sleep', '20']);
  t.teardown(() => silent.stop());
  const started = Date.now();
  const r = await relayClient(port, { PATH: process.env.PATH, REPORT: dir, MODE: 'direct' }, ['-t', '1', '--insecure']);
  t.equal(r.status, 3);
  t.match(r.err, /ucspi-tls-client: pid \d+: handshake timed out after 1 s/);
  t.ok(Date.now() - started < 10000, 'no wait for the server');
  t.match(readReport(dir, 'error'), /^StartTlsError: /);
});

t.test('a server that reads the ClientHello and closes: the client says so at once, not at its time limit', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  // Reads what comes for a moment, then ends with a FIN (nothing left unread, so no reset).
  const closing = await tcpserver(port, { PATH: process.env.PATH }, ['sh', '-c', 'timeout 0.5 cat >/dev/null']);
  t.teardown(() => closing.stop());
  // With -t 600 a helper that waited for the rest of the handshake would outlive run()'s limit.
  const r = await relayClient(port, { PATH: process.env.PATH, REPORT: dir, MODE: 'direct' }, ['-t', '600', '--insecure']);
  t.equal(r.signal, null, 'ended by itself');
  t.equal(r.status, 3, "the app's status: it saw the failure");
  t.match(r.err, /ucspi-tls-client: pid \d+: handshake failed: server closed the connection during the handshake\n/);
  t.match(readReport(dir, 'error'), /^StartTlsError: /);
});
