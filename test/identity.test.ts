// Which certificate a client gets (SNI, RSA and ECDSA side by side), ALPN, and the
// protocol policy, seen from real clients through tcpserver.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { APP, freePort, logged, HELPER, readReport, replyVars, startTls, tcpserver, tempDir, tlsSession, pemDer, waitFor, type Launcher } from './helpers';
import { selfSigned } from './pki';

const dir = tempDir(t, 'utw-id-');
const dflt = selfSigned(dir, 'default', { subject: '/CN=default.test', san: 'DNS:default.test' });
const mail = selfSigned(dir, 'mail', { subject: '/CN=mail.example.test', san: 'DNS:mail.example.test' });
const wild = selfSigned(dir, 'wild', { subject: '/CN=*.example.org', san: 'DNS:*.example.org' });
const ec = selfSigned(dir, 'ec', { subject: '/CN=dual.test', type: 'ec' });
const rsa = selfSigned(dir, 'rsa', { subject: '/CN=dual.test' });

interface Server {
  port: number;
  report: string;
  srv: Launcher;
}

async function serve(t: Test, env: Record<string, string>, flags: string[] = []): Promise<Server> {
  const report = tempDir(t);
  const port = await freePort();
  const srv = await tcpserver(port, { PATH: process.env.PATH, REPORT: report, ...env }, [HELPER, '-v', ...flags, APP]);
  t.teardown(() => srv.stop());
  return { port, report, srv };
}

const sniEnv = {
  CERTFILE: dflt.cert,
  KEYFILE: dflt.key,
  'CERTFILE:mail.example.test': mail.cert,
  'KEYFILE:mail.example.test': mail.key,
  'CERTFILE:*.example.org': wild.cert,
  'KEYFILE:*.example.org': wild.key,
};

t.test('SNI: exact name, one-label wildcard, default pair', async (t) => {
  const s = await serve(t, sniEnv);
  for (const [servername, want, cn] of [
    ['mail.example.test', mail, 'mail.example.test'],
    ['MAIL.Example.Test', mail, 'mail.example.test'],
    ['imap.example.org', wild, '*.example.org'],
    ['a.b.example.org', dflt, 'default.test'],
    ['example.org', dflt, 'default.test'],
    ['', dflt, 'default.test'],
  ] as const) {
    const r = await tlsSession(s.port, s.report, { servername });
    t.ok(r.cert.equals(pemDer(want.cert)), `'${servername}' gets ${cn}'s certificate`);
    t.equal(r.vars.get('SSL_SERVER_S_DN_CN'), cn, 'SSL_SERVER_* describe the certificate sent');
    t.equal(r.vars.get('SSL_TLS_SNI'), servername === '' ? undefined : servername, 'SSL_TLS_SNI as the client sent it');
  }
  t.match(s.srv.err, /TLS started: TLSv1\.3 \S+ sni=imap\.example\.org/, 'the log names the server name');
});

t.test('--strict-sni refuses an unknown name with unrecognized_name; no name gets the default', async (t) => {
  const s = await serve(t, sniEnv, ['--strict-sni']);
  const err = await startTls(s.port, { servername: 'unknown.test' }).then(
    () => new Error('handshake succeeded'),
    (e: Error) => e,
  );
  t.match(err.message, /unrecognized name/, 'the client got the unrecognized_name alert');
  await waitFor(join(s.report, 'state'));
  t.equal(readReport(s.report, 'state').trim(), 'failed', 'the app saw TLS fail');
  t.ok(await logged(s.srv, /handshake refused: client asked for unknown server name "unknown\.test"/), 'the log says why');
  const ok = await tlsSession(s.port, s.report, { servername: '' });
  t.equal(ok.vars.get('SSL_SERVER_S_DN_CN'), 'default.test');
  const named = await tlsSession(s.port, s.report, { servername: 'x.example.org' });
  t.equal(named.vars.get('SSL_SERVER_S_DN_CN'), '*.example.org');
});

t.test('without a default pair, a client that names no known host is refused', async (t) => {
  const s = await serve(t, { 'CERTFILE:mail.example.test': mail.cert, 'KEYFILE:mail.example.test': mail.key });
  const r = await tlsSession(s.port, s.report, { servername: 'mail.example.test' });
  t.equal(r.vars.get('SSL_SERVER_S_DN_CN'), 'mail.example.test');
  await t.rejects(startTls(s.port, { servername: '' }), /unrecognized name/);
  t.ok(await logged(s.srv, /client sent no server name and there is no default CERTFILE/), 'the log says why');
});

t.test('RSA and ECDSA for one name: each client gets the one it supports', async (t) => {
  const s = await serve(t, { CERTFILE: `${ec.cert}:${rsa.cert}`, KEYFILE: `${ec.key}:${rsa.key}` });
  const cases = [
    ['a current client gets ECDSA (listed first)', {}, ec, 'id-ecPublicKey'],
    ['a TLS 1.3 client without ECDSA gets RSA', { sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256' }, rsa, 'rsaEncryption'],
    ['a TLS 1.3 client with only ECDSA gets ECDSA', { sigalgs: 'ecdsa_secp256r1_sha256' }, ec, 'id-ecPublicKey'],
    ['a TLS 1.2 client with only RSA suites gets RSA', { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' }, rsa, 'rsaEncryption'],
    ['a TLS 1.2 client with ECDSA suites gets ECDSA', { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256' }, ec, 'id-ecPublicKey'],
  ] as const;
  for (const [what, opts, want, alg] of cases) {
    const r = await tlsSession(s.port, s.report, { tls: opts });
    t.ok(r.cert.equals(pemDer(want.cert)), what);
    t.equal(r.vars.get('SSL_SERVER_A_KEY'), alg, `${what}: SSL_SERVER_A_KEY`);
  }
  // openssl s_client as a second opinion
  const ecdsaOnly = spawnSync('openssl', ['s_client', '-starttls', 'smtp', '-connect', `127.0.0.1:${s.port}`, '-sigalgs', 'ECDSA+SHA256'], { input: 'QUIT\r\n', encoding: 'utf8' });
  t.match(ecdsaOnly.stdout, /Peer signature type: ECDSA/, 's_client -sigalgs ECDSA+SHA256: ECDSA');
  const rsaOnly = spawnSync('openssl', ['s_client', '-starttls', 'smtp', '-connect', `127.0.0.1:${s.port}`, '-sigalgs', 'RSA-PSS+SHA256'], { input: 'QUIT\r\n', encoding: 'utf8' });
  t.match(rsaOnly.stdout, /Peer signature type: RSA-PSS/, 's_client -sigalgs RSA-PSS+SHA256: RSA');
});

/** One `openssl s_client -starttls smtp` session: what it printed, and the app's `Y` reply. */
function sClient(s: Server, args: string[]): { out: string; vars: Map<string, string> } {
  const r = spawnSync('openssl', ['s_client', '-starttls', 'smtp', '-connect', `127.0.0.1:${s.port}`, ...args], { input: 'QUIT\r\n', encoding: 'utf8', timeout: 20000 });
  const reply = join(s.report, 'reply');
  const vars = existsSync(reply) ? replyVars(readFileSync(reply)) : new Map<string, string>();
  rmSync(reply, { force: true });
  return { out: r.stdout + r.stderr, vars };
}

t.test('RSA and ECDSA side by side: OpenSSL picks the certificate from all the client offers', async (t) => {
  const dh = join(dir, 'ffdhe2048.pem');
  if (!existsSync(dh)) spawnSync('openssl', ['genpkey', '-genparam', '-algorithm', 'DH', '-pkeyopt', 'dh_param:ffdhe2048', '-out', dh]);
  const s = await serve(t, {
    CERTFILE: `${ec.cert}:${rsa.cert}`,
    KEYFILE: `${ec.key}:${rsa.key}`,
    // DHE named here (with its parameters) so that the finite-field case does not hang on the default list.
    CIPHERS: 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256',
    DHFILE: dh,
  });
  // Clients the choice from the hello used to refuse: it saw an ECDSA suite and signature
  // algorithm, took the ECDSA certificate, and OpenSSL found no suite or curve for it.
  const cases = [
    ['an ECDSA suite outside the policy, an RSA one inside', ['-cipher', 'ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-GCM-SHA256'], 'ECDHE-RSA-AES128-GCM-SHA256', 'RSA'],
    ['only the group X25519 (no P-256 for the ECDSA key)', ['-groups', 'X25519'], 'ECDHE-RSA-AES128-GCM-SHA256', 'RSA'],
    ['only the group P-384', ['-groups', 'P-384'], 'ECDHE-RSA-AES128-GCM-SHA256', 'RSA'],
    ['only the group ffdhe2048 (no elliptic curve at all)', ['-groups', 'ffdhe2048'], 'DHE-RSA-AES128-GCM-SHA256', 'RSA'],
    ['P-256 and an ECDSA suite: ECDSA still', ['-groups', 'P-256'], 'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDSA'],
  ] as const;
  for (const [what, args, cipher, sig] of cases) {
    const r = sClient(s, ['-tls1_2', ...args]);
    t.match(r.out, new RegExp(`Cipher is ${cipher}\\b`), `${what}: served with ${cipher}`);
    t.match(r.out, sig === 'RSA' ? /Peer signature type: RSA/ : /Peer signature type: ECDSA/, `${what}: signed with the ${sig} key`);
    t.equal(r.vars.get('SSL_SERVER_A_KEY'), sig === 'RSA' ? 'rsaEncryption' : 'id-ecPublicKey', `${what}: SSL_SERVER_* describe the certificate sent`);
    t.equal(r.vars.get('SSL_CIPHER'), cipher, `${what}: SSL_CIPHER`);
  }
  t.notMatch(s.srv.err, /handshake (failed|refused)/, 'no handshake failed');
});

t.test('ALPN: the chosen protocol is in the reply', async (t) => {
  const s = await serve(t, { CERTFILE: dflt.cert, KEYFILE: dflt.key, ALPN: 'smtp,imap' });
  const r = await tlsSession(s.port, s.report, { tls: { ALPNProtocols: ['pop3', 'imap'] } });
  t.equal(r.alpn, 'imap', 'the client was told imap');
  t.equal(r.vars.get('SSL_ALPN'), 'imap', 'SSL_ALPN=imap');
  const none = await tlsSession(s.port, s.report);
  t.equal(none.vars.has('SSL_ALPN'), false, 'no ALPN offered: no SSL_ALPN');
  await t.rejects(startTls(s.port, { tls: { ALPNProtocols: ['h2'] } }), /no application protocol/i, 'no common protocol: alert');
  t.ok(await logged(s.srv, /handshake failed: .*no application protocol/i), 'the log says why');
});

// The default groups, X25519MLKEM768 first where OpenSSL has it, are in runtimes.test.ts.
t.test('defaults: TLS 1.2 and 1.3 only, ECDHE with AEAD ciphers, no finite-field DHE', async (t) => {
  const s = await serve(t, { CERTFILE: dflt.cert, KEYFILE: dflt.key });
  const r13 = await startTls(s.port);
  t.equal(r13.getProtocol(), 'TLSv1.3');
  r13.destroy();
  await t.rejects(startTls(s.port, { tls: { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' } }), /protocol version|unsupported protocol/i, 'TLS 1.1 refused');
  await t.rejects(startTls(s.port, { maxVersion: 'TLSv1.2', tls: { ciphers: 'AES128-SHA:AES256-GCM-SHA384' } }), /handshake failure/, 'static-RSA ciphers refused');
  await t.rejects(startTls(s.port, { maxVersion: 'TLSv1.2', tls: { ciphers: 'ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA' } }), /handshake failure/, 'ECDHE without AEAD refused');
  await t.rejects(startTls(s.port, { maxVersion: 'TLSv1.2', tls: { ciphers: 'DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305' } }),
    /handshake failure/, 'a TLS 1.2 client offering only DHE-RSA suites is refused');
  t.ok(await logged(s.srv, /handshake failed: .*no shared cipher/i), 'the log says why');
  const ecdhe = await startTls(s.port, { maxVersion: 'TLSv1.2' });
  t.match(ecdhe.getCipher().name, /^ECDHE-RSA-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)$/, 'TLS 1.2: ECDHE with AEAD');
  ecdhe.destroy();
});

t.test('DHFILE alone: a TLS 1.2 client offering only DHE-RSA suites is served, with those parameters', async (t) => {
  const dh = join(dir, 'dh3072.pem');
  if (!existsSync(dh)) spawnSync('openssl', ['genpkey', '-genparam', '-algorithm', 'DH', '-pkeyopt', 'dh_param:ffdhe3072', '-out', dh]);
  const s = await serve(t, { CERTFILE: dflt.cert, KEYFILE: dflt.key, DHFILE: dh });
  const dhe = await startTls(s.port, { maxVersion: 'TLSv1.2', tls: { ciphers: 'DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305' } });
  t.equal(dhe.getCipher().name, 'DHE-RSA-AES128-GCM-SHA256');
  t.match(dhe.getEphemeralKeyInfo(), { type: 'DH', size: 3072 }, 'DHFILE\'s group');
  dhe.destroy();
  const ecdhe = await startTls(s.port, { maxVersion: 'TLSv1.2' });
  t.match(ecdhe.getCipher().name, /^ECDHE-/, 'a client that offers ECDHE still gets it first');
  ecdhe.destroy();
});

t.test('versions, ciphers, suites, groups and DHFILE from the environment', async (t) => {
  const dh = join(dir, 'dh3072.pem');
  if (!existsSync(dh)) spawnSync('openssl', ['genpkey', '-genparam', '-algorithm', 'DH', '-pkeyopt', 'dh_param:ffdhe3072', '-out', dh]);
  const s = await serve(t, {
    CERTFILE: dflt.cert,
    KEYFILE: dflt.key,
    TLS_MAX_VERSION: '1.2',
    CIPHERS: 'ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES256-GCM-SHA384',
    TLS_GROUPS: 'secp384r1',
    DHFILE: dh,
  });
  const a = await startTls(s.port, { tls: { ciphers: 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES256-GCM-SHA384' } });
  t.equal(a.getProtocol(), 'TLSv1.2', 'TLS_MAX_VERSION=1.2');
  t.equal(a.getCipher().name, 'ECDHE-RSA-CHACHA20-POLY1305', 'CIPHERS');
  t.match(a.getEphemeralKeyInfo(), { name: 'secp384r1' }, 'TLS_GROUPS');
  a.destroy();
  await t.rejects(startTls(s.port, { tls: { ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' } }), /handshake failure/, 'a cipher outside CIPHERS is refused');
  const b = await startTls(s.port, { tls: { ciphers: 'DHE-RSA-AES256-GCM-SHA384' } });
  t.match(b.getEphemeralKeyInfo(), { type: 'DH', size: 3072 }, 'DHFILE');
  b.destroy();

  const s13 = await serve(t, { CERTFILE: dflt.cert, KEYFILE: dflt.key, TLS_MIN_VERSION: 'TLSv1.3', CIPHERSUITES: 'TLS_CHACHA20_POLY1305_SHA256' });
  const c = await startTls(s13.port);
  t.equal(c.getCipher().name, 'TLS_CHACHA20_POLY1305_SHA256', 'CIPHERSUITES');
  c.destroy();
  await t.rejects(startTls(s13.port, { maxVersion: 'TLSv1.2' }), /protocol version|unsupported protocol/i, 'TLS_MIN_VERSION=TLSv1.3 refuses TLS 1.2');
});
