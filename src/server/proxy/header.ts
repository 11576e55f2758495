// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) that a load
// balancer sends before the client's first byte. Pure: it tells the reader how many more
// bytes it may read without passing the header's end, and parses the complete header.
import { isIPv4, isIPv6 } from 'node:net';

export interface Endpoint {
  address: string;
  port: number;
}

/** What the header says: the client and the address it connected to, or nothing (health checks, unknown families). */
export type ProxyHeader =
  | { version: 1 | 2; command: 'proxy'; source: Endpoint; destination: Endpoint }
  | { version: 1 | 2; command: 'local' };

/** `need`: read at most (and wait for at least one of) this many bytes more; never past the header. */
export type Step = { need: number } | { header: ProxyHeader; length: number } | { error: string };

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** The spec's limit for a version 1 line, CRLF included. */
export const V1_MAX = 107;
/** The shortest header of either version: "PROXY UNKNOWN\r\n" (15), v2's fixed part (16). */
const MIN_HEADER = 15;
const V2_FIXED = 16;

/** Bytes received so far -> what to do next. */
export function proxyStep(got: Buffer): Step {
  const isV1 = startsAs(got, V1_PREFIX);
  const isV2 = startsAs(got, V2_SIGNATURE);
  if (!isV1 && !isV2) return { error: `no PROXY header: the connection starts with ${shown(got.subarray(0, 16))}` };
  if (got.length < MIN_HEADER) return { need: MIN_HEADER - got.length };
  return isV1 ? v1Step(got) : v2Step(got);
}

/** Whether `got` and `sig` agree on their common length (a prefix of the signature is still a candidate). */
function startsAs(got: Buffer, sig: Buffer): boolean {
  const n = Math.min(got.length, sig.length);
  return got.subarray(0, n).equals(sig.subarray(0, n));
}

function v1Step(got: Buffer): Step {
  const lf = got.indexOf(0x0a);
  if (lf >= 0) {
    // Past the first 15 bytes, reads stop at the first possible end: an earlier line feed
    // ends a line too short to be a header.
    if (lf !== got.length - 1) return { error: `PROXY v1 header: a line of ${lf + 1} bytes, shorter than any header` };
    if (got[lf - 1] !== 0x0d) return { error: 'PROXY v1 header: a line feed without a carriage return before it' };
    const parsed = parseV1(got.subarray(0, lf - 1).toString('latin1'));
    return typeof parsed === 'string' ? { error: `PROXY v1 header: ${parsed}` } : { header: parsed, length: got.length };
  }
  if (got.length >= V1_MAX) return { error: `PROXY v1 header: no CRLF within ${V1_MAX} bytes` };
  // The line ends with CRLF: after a CR it may end one byte later, else two at the earliest.
  return { need: Math.min(got[got.length - 1] === 0x0d ? 1 : 2, V1_MAX - got.length) };
}

const FAMILIES = new Map([['TCP4', 4], ['TCP6', 6]] as const);

/** "PROXY TCP4 src dst sport dport" (no CRLF) -> header, or what is wrong. */
export function parseV1(line: string): ProxyHeader | string {
  const words = line.split(' ');
  if (words[1] === 'UNKNOWN') return { version: 1, command: 'local' };
  const family = FAMILIES.get(words[1] as 'TCP4' | 'TCP6');
  if (family === undefined) return `unknown protocol ${shownText(words[1] ?? '')}`;
  if (words.length !== 6) return `expected 'PROXY ${words[1]} source destination sport dport', got ${shownText(line)}`;
  const [, , src, dst, sport, dport] = words as [string, string, string, string, string, string];
  const source = v1Address(family, src);
  const destination = v1Address(family, dst);
  if (source === undefined) return `bad ${words[1]} source address ${shownText(src)}`;
  if (destination === undefined) return `bad ${words[1]} destination address ${shownText(dst)}`;
  const sp = v1Port(sport);
  const dp = v1Port(dport);
  if (sp === undefined) return `bad source port ${shownText(sport)}`;
  if (dp === undefined) return `bad destination port ${shownText(dport)}`;
  return { version: 1, command: 'proxy', source: { address: source, port: sp }, destination: { address: destination, port: dp } };
}

function v1Address(family: 4 | 6, text: string): string | undefined {
  if (family === 4) return isIPv4(text) ? text : undefined;
  // No zone index: an address on the wire has none.
  if (!isIPv6(text) || text.includes('%')) return undefined;
  return canonicalIPv6(text);
}

function v1Port(text: string): number | undefined {
  // Decimal, no sign, no leading zero (as the spec writes them).
  if (!/^(0|[1-9]\d{0,4})$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 65535 ? n : undefined;
}

function v2Step(got: Buffer): Step {
  if (got.length < V2_FIXED) return { need: V2_FIXED - got.length };
  const total = V2_FIXED + got.readUInt16BE(14);
  if (got.length < total) {
    // Check the fixed part before reading the rest: a bad header is refused at once.
    const bad = v2Fixed(got);
    return bad !== undefined ? { error: `PROXY v2 header: ${bad}` } : { need: total - got.length };
  }
  const parsed = parseV2(got.subarray(0, total));
  return typeof parsed === 'string' ? { error: `PROXY v2 header: ${parsed}` } : { header: parsed, length: total };
}

/** Address block lengths: AF_INET, AF_INET6, AF_UNIX (two 108-byte paths). */
const V2_ADDRESS_BYTES: Record<number, number> = { 1: 12, 2: 36, 3: 216 };

/** What is wrong with the 16 fixed bytes (version, command, family and their length), if anything. */
function v2Fixed(h: Buffer): string | undefined {
  const version = h[12]! >> 4;
  const command = h[12]! & 0x0f;
  if (version !== 2) return `version ${version}, not 2`;
  if (command > 1) return `unknown command ${command}`;
  const family = h[13]! >> 4;
  const transport = h[13]! & 0x0f;
  if (family > 3 || transport > 2 || (family === 0) !== (transport === 0)) return `unknown address family and protocol 0x${h[13]!.toString(16).padStart(2, '0')}`;
  if (command === 0) return undefined; // LOCAL: the addresses, if any, are to be ignored
  const needed = V2_ADDRESS_BYTES[family] ?? 0;
  const length = h.readUInt16BE(14);
  if (length < needed) return `length ${length} is too short for its addresses (${needed} bytes)`;
  return undefined;
}

/** A complete v2 header (the 16 fixed bytes and exactly `length` more) -> header, or what is wrong. */
export function parseV2(h: Buffer): ProxyHeader | string {
  if (h.length < V2_FIXED || !h.subarray(0, 12).equals(V2_SIGNATURE)) return 'no signature';
  const bad = v2Fixed(h);
  if (bad !== undefined) return bad;
  if (h.length !== V2_FIXED + h.readUInt16BE(14)) return `length ${h.readUInt16BE(14)} does not match the ${h.length - V2_FIXED} bytes given`;
  // LOCAL (a balancer's own health check), AF_UNSPEC and AF_UNIX: the connection's own addresses.
  if ((h[12]! & 0x0f) === 0) return { version: 2, command: 'local' };
  const family = h[13]! >> 4;
  const transport = h[13]! & 0x0f;
  if (family === 0 || family === 3) return { version: 2, command: 'local' };
  if (transport !== 1) return `a UDP address (0x${h[13]!.toString(16)}) for a TCP connection`;
  const a = h.subarray(V2_FIXED); // what follows the addresses (TLVs) is not needed
  if (family === 1) {
    return {
      version: 2,
      command: 'proxy',
      source: { address: ipv4(a.subarray(0, 4)), port: a.readUInt16BE(8) },
      destination: { address: ipv4(a.subarray(4, 8)), port: a.readUInt16BE(10) },
    };
  }
  return {
    version: 2,
    command: 'proxy',
    source: { address: ipv6(a.subarray(0, 16)), port: a.readUInt16BE(32) },
    destination: { address: ipv6(a.subarray(16, 32)), port: a.readUInt16BE(34) },
  };
}

function ipv4(b: Buffer): string {
  return Array.from(b).join('.');
}

function ipv6(b: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return canonicalIPv6(groups.join(':'));
}

/**
 * RFC 5952's form, as Node's sockets show addresses (lower case, the longest run of zeros
 * as ::), and an IPv4-mapped address as ::ffff:a.b.c.d, which tcp-env.ts gives as IPv4.
 */
export function canonicalIPv6(text: string): string {
  // The URL parser writes IPv6 hosts in RFC 5952's form.
  const host = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (mapped === null) return host;
  const hi = parseInt(mapped[1]!, 16);
  const lo = parseInt(mapped[2]!, 16);
  return `::ffff:${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
}

/** Bytes for a log line: printable ASCII as it is, the rest escaped, at most 16 of them. */
function shown(b: Buffer): string {
  if (b.length === 0) return 'nothing';
  const text = Array.from(b, (c) => (c >= 0x20 && c < 0x7f && c !== 0x27 && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`));
  return `'${text.join('')}'`;
}

function shownText(s: string): string {
  return shown(Buffer.from(s.slice(0, 48), 'latin1'));
}
