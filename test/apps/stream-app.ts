// An app for the integrity tests: after STARTTLS it sends $APP_BYTES of seeded pseudo-random
// data in random chunks with random pauses, and at the same time reads its channel to EOF;
// it half-closes its side when done sending. Both hashes go to $REPORT/stream.json.
import { createHash } from 'node:crypto';
import { readSync, writeFileSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { ChunkSource } from '../chunks';

const report = process.env.REPORT!;
const bytes = Number(process.env.APP_BYTES ?? 0);
const seed = Number(process.env.SEED ?? 1);

/** A byte at a time; a test runner's hooks in this process may have made the fd non-blocking. */
function readByte(fd: number, one: Buffer): number {
  for (;;) {
    try {
      return readSync(fd, one);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}

// Plaintext: banner, one line (STARTTLS), go-ahead.
writeSync(1, '220 stream\r\n');
const one = Buffer.alloc(1);
while (readByte(0, one) === 1 && one[0] !== 0x0a);
writeSync(1, '220 go\r\n');
writeSync(3, 'y');
while (readByte(3, one) === 1); // EOF on the control socket: TLS is up

const input = new Socket({ fd: 4, readable: true, writable: false });
const output = new Socket({ fd: 5, readable: false, writable: true });
const got = createHash('sha256');
let gotBytes = 0;
let sent: { sha: string; bytes: number } | undefined;
let received: { sha: string; bytes: number } | undefined;
const finish = (): void => {
  if (sent === undefined || received === undefined) return;
  writeFileSync(join(report, 'stream.json'), JSON.stringify({ sent, received }));
  process.exit(0);
};
input.on('data', (d: Buffer) => {
  got.update(d);
  gotBytes += d.length;
});
input.on('end', () => {
  received = { sha: got.digest('hex'), bytes: gotBytes };
  finish();
});
void new ChunkSource(seed, bytes).pipeTo(output).then((r) => {
  // Exit only once every byte is out of the stream's buffer: process.exit() drops the rest.
  output.end(() => {
    sent = r;
    finish();
  });
});
