// Under tcpserver: the session an operator runs, checked from the client and from the app.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  allGone, APP, appFds, baseEnv, freePort, HELPER, Lines, makeCert, readReport, replyVars, startTls, tcpserver,
  tempDir, waitFor,
} from './helpers';
import { connect } from 'node:net';

const O_NONBLOCK = 0o4000;

t.test('STARTTLS with Node tls: Y reply, fds, flags, environment, exit status', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const port = await freePort();
  const srv = await tcpserver(port, baseEnv(certs, { REPORT: dir, QUIT_STATUS: '3', CIPHERS: 'HIGH' }), [HELPER, '-v', APP]);
  t.teardown(() => srv.stop());

  const tls = await startTls(port, { servername: 'mail.example.test' });
  const protocol = tls.getProtocol();
  const cipher = tls.getCipher().name;
  const lines = new Lines(tls as unknown as import('node:net').Socket);
  tls.write('NOOP\r\n');
  t.equal(await lines.line(), '250 yes NOOP', 'the app answers through TLS');
  tls.write('QUIT\r\n');
  t.equal(await lines.line(), '221 bye');
  await new Promise((r) => tls.once('close', r));

  await waitFor(join(dir, 'state'));
  t.equal(readReport(dir, 'state').trim(), 'tls');

  // The reply: VAR=val\0 ... \0, then EOF.
  const raw = readFileSync(join(dir, 'reply'));
  t.equal(raw.subarray(-2).toString('hex'), '0000', 'reply ends with two NULs');
  const v = replyVars(raw);
  t.equal(v.get('SSL_PROTOCOL'), protocol);
  t.equal(v.get('SSL_CIPHER'), cipher);
  t.equal(v.get('SSL_CIPHER_EXPORT'), 'false');
  t.equal(v.get('SSL_CIPHER_USEKEYSIZE'), String(/256|CHACHA/.test(cipher) ? 256 : 128));
  t.equal(v.get('SSL_SESSION_RESUMED'), 'Initial');
  t.equal(v.get('SSL_SECURE_RENEG'), 'false', 'TLS 1.3 has no renegotiation');
  t.equal(v.get('SSL_COMPRESS_METHOD'), 'NULL');
  t.equal(v.get('SSL_VERSION_INTERFACE'), 'ucspi-tls-wrap/0.1.0');
  t.equal(v.get('SSL_VERSION_LIBRARY'), `OpenSSL/${process.versions.openssl}`);
  t.equal(v.get('SSL_TLS_SNI'), 'mail.example.test');
  t.equal(v.get('SSL_SERVER_S_DN'), 'CN=mail.example.test,OU=Mail,O=Example Org,C=DE');
  t.equal(v.get('SSL_SERVER_S_DN_CN'), 'mail.example.test');
  t.equal(v.get('SSL_SERVER_S_DN_O'), 'Example Org');
  t.equal(v.get('SSL_SERVER_I_DN_C'), 'DE');
  t.equal(v.get('SSL_SERVER_M_VERSION'), '3');
  t.equal(v.get('SSL_SERVER_A_KEY'), 'rsaEncryption');
  t.equal(v.get('SSL_SERVER_A_SIG'), 'sha256WithRSAEncryption');
  const x = new (await import('node:crypto')).X509Certificate(readFileSync(certs.cert));
  t.equal(v.get('SSL_SERVER_M_SERIAL'), x.serialNumber.toUpperCase());
  t.equal(v.get('SSL_SERVER_V_START'), x.validFrom);
  t.equal(v.get('SSL_SERVER_V_END'), x.validTo);

  // The app saw exactly 0, 1, 2 and the three named fds.
  t.same(appFds(dir), ['0', '1', '2', '3', '4', '5']);
  const env = readReport(dir, 'env');
  t.match(env, /^SSLCTLFD=3$/m);
  t.match(env, /^SSLREADFD=4$/m);
  t.match(env, /^SSLWRITEFD=5$/m);
  t.match(env, /^TCPREMOTEIP=127\.0\.0\.1$/m, "the launcher's variables pass through");
  t.notMatch(env, /^(CERTFILE|KEYFILE|CIPHERS)=/m, 'no TLS configuration in the app environment');
  t.equal(parseInt(readReport(dir, 'fd0-flags'), 8) & O_NONBLOCK, 0, 'fd 0 blocking in plaintext');

  // tcpserver saw the app's exit status through the helper; everything is gone.
  const pid = Number(readReport(dir, 'pid'));
  await t.resolves(async () => {
    for (let i = 0; i < 250 && !/end \d+ status/.test(srv.err); i++) await new Promise((r) => setTimeout(r, 20));
  });
  t.match(srv.err, /end \d+ status 768\b/, 'exit status is the app\'s (tcpserver prints the wait status: 3 << 8)');
  t.match(srv.err, /ucspi-tls-wrap: pid \d+: TLS started: TLSv1\.3 /);
  const helperPid = Number(/ok (\d+) /.exec(srv.err)?.[1]);
  t.ok(await allGone([pid, helperPid]), 'no process left');
});

t.test('openssl s_client -starttls smtp, TLS 1.2: secure renegotiation, a line both ways, close_notify', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const port = await freePort();
  const srv = await tcpserver(port, baseEnv(certs, { REPORT: dir }), [HELPER, APP]);
  t.teardown(() => srv.stop());
  const r = spawnSync('openssl', ['s_client', '-tls1_2', '-starttls', 'smtp', '-connect', `127.0.0.1:${port}`, '-servername', 'mail.example.test', '-ign_eof', '-msg'], {
    input: 'NOOP\r\nQUIT\r\n',
    encoding: 'latin1',
    timeout: 20000,
  });
  t.match(r.stdout, /250 yes NOOP/);
  t.match(r.stdout, /221 bye/);
  t.match(r.stdout, /Protocol\s*: TLSv1\.2/);
  t.match(r.stdout, /221 bye[^]*<<< TLS 1\.2, Alert \[length 0002\], warning close_notify/, 'the app closing its side sends close_notify');
  await waitFor(join(dir, 'state'));
  const v = replyVars(readFileSync(join(dir, 'reply')));
  t.equal(v.get('SSL_PROTOCOL'), 'TLSv1.2');
  t.equal(v.get('SSL_SECURE_RENEG'), 'true', 'openssl offers renegotiation_info');
  t.equal(v.get('SSL_CIPHER'), /Cipher is (\S+)/.exec(r.stdout)?.[1]);
});

t.test('plaintext stays untouched: the app reads every byte the client sent before STARTTLS', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const port = await freePort();
  const srv = await tcpserver(port, baseEnv(certs, { REPORT: dir }), [HELPER, APP]);
  t.teardown(() => srv.stop());
  const s = connect({ port, host: '127.0.0.1' });
  const lines = new Lines(s);
  t.equal(await lines.line(), '220 test ESMTP');
  // Pipelined: the app must see all three, one at a time, from its own blocking fd 0.
  s.write('NOOP a\r\nNOOP b\r\nQUIT\r\n');
  t.equal(await lines.line(), '250 no NOOP a');
  t.equal(await lines.line(), '250 no NOOP b');
  t.equal(await lines.line(), '221 bye');
  s.destroy();
});
