// Client certificates: asked for (-Y) or required (-y), verified against CAFILE/CADIR, and
// described in the reply as mod_ssl does; the s6 names and the PEM only when asked.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { APP, freePort, HELPER, logged, pemDer, readReport, startTls, tcpserver, tempDir, tlsSession, waitFor, type Launcher } from './helpers';
import { issue, selfSigned, type Pair } from './pki';

const dir = tempDir(t, 'utw-cc-');
const server = selfSigned(dir, 'server', { subject: '/CN=mail.example.test' });
const root = selfSigned(dir, 'root', { subject: '/C=DE/O=Example Clients/CN=Example Client Root', ca: true });
const inter = issue(dir, 'inter', root, { subject: '/C=DE/O=Example Clients/CN=Example Client Intermediate', ca: true });
const alice = issue(dir, 'alice', root, {
  subject: '/C=DE/O=Example Clients/OU=Staff/CN=alice/emailAddress=alice@example.test',
  san: 'email:alice@example.test,DNS:alice.example.test,DNS:alice2.example.test',
});
const bob = issue(dir, 'bob', inter, { subject: '/C=DE/O=Example Clients/CN=bob' });
const bobChain = join(dir, 'bob-chain.pem');
writeFileSync(bobChain, readFileSync(bob.cert, 'latin1') + readFileSync(inter.cert, 'latin1'));
const rogue = selfSigned(dir, 'rogue', { subject: '/CN=alice' });

interface Server {
  port: number;
  report: string;
  srv: Launcher;
}

async function serve(t: Test, flags: string[], env: Record<string, string> = {}): Promise<Server> {
  const report = tempDir(t);
  const port = await freePort();
  const srv = await tcpserver(
    port,
    { PATH: process.env.PATH, REPORT: report, CERTFILE: server.cert, KEYFILE: server.key, CAFILE: root.cert, ...env },
    [HELPER, '-v', ...flags, APP],
  );
  t.teardown(() => srv.stop());
  return { port, report, srv };
}

function as(p: Pair, certFile = p.cert): { cert: Buffer; key: Buffer } {
  return { cert: readFileSync(certFile), key: readFileSync(p.key) };
}

/** After the handshake: does the app answer through TLS, or does the connection just end? */
async function answered(tls: TLSSocket): Promise<string> {
  let got = '';
  tls.on('data', (d: Buffer) => (got += d.toString('latin1')));
  tls.on('error', () => {});
  tls.write('NOOP\r\n');
  await new Promise<void>((r) => {
    tls.once('close', () => r());
    setTimeout(() => r(), 3000);
  });
  tls.destroy();
  return got;
}

t.test('-y with a certificate from CAFILE: SUCCESS and the SSL_CLIENT_* set', async (t) => {
  const s = await serve(t, ['-y']);
  const r = await tlsSession(s.port, s.report, { tls: as(alice) });
  t.equal(r.answer, '250 yes NOOP', 'the session goes on');
  const v = r.vars;
  t.equal(v.get('SSL_CLIENT_VERIFY'), 'SUCCESS');
  t.equal(v.get('SSL_CLIENT_M_VERSION'), '3');
  const serial = /serial=(\S+)/.exec(spawnSync('openssl', ['x509', '-in', alice.cert, '-noout', '-serial'], { encoding: 'utf8' }).stdout)?.[1];
  t.equal(v.get('SSL_CLIENT_M_SERIAL'), serial, 'serial as openssl prints it');
  t.equal(v.get('SSL_CLIENT_S_DN'), 'emailAddress=alice@example.test,CN=alice,OU=Staff,O=Example Clients,C=DE');
  t.equal(v.get('SSL_CLIENT_S_DN_CN'), 'alice');
  t.equal(v.get('SSL_CLIENT_S_DN_OU'), 'Staff');
  t.equal(v.get('SSL_CLIENT_S_DN_Email'), 'alice@example.test');
  t.equal(v.get('SSL_CLIENT_I_DN'), 'CN=Example Client Root,O=Example Clients,C=DE');
  t.equal(v.get('SSL_CLIENT_I_DN_CN'), 'Example Client Root');
  t.equal(v.get('SSL_CLIENT_SAN_Email_0'), 'alice@example.test');
  t.equal(v.get('SSL_CLIENT_SAN_DNS_0'), 'alice.example.test');
  t.equal(v.get('SSL_CLIENT_SAN_DNS_1'), 'alice2.example.test');
  t.match(v.get('SSL_CLIENT_V_START'), /^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4} GMT$/);
  t.match(v.get('SSL_CLIENT_V_END'), /GMT$/);
  t.equal(v.get('SSL_CLIENT_V_REMAIN'), '30', 'a 30-day certificate made today: 30 days remain (mod_ssl counts to the day after)');
  t.equal(v.get('SSL_CLIENT_A_SIG'), 'sha256WithRSAEncryption');
  t.equal(v.get('SSL_CLIENT_A_KEY'), 'rsaEncryption');
  t.notOk(v.has('SSL_CLIENT_CERT'), 'no PEM unless asked');
  t.notOk(v.has('SSL_PEER_CERT_HASH'), 'no s6 names unless asked');
  const raw = readFileSync(join(s.report, 'reply'));
  t.ok(raw.length < 4096, `the reply fits one 4096-byte read (${raw.length} bytes)`);
  t.ok(await logged(s.srv, /TLS started: .* client-cert=SUCCESS cn="alice"/), 'the log names the client');
});

t.test('-y without a certificate, or with one CAFILE does not vouch for: no byte reaches the app', async (t) => {
  const s = await serve(t, ['-y']);
  for (const [what, opts, why] of [
    ['no certificate', {}, /handshake failed: peer did not return a certificate/],
    ['a self-signed one', as(rogue), /client certificate refused: self-signed certificate/],
    ['one from another CA', as(bob), /client certificate refused: unable to (get local issuer certificate|verify the first certificate)/],
  ] as const) {
    // Under TLS 1.3 the client may finish before the server's verdict arrives: then it reads none.
    const got = await startTls(s.port, { tls: opts }).then(answered, (e: Error) => `(refused: ${e.message})`);
    t.notMatch(got, /250/, `${what}: the connection ends without an answer (${got})`);
    await waitFor(join(s.report, 'state'));
    t.equal(readReport(s.report, 'state').trim(), 'failed', `${what}: the app sees TLS fail (EOF, no reply)`);
    t.ok(await logged(s.srv, why), `${what}: the log says why`);
    spawnSync('rm', ['-f', join(s.report, 'state')]);
  }
});

t.test('-y: openssl s_client without a certificate gets the alert of its TLS version', async (t) => {
  const s = await serve(t, ['-y']);
  for (const [version, alert] of [['-tls1_3', /alert certificate required/], ['-tls1_2', /alert handshake failure/]] as const) {
    const r = spawnSync('openssl', ['s_client', version, '-starttls', 'smtp', '-connect', `127.0.0.1:${s.port}`, '-ign_eof'], {
      input: 'NOOP\r\n', encoding: 'utf8', timeout: 20000,
    });
    t.match(r.stdout + r.stderr, alert, `${version}: ${alert.source}`);
    t.notMatch(r.stdout, /250 yes NOOP/, `${version}: the app got nothing`);
  }
});

t.test('-Y: a certificate is optional; an unverified one is passed on as FAILED:reason', async (t) => {
  const s = await serve(t, ['-Y']);
  const none = await tlsSession(s.port, s.report);
  t.equal(none.answer, '250 yes NOOP');
  t.equal(none.vars.get('SSL_CLIENT_VERIFY'), 'NONE');
  t.notOk(none.vars.has('SSL_CLIENT_S_DN'));
  const r = await tlsSession(s.port, s.report, { tls: as(rogue) });
  t.equal(r.vars.get('SSL_CLIENT_VERIFY'), 'FAILED:self-signed certificate');
  t.equal(r.vars.get('SSL_CLIENT_S_DN_CN'), 'alice', 'the app sees the name, and that it was not verified');
  const ok = await tlsSession(s.port, s.report, { tls: as(alice) });
  t.equal(ok.vars.get('SSL_CLIENT_VERIFY'), 'SUCCESS');
});

t.test('a chain through an intermediate, and VERIFYDEPTH', async (t) => {
  const s = await serve(t, ['-y', '--cert-pem'], { VERIFYDEPTH: '1' });
  const r = await tlsSession(s.port, s.report, { tls: as(bob, bobChain) });
  t.equal(r.vars.get('SSL_CLIENT_VERIFY'), 'SUCCESS', 'one intermediate, VERIFYDEPTH=1');
  t.equal(r.vars.get('SSL_CLIENT_I_DN_CN'), 'Example Client Intermediate');
  const leaf = r.vars.get('SSL_CLIENT_CERT') ?? '';
  t.match(leaf, /^-----BEGIN CERTIFICATE-----\n/, '--cert-pem: SSL_CLIENT_CERT in PEM');
  const der = (pem: string): Buffer => Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  t.ok(der(leaf).equals(pemDer(bob.cert)), 'SSL_CLIENT_CERT is the client certificate');
  t.ok(der(r.vars.get('SSL_CLIENT_CERT_CHAIN_0') ?? '').equals(pemDer(inter.cert)), 'SSL_CLIENT_CERT_CHAIN_0 is its issuer');

  const strict = await serve(t, ['-y'], { VERIFYDEPTH: '0' });
  const got = await startTls(strict.port, { tls: as(bob, bobChain) }).then(answered, (e: Error) => `(refused: ${e.message})`);
  t.notMatch(got, /250/, 'VERIFYDEPTH=0 refuses a chain with an intermediate');
  t.ok(await logged(strict.srv, /client certificate refused: certificate chain too long/));
  const direct = await tlsSession(strict.port, strict.report, { tls: as(alice) });
  t.equal(direct.vars.get('SSL_CLIENT_VERIFY'), 'SUCCESS', 'VERIFYDEPTH=0 still takes a certificate the root signed');
});

t.test('CADIR: a directory of trust anchors', async (t) => {
  const ca = join(dir, 'cadir');
  mkdirSync(ca, { recursive: true });
  copyFileSync(root.cert, join(ca, 'root.pem'));
  writeFileSync(join(ca, 'README'), 'not a certificate\n');
  const s = await serve(t, ['-y'], { CAFILE: '', CADIR: ca });
  const r = await tlsSession(s.port, s.report, { tls: as(alice) });
  t.equal(r.vars.get('SSL_CLIENT_VERIFY'), 'SUCCESS');
});

t.test('--s6-vars: the names s6-ucspitlsd gives', async (t) => {
  const s = await serve(t, ['-y', '--s6-vars']);
  const r = await tlsSession(s.port, s.report, { tls: as(alice), servername: 'mail.example.test' });
  t.equal(r.vars.get('SSL_TLS_SNI_SERVERNAME'), 'mail.example.test');
  t.equal(r.vars.get('SSL_PEER_CERT_HASH'), `SHA256:${createHash('sha256').update(pemDer(alice.cert)).digest('hex')}`);
  t.equal(r.vars.get('SSL_PEER_CERT_SUBJECT'), '/C=DE/O=Example Clients/OU=Staff/CN=alice/emailAddress=alice@example.test');
  t.equal(r.vars.get('SSL_PROTOCOL'), 'TLSv1.3');
});
