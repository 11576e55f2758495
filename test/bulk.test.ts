// 64 MiB each way after STARTTLS, byte-exact (sha256 at both ends), with half-close each way.
import t from 'tap';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { APP, baseEnv, freePort, hashUntilEnd, HELPER, Lines, makeCert, sendRandom, startTls, tcpserver, tempDir, waitFor } from './helpers';

const BULK = 64 * 1024 * 1024;

t.test('client half-closes first: 64 MiB in, then 64 MiB out after the EOF', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const srv = await tcpserver(port, baseEnv(makeCert(dir), { REPORT: dir, BULK: String(BULK) }), [HELPER, '-v', APP]);
  t.teardown(() => srv.stop());
  const tls = await startTls(port, { allowHalfOpen: true });
  const lines = new Lines(tls as unknown as Socket);
  tls.write('SINK\r\n');
  t.equal(await lines.line(), '354 send');
  lines.detach();
  tls.resume();
  const received = hashUntilEnd(tls);
  const sent = await sendRandom(tls, BULK);
  tls.end(); // close_notify + FIN: the app must see EOF, and still be able to answer
  const got = await received;
  t.equal((await waitFor(join(dir, 'sink.sha'))).trim(), sent, 'client -> app: every byte, in order');
  t.equal(got.bytes, BULK);
  t.equal(got.sha, (await waitFor(join(dir, 'src.sha'))).trim(), 'app -> client after the client half-closed');
});

t.test('app half-closes first: 64 MiB out, close_notify, then 64 MiB in', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const srv = await tcpserver(port, baseEnv(makeCert(dir), { REPORT: dir, BULK: String(BULK) }), [HELPER, '-v', APP]);
  t.teardown(() => srv.stop());
  const tls = await startTls(port, { allowHalfOpen: true });
  const lines = new Lines(tls as unknown as Socket);
  tls.write('SOURCE\r\n');
  t.equal(await lines.line(), '354 take');
  const early = lines.detach();
  const received = hashUntilEnd(tls);
  tls.unshift(early);
  tls.resume();
  const got = await received; // ends on the app's close_notify
  t.equal(got.bytes, BULK);
  t.equal(got.sha, (await waitFor(join(dir, 'src.sha'))).trim(), 'app -> client: every byte, then EOF');
  const sent = await sendRandom(tls, BULK); // the client can still send after the server's close_notify
  tls.end();
  t.equal((await waitFor(join(dir, 'sink.sha'), 60000)).trim(), sent, 'client -> app after the app half-closed');
  for (let i = 0; i < 250 && !/end \d+ status/.test(srv.err); i++) await new Promise((r) => setTimeout(r, 20));
  // 64 MiB plus the app's '354 take' line out; 64 MiB plus the 'SOURCE' line in.
  t.match(srv.err, /TLS ended: 67108874 bytes to client, 67108872 bytes to app\n/);
});
