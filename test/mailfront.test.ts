// A real mail server that speaks UCSPI-TLS, driven by a real SMTP client, in both modes:
// under tcpserver and ucspi-tls-wrap, and under ucspi-tls-server.
import t from 'tap';
import { logged, run } from './helpers';
import { MODES } from './modes';

for (const mode of MODES) {
  t.test(`mailfront under ${mode.name}, swaks --tls: the message is accepted`, async (t) => {
    const s = await mode.serve(t, { UCSPITLS: '', PLUGINS: 'starttls-ucspi:accept' }, ['-v'], { app: ['mailfront', 'smtp', 'echo'] });
    const r = await run('swaks', [
      '--tls', '--server', `127.0.0.1:${s.port}`, '--from', 'alice@example.test', '--to', 'bob@example.test',
      '--header', `Subject: over ${mode.program}`, '--body', 'hello through TLS',
    ], { PATH: process.env.PATH }, 30000);
    t.equal(r.status, 0, 'swaks succeeded');
    t.match(r.out, /<- {2}220 .*\n[^]*-> STARTTLS/);
    t.match(r.out, /=== TLS started with cipher TLSv1\.[23]:/);
    t.match(r.out, /~> DATA\n<~ {2}354/);
    t.match(r.out, /<~ {2}250 /, 'message accepted after STARTTLS');
    t.equal(await s.appStatus(), 0, 'mailfront exited 0');
    t.ok(await logged(s.launcher, /mailfront\[\d+\]: bytes in: \d+ bytes out: \d+/));
    t.match(s.log(), new RegExp(`^${mode.conn}TLS started: TLSv1\\.[23] `, 'm'));
    t.match(s.log(), /mailfront\[\d+\]: RCPT TO:<bob@example\.test>/, 'the echo back-end got the envelope');
    await s.finish(t);
  });
}
