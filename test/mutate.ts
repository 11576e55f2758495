// Random and mutated byte strings for the fuzz tests, from a seeded PRNG (pure): the same
// seed gives the same bytes, so a failing case can be replayed.

export type Rand = () => number;

/** An integer in [lo, hi]. */
export function between(rand: Rand, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

export function pick<T>(rand: Rand, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]!;
}

export function randomBuffer(rand: Rand, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

/** Values that sit at the edges of length fields. */
const EDGES = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x3fff, 0x4000, 0x4001, 0x4800, 0x4801, 0x7fff, 0xffff];

/** Offsets of the length fields of a ClientHello in one record: record, handshake (24 bits), session id, suites. */
const HELLO_LENGTHS: Array<[number, number]> = [
  [3, 2],
  [6, 3],
  [43, 1],
];

function writeLength(b: Buffer, at: number, size: number, value: number): void {
  for (let i = size - 1; i >= 0; i--, value = Math.floor(value / 256)) if (at + i < b.length) b[at + i] = value & 0xff;
}

export type Mutation = 'flip' | 'set' | 'insert' | 'delete' | 'truncate' | 'length' | 'edge' | 'duplicate';
const MUTATIONS: readonly Mutation[] = ['flip', 'set', 'insert', 'delete', 'truncate', 'length', 'edge', 'duplicate'];

/** One mutation of `b` (a new buffer); what was done, for the failure message. */
export function mutateOnce(rand: Rand, b: Buffer): { out: Buffer; what: string } {
  const m = pick(rand, MUTATIONS);
  const at = b.length === 0 ? 0 : between(rand, 0, b.length - 1);
  const out = Buffer.from(b);
  switch (m) {
    case 'flip': {
      if (out.length === 0) return { out: randomBuffer(rand, 1), what: 'flip on nothing: 1 random byte' };
      const bit = between(rand, 0, 7);
      out[at] = out[at]! ^ (1 << bit);
      return { out, what: `flip bit ${bit} at ${at}` };
    }
    case 'set': {
      if (out.length === 0) return { out: randomBuffer(rand, 1), what: 'set on nothing: 1 random byte' };
      out[at] = between(rand, 0, 255);
      return { out, what: `set ${at} to ${out[at]}` };
    }
    case 'insert': {
      const n = between(rand, 1, 32);
      return { out: Buffer.concat([b.subarray(0, at), randomBuffer(rand, n), b.subarray(at)]), what: `insert ${n} at ${at}` };
    }
    case 'delete': {
      const n = between(rand, 1, 32);
      return { out: Buffer.concat([b.subarray(0, at), b.subarray(at + n)]), what: `delete ${n} at ${at}` };
    }
    case 'truncate':
      return { out: b.subarray(0, at), what: `truncate to ${at}` };
    case 'length': {
      const [off, size] = pick(rand, HELLO_LENGTHS);
      const value = rand() < 0.5 ? pick(rand, EDGES) : between(rand, 0, 2 ** (8 * size) - 1);
      writeLength(out, off, size, value);
      return { out, what: `length field at ${off} to ${value}` };
    }
    case 'edge': {
      const value = pick(rand, EDGES);
      writeLength(out, at, 2, value);
      return { out, what: `u16 at ${at} to ${value}` };
    }
    case 'duplicate': {
      const n = between(rand, 1, 64);
      const slice = b.subarray(at, at + n);
      const to = between(rand, 0, b.length);
      return { out: Buffer.concat([b.subarray(0, to), slice, b.subarray(to)]), what: `copy ${slice.length} from ${at} to ${to}` };
    }
  }
}

/** One to `most` mutations in a row. */
export function mutate(rand: Rand, b: Buffer, most = 3): { out: Buffer; what: string[] } {
  const what: string[] = [];
  let out = b;
  for (let i = between(rand, 1, most); i > 0; i--) {
    const r = mutateOnce(rand, out);
    out = r.out;
    what.push(r.what);
  }
  return { out, what };
}

/** Split into 1..most pieces (at least one byte each, when there are bytes). */
export function split(rand: Rand, b: Buffer, most = 4): Buffer[] {
  const n = Math.min(between(rand, 1, most), Math.max(1, b.length));
  const cuts = new Set<number>();
  while (cuts.size < n - 1) cuts.add(between(rand, 1, b.length - 1));
  const at = [0, ...[...cuts].sort((x, y) => x - y), b.length];
  return at.slice(1).map((end, i) => b.subarray(at[i]!, end));
}
