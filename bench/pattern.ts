// The bytes the benchmark moves, the same as bench/app.c makes: byte k of a stream is
// pattern[k % PATTERN_LEN], from xorshift32. A prime length, so no chunk size lines up with it.
export const PATTERN_LEN = 1000003;
const PATTERN_SEED = 2463534242;

/** The pattern twice over: any PATTERN_LEN bytes from any offset are one slice. Pure. */
export function makePattern(): Buffer {
  const b = Buffer.allocUnsafe(2 * PATTERN_LEN);
  let x = PATTERN_SEED;
  for (let i = 0; i < PATTERN_LEN; i++) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    b[i] = b[i + PATTERN_LEN] = x >>> 24;
  }
  return b;
}

/** Checks a stream against the pattern as it arrives, chunk by chunk (memcmp, no hashing). */
export class PatternCheck {
  bytes = 0;
  good = true;
  constructor(private readonly pattern: Buffer) {}
  update(chunk: Buffer): void {
    for (let at = 0; at < chunk.length; ) {
      const n = Math.min(chunk.length - at, PATTERN_LEN);
      const pos = this.bytes % PATTERN_LEN;
      if (chunk.compare(this.pattern, pos, pos + n, at, at + n) !== 0) this.good = false;
      at += n;
      this.bytes += n;
    }
  }
}

/** The slice of the pattern that continues a stream at `offset`, at most `max` bytes. Pure. */
export function patternSlice(pattern: Buffer, offset: number, max: number): Buffer {
  const pos = offset % PATTERN_LEN;
  return pattern.subarray(pos, pos + Math.min(max, PATTERN_LEN));
}
