// Session resumption across processes with a ticket-key file, and OCSP stapling, as
// openssl s_client sees them.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { APP, freePort, HELPER, logged, replyVars, tcpserver, tempDir, type Launcher } from './helpers';
import { issue, selfSigned } from './pki';

const dir = tempDir(t, 'utw-res-');
const root = selfSigned(dir, 'root', { subject: '/CN=Example OCSP Root', ca: true });
const server = issue(dir, 'server', root, { subject: '/CN=mail.example.test', san: 'DNS:mail.example.test' });

async function serve(t: Test, env: Record<string, string>): Promise<{ port: number; report: string; srv: Launcher }> {
  const report = tempDir(t);
  const port = await freePort();
  const srv = await tcpserver(port, { PATH: process.env.PATH, REPORT: report, CERTFILE: server.cert, KEYFILE: server.key, ...env }, [HELPER, '-v', APP]);
  t.teardown(() => srv.stop());
  return { port, report, srv };
}

/** One s_client STARTTLS session that says QUIT and waits for the server to close. */
function sClient(port: number, args: string[]): string {
  const r = spawnSync('openssl', ['s_client', '-starttls', 'smtp', '-connect', `127.0.0.1:${port}`, '-ign_eof', ...args], {
    input: 'NOOP\r\nQUIT\r\n',
    encoding: 'utf8',
    timeout: 20000,
  });
  return r.stdout + r.stderr;
}

const reply = (report: string): Map<string, string> => replyVars(readFileSync(join(report, 'reply')));
const resumed = (report: string): string | undefined => reply(report).get('SSL_SESSION_RESUMED');

for (const version of ['-tls1_3', '-tls1_2']) {
  t.test(`TICKETKEYFILE: a new process resumes the session (${version})`, async (t) => {
    const keys = join(dir, `tickets${version}`);
    writeFileSync(keys, randomBytes(48), { mode: 0o600 });
    const s = await serve(t, { TICKETKEYFILE: keys });
    const sess = join(dir, `sess${version}`);
    const first = sClient(s.port, [version, '-servername', 'mail.example.test', '-sess_out', sess]);
    t.match(first, /^New, TLSv1\.[23]/m, 'first connection: a full handshake');
    t.match(first, /250 yes NOOP/, 'the app answered through TLS');
    t.equal(resumed(s.report), 'Initial');
    t.equal(reply(s.report).get('SSL_TLS_SNI'), 'mail.example.test', 'SSL_TLS_SNI in the full handshake');
    const second = sClient(s.port, [version, '-servername', 'mail.example.test', '-sess_in', sess]);
    t.match(second, /^Reused, TLSv1\.[23]/m, 'second connection, another helper process: resumed');
    t.equal(resumed(s.report), 'Resumed', 'SSL_SESSION_RESUMED=Resumed');
    t.equal(reply(s.report).get('SSL_TLS_SNI'), 'mail.example.test', 'SSL_TLS_SNI after the resumption too');
    t.equal(reply(s.report).get('SSL_SERVER_S_DN_CN'), 'mail.example.test', 'the name\'s one certificate in SSL_SERVER_*');
    t.ok(await logged(s.srv, /TLS started: TLSv1\.[23] \S+ sni=mail\.example\.test resumed/), 'the log says resumed, with the server name');
    if (version === '-tls1_2') {
      // A TLS 1.2 resumption echoes the client's session id on the wire: SSL_SESSION_ID is it.
      const told = (out: string): string | undefined => /^\s*Session-ID: ([0-9A-F]+)$/m.exec(out)?.[1];
      t.match(told(second), /^[0-9A-F]{64}$/, 's_client shows the session id');
      t.equal(reply(s.report).get('SSL_SESSION_ID'), told(second), 'resumed: SSL_SESSION_ID = the session id s_client was told');
    }

    // Rotation: a new key file; the old ticket gets a full handshake, not a failure.
    writeFileSync(keys, randomBytes(48));
    const third = sClient(s.port, [version, '-sess_in', sess]);
    t.match(third, /^New, TLSv1\.[23]/m, 'after rotation: a full handshake');
    t.match(third, /250 yes NOOP/, '... and the session works');
  });
}

t.test('resumed with an RSA and an ECDSA certificate for the name: no SSL_SERVER_* (none was sent)', async (t) => {
  const ec = selfSigned(dir, 'ec', { subject: '/CN=ec.example.test', type: 'ec' });
  const keys = join(dir, 'tickets-dual');
  writeFileSync(keys, randomBytes(48), { mode: 0o600 });
  const s = await serve(t, { TICKETKEYFILE: keys, CERTFILE: `${ec.cert}:${server.cert}`, KEYFILE: `${ec.key}:${server.key}` });
  const sess = join(dir, 'sess-dual');
  sClient(s.port, ['-tls1_2', '-sigalgs', 'ECDSA+SHA256', '-servername', 'mail.example.test', '-sess_out', sess]);
  t.equal(reply(s.report).get('SSL_SERVER_S_DN_CN'), 'ec.example.test', 'full handshake: the ECDSA certificate sent');
  t.match(sClient(s.port, ['-tls1_2', '-servername', 'mail.example.test', '-sess_in', sess]), /^Reused, /m);
  t.equal(resumed(s.report), 'Resumed');
  t.equal(reply(s.report).has('SSL_SERVER_S_DN'), false, 'resumed: SSL_SERVER_* absent rather than a guess');
  t.equal(reply(s.report).get('SSL_TLS_SNI'), 'mail.example.test');
});

t.test('without TICKETKEYFILE, a ticket from another process is not accepted', async (t) => {
  const s = await serve(t, {});
  const sess = join(dir, 'sess-nokeys');
  t.match(sClient(s.port, ['-sess_out', sess]), /^New, /m);
  const again = sClient(s.port, ['-sess_in', sess]);
  t.match(again, /^New, /m, 'a full handshake');
  t.match(again, /250 yes NOOP/);
  t.equal(resumed(s.report), 'Initial');
});

t.test('OCSPFILE: the response is stapled when the client asks', async (t) => {
  const serial = /serial=(\S+)/.exec(spawnSync('openssl', ['x509', '-in', server.cert, '-noout', '-serial'], { encoding: 'utf8' }).stdout)![1]!;
  const index = join(dir, 'index.txt');
  writeFileSync(index, `V\t351231235959Z\t\t${serial}\tunknown\t/CN=mail.example.test\n`);
  const req = join(dir, 'req.der');
  const resp = join(dir, 'resp.der');
  for (const args of [
    ['ocsp', '-issuer', root.cert, '-cert', server.cert, '-no_nonce', '-reqout', req],
    ['ocsp', '-index', index, '-rsigner', root.cert, '-rkey', root.key, '-CA', root.cert, '-reqin', req, '-respout', resp, '-ndays', '1'],
  ]) {
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    t.equal(r.status, 0, `openssl ${args.slice(0, 3).join(' ')}: ${r.stderr}`);
  }
  const s = await serve(t, { OCSPFILE: resp });
  const asked = sClient(s.port, ['-status']);
  t.match(asked, /OCSP Response Status: successful/, 's_client -status: a stapled response');
  t.match(asked, /Cert Status: good/);
  t.match(asked, /250 yes NOOP/);
  const plain = sClient(s.port, []);
  t.notMatch(plain, /OCSP Response Status/, 'a client that does not ask gets none');
  t.match(plain, /250 yes NOOP/);
});
