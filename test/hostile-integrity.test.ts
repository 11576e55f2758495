// Nothing lost: a GiB each way with random chunk sizes and pauses at both ends, hash-checked;
// half-close each way while the other direction keeps flowing; a slow reader, with the
// helper's memory measured.
import t, { type Test } from 'tap';
import { type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { hashUntilEnd, ROOT, sleep, waitFor } from './helpers';
import { ChunkSource } from './chunks';
import { endStatus, helperLog, helperPid, leftovers, privateBytes, serve, toStartTls, type Served } from './hostile';

const STREAM_APP = [process.execPath, join(ROOT, 'build', 'test', 'apps', 'stream-app.js')];
const MiB = 1024 * 1024;
// make soak: SOAK_SECONDS makes the big transfer longer (one more GiB per minute of soak).
const SOAK = Number(process.env.SOAK_SECONDS ?? 0);
const BIG = 1024 * MiB * (1 + Math.floor(SOAK / 60));

interface Flow {
  sent: { sha: string; bytes: number };
  received: { sha: string; bytes: number };
}

async function connectTls(s: Served): Promise<{ tls: TLSSocket; pid: number }> {
  const { sock } = await toStartTls(s.port).catch((e: Error) => {
    throw new Error(`${e.message}; launcher: ${s.srv.err}`);
  });
  const pid = await helperPid(s.srv);
  // The TLS socket takes allowHalfOpen from the socket it wraps: the client goes on sending after the app's close_notify.
  sock.allowHalfOpen = true;
  const tls = tlsConnect({ socket: sock, rejectUnauthorized: false, servername: 'mail.example.test' });
  await new Promise((r) => tls.once('secureConnect', r));
  return { tls, pid };
}

/** Client and app send at once; each half-closes when done; both hashes must match. */
async function both(t: Test, clientBytes: number, appBytes: number, seed: number): Promise<void> {
  t.comment(`seed ${seed}`);
  const s = await serve(t, { APP_BYTES: String(appBytes), SEED: String(seed + 1) }, ['-v'], STREAM_APP);
  const { tls, pid } = await connectTls(s);
  const received = hashUntilEnd(tls);
  const sent = await new ChunkSource(seed, clientBytes).pipeTo(tls);
  tls.end();
  const got = await received;
  const app = JSON.parse(await waitFor(join(s.dir, 'stream.json'), 600000)) as Flow;
  t.equal(app.received.bytes, clientBytes, 'client -> app: every byte');
  t.equal(app.received.sha, sent.sha, 'client -> app: the same bytes, in order');
  t.equal(got.bytes, appBytes, 'app -> client: every byte');
  t.equal(got.sha, app.sent.sha, 'app -> client: the same bytes, in order');
  t.equal(await endStatus(s.srv, pid), 0);
  t.match(helperLog(s.srv, pid).at(-1), new RegExp(`^TLS ended: ${appBytes} bytes to client, ${clientBytes} bytes to app$`));
  t.same(await leftovers(s), []);
}

t.test(`${BIG / MiB} MiB each way at once, random chunks and pauses at both ends`, (t) => both(t, BIG, BIG, 1001));

t.test('the client half-closes after 8 MiB while the app keeps sending 128 MiB', (t) => both(t, 8 * MiB, 128 * MiB, 2002));

t.test('the app half-closes after 8 MiB while the client keeps sending 128 MiB', (t) => both(t, 128 * MiB, 8 * MiB, 3003));

t.test('a slow reader: the helper holds a bounded amount, whatever the app writes', async (t) => {
  const APP_BYTES = 256 * MiB;
  const s = await serve(t, { APP_BYTES: String(APP_BYTES), SEED: '4004' }, ['-v'], STREAM_APP);
  const { tls, pid } = await connectTls(s);
  tls.end(); // nothing from the client: the app only sends
  tls.pause();
  const base = privateBytes(pid);
  let peak = base;
  let read = 0;
  // Slow: 64 KiB every 20 ms (about 3 MiB/s) for 3 s, the helper's memory sampled as it goes.
  for (let i = 0; i < 150; i++) {
    await sleep(20);
    for (let c = tls.read(); c !== null; c = read >= (i + 1) * 64 * 1024 ? null : tls.read()) read += (c as Buffer).length;
    peak = Math.max(peak, privateBytes(pid));
  }
  const rest = hashUntilEnd(tls);
  tls.resume();
  const got = await rest;
  const app = JSON.parse(await waitFor(join(s.dir, 'stream.json'), 120000)) as Flow;
  t.equal(read + got.bytes, APP_BYTES, 'every byte arrived in the end');
  t.comment(`helper private memory: ${(base / MiB).toFixed(1)} MiB at the start, ${(peak / MiB).toFixed(1)} MiB at most while ${(read / MiB).toFixed(1)} MiB were read slowly`);
  t.ok(peak - base < 32 * MiB, `the helper's memory grew by less than 32 MiB (grew ${((peak - base) / MiB).toFixed(1)} MiB) while the app had ${APP_BYTES / MiB} MiB to send`);
  t.equal(app.sent.bytes, APP_BYTES);
  t.equal(await endStatus(s.srv, pid), 0);
  t.same(await leftovers(s), []);
  (tls as unknown as Socket).destroy();
});
