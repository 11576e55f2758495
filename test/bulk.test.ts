// 64 MiB each way after STARTTLS, byte-exact (sha256 at both ends), with half-close each
// way: the contract's relay rows, in both modes (the helper under tcpserver, the server).
import t from 'tap';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { hashUntilEnd, Lines, logged, sendRandom, sinkExchange, startTls, waitFor } from './helpers';
import { MODES } from './modes';

const BULK = 64 * 1024 * 1024;

for (const mode of MODES) {
  t.test(mode.name, async (t) => {
    t.test('client half-closes first: 64 MiB in, then 64 MiB out after the EOF', async (t) => {
      const s = await mode.serve(t, { BULK: String(BULK) }, ['-v']);
      const tls = await startTls(s.port, { allowHalfOpen: true });
      // close_notify + FIN after the bytes: the app must see EOF, and still be able to answer
      const { sent, received } = await sinkExchange(t, tls, BULK);
      const got = await received;
      t.equal((await waitFor(join(s.dir, 'sink.sha'))).trim(), sent, 'client -> app: every byte, in order');
      t.equal(got.bytes, BULK);
      t.equal(got.sha, (await waitFor(join(s.dir, 'src.sha'))).trim(), 'app -> client after the client half-closed');
      t.equal(await s.appStatus(), 0);
      await s.finish(t);
    });

    t.test('app half-closes first: 64 MiB out, close_notify, then 64 MiB in', async (t) => {
      const s = await mode.serve(t, { BULK: String(BULK) }, ['-v']);
      const tls = await startTls(s.port, { allowHalfOpen: true });
      const lines = new Lines(tls as unknown as Socket);
      tls.write('SOURCE\r\n');
      t.equal(await lines.line(), '354 take');
      const early = lines.detach();
      const received = hashUntilEnd(tls);
      tls.unshift(early);
      tls.resume();
      const got = await received; // ends on the app's close_notify
      t.equal(got.bytes, BULK);
      t.equal(got.sha, (await waitFor(join(s.dir, 'src.sha'))).trim(), 'app -> client: every byte, then EOF');
      const sent = await sendRandom(tls, BULK); // the client can still send after the server's close_notify
      tls.end();
      t.equal((await waitFor(join(s.dir, 'sink.sha'), 60000)).trim(), sent, 'client -> app after the app half-closed');
      t.equal(await s.appStatus(), 0);
      // 64 MiB plus the app's '354 take' line out; 64 MiB plus the 'SOURCE' line in.
      t.ok(await logged(s.launcher, new RegExp(`^${mode.conn}TLS ended: 67108874 bytes to client, 67108872 bytes to app$`, 'm')), 'the bytes each way, logged');
      await s.finish(t);
    });
  });
}
