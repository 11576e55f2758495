// Seeded pseudo-random data in random chunk sizes with random pauses: what the integrity
// tests send from either end, hashed as it goes.
import { createHash, randomBytes } from 'node:crypto';
import { prng } from './prng';

/** One pool of random bytes; chunks are slices at random offsets (cheap, and no two alike). */
const POOL = randomBytes(4 * 1024 * 1024);
const MAX_CHUNK = 256 * 1024;

export class ChunkSource {
  private readonly rand: () => number;
  constructor(
    seed: number,
    private readonly total: number,
    /** One pause in this many chunks, of up to maxPauseMs. */
    private readonly pauseEvery = 64,
    private readonly maxPauseMs = 5,
  ) {
    this.rand = prng(seed);
  }

  async pipeTo(w: NodeJS.WritableStream): Promise<{ sha: string; bytes: number }> {
    const h = createHash('sha256');
    let sent = 0;
    while (sent < this.total) {
      const size = Math.min(this.total - sent, 1 + Math.floor(this.rand() * MAX_CHUNK));
      const at = Math.floor(this.rand() * (POOL.length - size));
      const chunk = POOL.subarray(at, at + size);
      h.update(chunk);
      sent += size;
      if (!w.write(chunk)) await new Promise((r) => w.once('drain', r));
      if (this.rand() * this.pauseEvery < 1) await new Promise((r) => setTimeout(r, this.rand() * this.maxPauseMs));
    }
    return { sha: h.digest('hex'), bytes: sent };
  }
}
