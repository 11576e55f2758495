// A minimal DER reader: enough of X.690 to walk certificates and sessions. Pure.

export interface Tlv {
  /** The whole identifier octet (class, constructed bit, tag number). */
  tag: number;
  /** Offset of the identifier octet. */
  pos: number;
  /** Offset of the contents. */
  start: number;
  /** Offset just past the contents. */
  end: number;
}

export const TAG = {
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  NUMERIC_STRING: 0x12,
  PRINTABLE_STRING: 0x13,
  T61_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  VISIBLE_STRING: 0x1a,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

export class DerError extends Error {}

export function readTlv(buf: Uint8Array, pos: number, limit = buf.length): Tlv {
  if (pos + 2 > limit) throw new DerError('truncated DER');
  const tag = buf[pos]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte DER tags are not supported');
  let len = buf[pos + 1]!;
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new DerError('bad DER length');
    if (start + n > limit) throw new DerError('truncated DER');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i]!;
    start += n;
  }
  const end = start + len;
  if (end > limit) throw new DerError('truncated DER');
  return { tag, pos, start, end };
}

/** The elements inside a constructed value. */
export function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let pos = parent.start; pos < parent.end; ) {
    const t = readTlv(buf, pos, parent.end);
    out.push(t);
    pos = t.end;
  }
  return out;
}

export function expect(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (t === undefined || t.tag !== tag) throw new DerError(`DER: expected ${what}`);
  return t;
}

export function bytes(buf: Uint8Array, t: Tlv): Buffer {
  return Buffer.from(buf.buffer, buf.byteOffset + t.start, t.end - t.start);
}

export function oid(buf: Uint8Array, t: Tlv): string {
  const b = bytes(buf, t);
  if (b.length === 0) throw new DerError('empty OID');
  const parts: number[] = [];
  let v = 0;
  for (const byte of b) {
    v = v * 128 + (byte & 0x7f);
    if ((byte & 0x80) === 0) {
      parts.push(v);
      v = 0;
    }
  }
  const first = parts.shift() ?? 0;
  const a = first < 80 ? Math.floor(first / 40) : 2;
  return [a, first - a * 40, ...parts].join('.');
}

/** A directory string as text (the string types X.520 names use). */
export function text(buf: Uint8Array, t: Tlv): string {
  const b = bytes(buf, t);
  switch (t.tag) {
    case TAG.BMP_STRING:
      return b.length % 2 === 0 ? Buffer.from(b).swap16().toString('utf16le') : b.toString('latin1');
    case TAG.UNIVERSAL_STRING: {
      let s = '';
      for (let i = 0; i + 3 < b.length; i += 4) s += String.fromCodePoint(b.readUInt32BE(i));
      return s;
    }
    case TAG.T61_STRING:
      return b.toString('latin1');
    default:
      return b.toString('utf8');
  }
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function timeParts(buf: Uint8Array, t: Tlv): { year: number; m: RegExpExecArray; s: string } {
  const s = bytes(buf, t).toString('latin1');
  const m = /^(\d{2}|\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:\.\d+)?Z$/.exec(s);
  if (m === null) throw new DerError(`bad time ${JSON.stringify(s)}`);
  let year = Number(m[1]);
  if (t.tag === TAG.UTC_TIME) year += year < 50 ? 2000 : 1900;
  return { year, m, s };
}

/** UTCTime/GeneralizedTime as milliseconds since the epoch. */
export function epochMs(buf: Uint8Array, t: Tlv): number {
  const { year, m } = timeParts(buf, t);
  return Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6] ?? 0));
}

/** UTCTime/GeneralizedTime as OpenSSL's ASN1_TIME_print writes it: `Nov  4 18:38:51 2026 GMT`. */
export function time(buf: Uint8Array, t: Tlv): string {
  const { year, m, s } = timeParts(buf, t);
  const month = MONTHS[Number(m[2]) - 1];
  if (month === undefined) throw new DerError(`bad month in ${JSON.stringify(s)}`);
  const day = String(Number(m[3])).padStart(2, ' ');
  return `${month} ${day} ${m[4]}:${m[5]}:${m[6] ?? '00'} ${year} GMT`;
}
