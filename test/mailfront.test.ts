// A real mail server that speaks UCSPI-TLS, driven by a real SMTP client.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { baseEnv, freePort, HELPER, makeCert, tcpserver, tempDir } from './helpers';

t.test('mailfront under tcpserver and ucspi-tls-wrap, swaks --tls: the message is accepted', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const env = baseEnv(makeCert(dir), { UCSPITLS: '', PLUGINS: 'starttls-ucspi:accept' });
  const srv = await tcpserver(port, env, [HELPER, '-v', 'mailfront', 'smtp', 'echo']);
  t.teardown(() => srv.stop());
  const r = spawnSync('swaks', [
    '--tls', '--server', `127.0.0.1:${port}`, '--from', 'alice@example.test', '--to', 'bob@example.test',
    '--header', 'Subject: over ucspi-tls-wrap', '--body', 'hello through TLS',
  ], { encoding: 'utf8', timeout: 30000 });
  t.equal(r.status, 0, 'swaks succeeded');
  t.match(r.stdout, /<- {2}220 .*\n[^]*-> STARTTLS/);
  t.match(r.stdout, /=== TLS started with cipher TLSv1\.[23]:/);
  t.match(r.stdout, /~> DATA\n<~ {2}354/);
  t.match(r.stdout, /<~ {2}250 /, 'message accepted after STARTTLS');
  for (let i = 0; i < 250 && !/end \d+ status/.test(srv.err); i++) await new Promise((r) => setTimeout(r, 20));
  t.match(srv.err, /TLS started: TLSv1\.[23] /);
  t.match(srv.err, /mailfront\[\d+\]: RCPT TO:<bob@example\.test>/, 'the echo back-end got the envelope');
  t.match(srv.err, /mailfront\[\d+\]: bytes in: \d+ bytes out: \d+/);
  t.match(srv.err, /end \d+ status 0\b/);
});
