// --implicit: the handshake first (ports 465, 993, 995), then the app with the plaintext on
// fds 0/1 and the session's variables in its environment. In both modes: the helper under
// tcpserver and the resident server.
import t, { type Test } from 'tap';
import { chmodSync, existsSync, readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { spawnSync } from 'node:child_process';
import {
  appFds, appForAnyUser, DEMO, hashUntilEnd, Lines, logged, makeCert, readReport, run, sendRandom, tempDir, uidsOf, waitFor,
} from './helpers';
import { MODES, type Mode, type Served, type ServeOptions } from './modes';
import { issue, selfSigned } from './pki';

function tlsClient(port: number, o: ConnectionOptions = {}): Promise<TLSSocket> {
  return new Promise((res, rej) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'mail.example.test', rejectUnauthorized: false, ...o });
    s.once('secureConnect', () => res(s));
    s.once('error', rej);
  });
}

function rows(t: Test, mode: Mode): void {
  const serve = (t: Test, env: Record<string, string>, flags: string[], o: ServeOptions = {}): Promise<Served> =>
    mode.serve(t, env, ['-v', '--implicit', ...flags], o);
  const line = (message: string): RegExp => new RegExp(`^${mode.conn}${message}$`, 'm');
  /**
   * A failed handshake: the helper's stub exits 98 (tcpserver's end line) and the helper says
   * why; the server starts nothing, and one line names the client and says why.
   */
  const noApp = async (t: Test, s: Served, why: string): Promise<void> => {
    if (mode.program === 'ucspi-tls-wrap') {
      t.equal(await s.appStatus(), 98, 'the stub exits 98');
      t.match(s.log(), line(why));
      return;
    }
    const re = new RegExp(`^ucspi-tls-server: connection from 127\\.0\\.0\\.1 port \\d+: ${why}; no app started \\([\\d.]+ s\\)$`, 'm');
    t.ok(await logged(s.launcher, re), `one line: the client, "${why}", no app started`);
    t.notMatch(s.log(), /: start: /, 'no start line');
  };

  t.test('the app starts after the handshake: fds 0-2 only, SSL_* in its environment, secrets and forged variables out', async (t) => {
    const s = await serve(t, { SSL_CLIENT_VERIFY: 'SUCCESS', SSLCTLFD: '9' }, []);
    const tls = await tlsClient(s.port);
    const lines = new Lines(tls as unknown as Socket);
    t.equal(await lines.line(), '220 test ESMTP', 'the banner came through TLS');
    tls.write('NOOP\r\n');
    t.equal(await lines.line(), '250 no NOOP');
    tls.write('QUIT\r\n');
    t.equal(await lines.line(), '221 bye');
    t.same(appFds(s.dir), ['0', '1', '2'], 'no UCSPI-TLS fds');
    t.match(readReport(s.dir, 'fds'), /^0 socket:\[\d+\]$/m, 'fd 0 is a socket of ours, not the connection');
    const env = readReport(s.dir, 'env');
    t.match(env, /^SSL_PROTOCOL=TLSv1\.3$/m);
    t.match(env, /^SSL_TLS_SNI=mail\.example\.test$/m);
    t.match(env, /^SSL_SERVER_S_DN_CN=mail\.example\.test$/m);
    t.match(env, new RegExp(`^SSL_VERSION_INTERFACE=${mode.program}/\\d`, 'm'));
    t.match(env, /^TCPREMOTEIP=127\.0\.0\.1$/m, "tcpserver's variables are there");
    t.notMatch(env, /^(SSLCTLFD|SSLREADFD|SSLWRITEFD|CERTFILE|KEYFILE|SSL_CLIENT_VERIFY)=/m);
    t.equal(await s.appStatus(), 0);
    t.ok(await logged(s.launcher, line('TLS ended: \\d+ bytes to client, \\d+ bytes to app')));
    t.match(s.log(), line('TLS started: TLSv1\\.3 \\S+ sni=mail\\.example\\.test'));
    t.match(s.log(), mode.appEnded(0));
    tls.destroy();
    await s.finish(t);
  });

  t.test('1 MiB each way, byte-exact, with the client half-closing first', async (t) => {
    const bulk = 1 << 20;
    const s = await serve(t, { BULK: String(bulk) }, []);
    const tls = await tlsClient(s.port, { allowHalfOpen: true } as ConnectionOptions);
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
    t.equal((await waitFor(join(s.dir, 'sink.sha'))).trim(), sent, 'client -> app');
    t.equal(got.bytes, bulk);
    t.equal(got.sha, (await waitFor(join(s.dir, 'src.sha'))).trim(), 'app -> client');
    t.equal(await s.appStatus(), 0);
    await s.finish(t);
  });

  t.test('openssl s_client and the demo app: the app knows TLS is on and offers no STARTTLS', async (t) => {
    const s = await serve(t, {}, [], { app: [DEMO] });
    const r = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${s.port}`, '-servername', 'mail.example.test', '-quiet'], {
      input: 'EHLO x\r\nSTARTTLS\r\nTLS\r\nQUIT\r\n', encoding: 'utf8', timeout: 20000,
    });
    t.match(r.stdout, /^220 demo ESMTP \(TLS\)\r\n250-demo\r\n250 HELP\r\n503 5\.5\.1 TLS not available now\r\n250 TLSv1\.3 \S+ sni=mail\.example\.test\r\n221 bye\r\n$/);
    t.equal(await s.appStatus(), 0);
    await s.finish(t);
  });

  t.test('no TLS from the client: one log line, exit 98, the app never runs', async (t) => {
    const s = await serve(t, {}, ['-t', '1']);
    const plain = netConnect({ port: s.port, host: '127.0.0.1' });
    plain.on('error', () => {});
    plain.write('EHLO plaintext.example\r\n');
    plain.resume();
    await noApp(t, s, 'handshake failed: client sent [^\\n]*, not a TLS ClientHello');
    if (mode.program === 'ucspi-tls-wrap') t.match(s.log(), line('app not started: no TLS'));
    t.notOk(existsSync(join(s.dir, 'pid')), 'the app never ran');
    plain.destroy();
    await s.finish(t);
  });

  t.test('a silent client: the handshake times out, exit 98', async (t) => {
    const s = await serve(t, {}, ['-t', '1']);
    const silent = netConnect({ port: s.port, host: '127.0.0.1' });
    silent.on('error', () => {});
    await noApp(t, s, 'handshake timed out after 1 s');
    t.notOk(existsSync(join(s.dir, 'pid')));
    silent.destroy();
    await s.finish(t);
  });

  t.test('-y: a client certificate from CAFILE reaches the app as SSL_CLIENT_*; none, and the app never runs', async (t) => {
    const pki = tempDir(t);
    const ca = selfSigned(pki, 'ca', { subject: '/CN=Client CA', ca: true });
    const alice = issue(pki, 'alice', ca, { subject: '/O=Example/CN=alice' });
    const s = await serve(t, { CAFILE: ca.cert }, ['-y']);
    const tls = await tlsClient(s.port, { cert: readFileSync(alice.cert), key: readFileSync(alice.key) });
    const lines = new Lines(tls as unknown as Socket);
    t.equal(await lines.line(), '220 test ESMTP');
    tls.write('QUIT\r\n');
    await lines.line();
    const env = await waitFor(join(s.dir, 'env'));
    t.match(env, /^SSL_CLIENT_VERIFY=SUCCESS$/m);
    t.match(env, /^SSL_CLIENT_S_DN_CN=alice$/m);
    t.match(env, /^SSL_CLIENT_I_DN=CN=Client CA$/m);
    t.equal(await s.appStatus(), 0);
    tls.destroy();
    await s.finish(t);

    const two = await serve(t, { CAFILE: ca.cert }, ['-y']);
    const refused = await tlsClient(two.port).then(
      (c) => new Promise<string>((res) => { c.on('error', (e) => res(e.message)); c.on('end', () => res('end')); c.resume(); }),
      (e: Error) => e.message,
    );
    t.match(refused, /certificate required|end|socket hang up|ECONNRESET/, 'the client got no session');
    await noApp(t, two, 'handshake failed: (client certificate refused|certificate required|peer did not return a certificate)[^\\n]*');
    t.notOk(existsSync(join(two.dir, 'pid')), 'the app never ran');
    await two.finish(t);
  });

  t.test('an app that cannot be run: one line, exit 127, before any TLS', async (t) => {
    if (mode.program === 'ucspi-tls-wrap') {
      const s = await serve(t, {}, [], { app: ['/nonexistent/app'] });
      const c = netConnect({ port: s.port, host: '127.0.0.1' });
      c.on('error', () => {});
      c.resume();
      t.equal(await s.appStatus(), 127);
      t.match(s.log(), /^ucspi-tls-wrap: pid \d+: fatal: cannot run \/nonexistent\/app: no such file$/m);
      c.destroy();
      await s.finish(t);
    } else {
      // The server checks the app once, at start, before it listens.
      const dir = tempDir(t);
      const certs = makeCert(dir);
      const r = await mode.runAlone(['--implicit'], ['/nonexistent/app'], { PATH: process.env.PATH, CERTFILE: certs.cert, KEYFILE: certs.key });
      t.equal(r.status, 127);
      t.match(r.stderr, /^ucspi-tls-server: pid \d+: fatal: cannot run \/nonexistent\/app: no such file\n$/);
    }
  });

  t.test('started as root: the app runs as UID/GID, TLS runs as TLS_UID and the app cannot read it', async (t) => {
    const dir = tempDir(t);
    chmodSync(dir, 0o777);
    const certs = makeCert(dir);
    chmodSync(certs.key, 0o600);
    const s = await serve(t, { PROBE_FILE: certs.key, UID: '65534', GID: '65534', TLS_UID: '1', TLS_GID: '1' }, [],
      { app: [appForAnyUser(t)], dir, certs });
    const tls = await tlsClient(s.port);
    const lines = new Lines(tls as unknown as Socket);
    t.equal(await lines.line(), '220 test ESMTP');
    const app = Number(await waitFor(join(dir, 'pid')));
    const tlsPids = s.tlsPids(app);
    t.ok(tlsPids.length > 0, `the processes that run TLS: ${tlsPids.join(' ')}`);
    for (const pid of tlsPids) {
      t.equal(uidsOf(pid), '1 1 1', `${pid} runs as TLS_UID`);
      tls.write(`PROBE ${pid}\r\n`);
      t.equal(await lines.line(), '250 probed');
      const probe = readReport(dir, 'probe');
      t.match(probe, /^uid 65534$/m);
      t.match(probe, /^gid 65534$/m);
      t.match(probe, /^key denied$/m);
      t.match(readReport(dir, 'key-error'), /Permission denied/, 'EACCES on the key file');
      t.match(probe, new RegExp(`^target ${pid}$`, 'm'));
      t.match(probe, /^helper-mem denied$/m, `the app cannot open /proc/${pid}/mem`);
      t.match(probe, /^helper-environ denied$/m);
    }
    tls.write('QUIT\r\n');
    await lines.line();
    if (mode.program === 'ucspi-tls-wrap') t.match(s.log(), /helper now runs as 1:1/);
    t.equal(await s.appStatus(), 0);
    tls.destroy();
    await s.finish(t);
  });

  t.test('mailfront on the SMTPS port: swaks --tls-on-connect delivers a message', async (t) => {
    const s = await serve(t, { PLUGINS: 'accept' }, [], { app: ['mailfront', 'smtp', 'echo'] });
    const r = await run('swaks', ['--tls-on-connect', '--server', `127.0.0.1:${s.port}`, '--from', 'alice@example.test', '--to', 'bob@example.test',
      '--body', 'over implicit TLS'], { PATH: process.env.PATH }, 30000);
    t.equal(r.status, 0, r.out);
    t.match(r.out, /=== TLS started with cipher TLSv1\.[23]:/);
    t.match(r.out, /<~ {2}250 /);
    t.ok(await logged(s.launcher, /mailfront\[\d+\]: RCPT TO:<bob@example\.test>/), 'the echo back-end got the envelope');
    t.equal(await s.appStatus(), 0);
    await s.finish(t);
  });
}

for (const mode of MODES) t.test(mode.name, async (t) => rows(t, mode));
