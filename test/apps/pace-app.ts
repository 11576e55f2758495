// An app for the memory tests. After STARTTLS (`y`) it either sends, from SIGUSR1 on,
// $APP_BYTES of seeded pseudo-random data as fast as it can and half-closes (MODE=send), or
// reads its channel at
// $PACE bytes per second (0: not at all) until SIGUSR1, then as fast as it can, to EOF
// (MODE=recv); $EARLY, if set, it writes to its TLS channel before asking for TLS. It writes its pid to $REPORT/pid once TLS is up and SIGUSR1 is awaited, and
// what it sent or received (sha256, bytes) to $REPORT/pace.json at the end.
import { createHash } from 'node:crypto';
import { readSync, writeFileSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { ChunkSource } from '../chunks';

const report = process.env.REPORT!;

/** A read that waits: a test runner's hooks in this process may have made the fd non-blocking. */
function readWait(fd: number, buf: Buffer, len: number): number {
  for (;;) {
    try {
      return readSync(fd, buf, 0, len, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}

// Plaintext: banner, one line (STARTTLS), go-ahead.
writeSync(1, '220 pace\r\n');
const one = Buffer.alloc(1);
while (readWait(0, one, 1) === 1 && one[0] !== 0x0a);
writeSync(1, '220 go\r\n');
// $EARLY: bytes written to the TLS write channel before asking for TLS; they go out first.
if (process.env.EARLY !== undefined) writeSync(5, process.env.EARLY);
writeSync(3, 'y');
while (readWait(3, one, 1) === 1); // EOF on the control socket: TLS is up

const done = (r: { sha: string; bytes: number }): void => {
  writeFileSync(join(report, 'pace.json'), JSON.stringify(r));
  process.exit(0);
};

if (process.env.MODE === 'send') {
  const output = new Socket({ fd: 5, readable: false, writable: true });
  process.once('SIGUSR1', () => {
    void new ChunkSource(Number(process.env.SEED ?? 1), Number(process.env.APP_BYTES ?? 0), Number.POSITIVE_INFINITY).pipeTo(output).then((r) => {
      output.end(() => done(r));
    });
  });
  setInterval(() => {}, 1 << 30); // wait for the signal
  writeFileSync(join(report, 'pid'), String(process.pid));
} else {
  const pace = Number(process.env.PACE ?? 0);
  let fast = false;
  process.on('SIGUSR1', () => (fast = true));
  writeFileSync(join(report, 'pid'), String(process.pid));
  const h = createHash('sha256');
  const buf = Buffer.alloc(64 * 1024);
  const started = Date.now();
  let bytes = 0;
  const step = (): void => {
    const allowed = fast ? Number.POSITIVE_INFINITY : (pace * (Date.now() - started)) / 1000;
    while (bytes < allowed) {
      const n = readWait(4, buf, Math.min(buf.length, Math.ceil(allowed - bytes)));
      if (n === 0) return done({ sha: h.digest('hex'), bytes });
      h.update(buf.subarray(0, n));
      bytes += n;
      if (fast) break; // one read per turn, so that SIGUSR1 and timers still run
    }
    setTimeout(step, fast ? 0 : 10);
  };
  step();
}
