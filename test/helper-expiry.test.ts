// ucspi-tls-wrap warns when the certificate it serves expires within 14 days: one line in
// its log (fd 2 under tcpserver), once per process, never on the connection; the client
// gets the very bytes it gets with a certificate far from its end.
import t, { type Test } from 'tap';
import type { Socket } from 'node:net';
import { APP, baseEnv, freePort, HELPER, Lines, logged, startTls, tcpserver, tempDir } from './helpers';
import { selfSigned } from './pki';

/** One STARTTLS session through the helper under tcpserver: what the client got through TLS, and the log. */
async function session(t: Test, days: number): Promise<{ answers: string[]; log: string }> {
  const dir = tempDir(t);
  const cert = selfSigned(dir, 'cert', { subject: '/CN=mail.example.test', san: 'DNS:mail.example.test', days });
  const port = await freePort();
  const srv = await tcpserver(port, baseEnv(cert, { REPORT: dir }), [HELPER, APP]);
  t.teardown(() => srv.stop());
  const tls = await startTls(port);
  const lines = new Lines(tls as unknown as Socket);
  tls.write('NOOP\r\n');
  const answers = [await lines.line()];
  tls.write('QUIT\r\n');
  answers.push(await lines.line());
  tls.destroy();
  t.ok(await logged(srv, /tcpserver: end \d+ status 0$/m), `${days} days: the helper exited 0`);
  return { answers, log: srv.err };
}

const WARNING = /^ucspi-tls-wrap: pid \d+: warning: the certificate in CERTFILE \S+\/cert\.pem \(serial [0-9A-F]+\) expires in (\d+) days?: notAfter [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4} GMT$/gm;

t.test('a certificate that expires in 3 days: exactly one warning line; none for 60 days; the client sees no difference', async (t) => {
  const soon = await session(t, 3);
  const far = await session(t, 60);
  const warnings = [...soon.log.matchAll(WARNING)];
  t.equal(warnings.length, 1, 'one warning line for the 3-day certificate');
  t.equal(warnings[0]?.[1], '3', 'expires in 3 days');
  t.equal(soon.log.split('\n').filter((l) => l.includes('warning')).length, 1, 'no other line speaks of it');
  t.notMatch(far.log, /warning/, 'none for the 60-day certificate');
  t.same(soon.answers, ['250 yes NOOP', '221 bye'], 'the session through TLS');
  t.same(soon.answers, far.answers, 'the client got the same bytes either way');
});
