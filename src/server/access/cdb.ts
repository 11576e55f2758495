// A reader of djb's constant database (cdb), the file format tcprules writes. Pure: it reads
// a Buffer holding the whole file.
//
// The format: 256 (position, slots) pairs of 32-bit little-endian words; then the records,
// each key length, data length, key, data; then 256 hash tables of (hash, record position)
// slots, probed linearly from (hash >>> 8) % slots. The table is hash & 255.

const HEADER = 2048;

export class CdbError extends Error {
  override name = 'CdbError';
}

/** djb's hash: h = ((h << 5) + h) ^ byte from 5381, in 32 bits. */
export function cdbHash(key: Uint8Array): number {
  let h = 5381;
  for (const c of key) h = (((h << 5) + h) ^ c) >>> 0;
  return h;
}

export class Cdb {
  private constructor(private readonly buf: Buffer) {}

  /**
   * Checks every table and every record it points to, so that a lookup can never read out
   * of bounds or loop: a file cut short or overwritten is refused here, once, not met at a
   * connection. Throws CdbError saying what is wrong.
   */
  static from(buf: Buffer): Cdb {
    if (buf.length < HEADER) throw new CdbError(`${buf.length} bytes, shorter than a cdb header (${HEADER})`);
    let recordsEnd = buf.length;
    for (let t = 0; t < 256; t++) {
      const pos = buf.readUInt32LE(t * 8);
      const slots = buf.readUInt32LE(t * 8 + 4);
      if (slots === 0) continue;
      if (pos < HEADER || slots > (buf.length - pos) / 8) throw new CdbError(`hash table ${t} lies outside the file`);
      recordsEnd = Math.min(recordsEnd, pos);
    }
    const cdb = new Cdb(buf);
    for (let t = 0; t < 256; t++) {
      const pos = buf.readUInt32LE(t * 8);
      const slots = buf.readUInt32LE(t * 8 + 4);
      for (let s = 0; s < slots; s++) {
        const hash = buf.readUInt32LE(pos + s * 8);
        const rec = buf.readUInt32LE(pos + s * 8 + 4);
        if (rec === 0) continue;
        if ((hash & 255) !== t) throw new CdbError(`hash table ${t} holds a hash of table ${hash & 255}`);
        if (rec < HEADER || rec > recordsEnd - 8) throw new CdbError(`a record of hash table ${t} lies outside the records`);
        const klen = buf.readUInt32LE(rec);
        const dlen = buf.readUInt32LE(rec + 4);
        if (klen + dlen > recordsEnd - rec - 8) throw new CdbError(`a record of hash table ${t} runs past the records`);
        if (cdbHash(buf.subarray(rec + 8, rec + 8 + klen)) !== hash) throw new CdbError(`a key in hash table ${t} does not have its hash`);
      }
    }
    return cdb;
  }

  /** The data of the first record with this key, as cdb_find gives it; undefined when none. */
  get(key: string | Uint8Array): Buffer | undefined {
    const k = typeof key === 'string' ? Buffer.from(key, 'latin1') : key;
    const h = cdbHash(k);
    const table = (h & 255) * 8;
    const pos = this.buf.readUInt32LE(table);
    const slots = this.buf.readUInt32LE(table + 4);
    if (slots === 0) return undefined;
    let s = (h >>> 8) % slots;
    for (let probes = 0; probes < slots; probes++) {
      const at = pos + s * 8;
      const rec = this.buf.readUInt32LE(at + 4);
      if (rec === 0) return undefined;
      if (this.buf.readUInt32LE(at) === h) {
        const klen = this.buf.readUInt32LE(rec);
        const dlen = this.buf.readUInt32LE(rec + 4);
        if (klen === k.length && this.buf.compare(k, 0, klen, rec + 8, rec + 8 + klen) === 0) {
          return this.buf.subarray(rec + 8 + klen, rec + 8 + klen + dlen);
        }
      }
      s = s + 1 === slots ? 0 : s + 1;
    }
    return undefined;
  }
}
