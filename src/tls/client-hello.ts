// A look at the client's first TLS record before OpenSSL gets it: the server name, to hand
// the connection to that name's context; what Node does not expose (whether the client
// offered secure renegotiation); and for the log, a clear line when the client does not
// speak TLS at all, and the versions a refused client offered. Pure.

export type Hello =
  | { kind: 'need-more' }
  | { kind: 'not-tls'; looksLike: string }
  /** A TLS record we could not read to the end of the extensions: let OpenSSL judge it. */
  | { kind: 'opaque' }
  | ({ kind: 'hello' } & HelloInfo);

export interface HelloInfo {
  renegotiationInfo: boolean;
  serverName?: string;
  /** supported_versions; absent from clients that know nothing past TLS 1.2. */
  versions?: number[];
  /** ClientHello.client_version: the highest a client without supported_versions speaks. */
  clientVersion?: number;
}

const RECORD_HEADER = 5;
const HANDSHAKE = 0x16;
const CLIENT_HELLO = 0x01;
const EXT_SERVER_NAME = 0x0000;
const EXT_RENEGOTIATION_INFO = 0xff01;
const EXT_SUPPORTED_VERSIONS = 0x002b;
const SCSV = 0x00ff;

function describe(b: Buffer): string {
  const head = b.subarray(0, 8).toString('latin1');
  if (/^(GET|POST|HEAD|PUT|OPTIONS|CONNECT|DELETE) /.test(head)) return 'an HTTP request';
  if (b[0]! & 0x80 && b[2] === 0x01) return 'an SSLv2 hello';
  if (/^[\x20-\x7e\r\n\t]+$/.test(head)) return 'plain text';
  return 'non-TLS bytes';
}

export function readClientHello(b: Buffer): Hello {
  if (b.length === 0) return { kind: 'need-more' };
  if (b[0] !== HANDSHAKE) return { kind: 'not-tls', looksLike: describe(b) };
  if (b.length < RECORD_HEADER) return { kind: 'need-more' };
  if (b[1] !== 0x03) return { kind: 'not-tls', looksLike: describe(b) };
  const len = b.readUInt16BE(3);
  if (b.length < RECORD_HEADER + len) return { kind: 'need-more' };
  const rec = b.subarray(RECORD_HEADER, RECORD_HEADER + len);
  try {
    return parseHello(rec);
  } catch {
    return { kind: 'opaque' };
  }
}

function parseHello(rec: Buffer): Hello {
  if (rec[0] !== CLIENT_HELLO) return { kind: 'opaque' };
  const bodyLen = rec.readUIntBE(1, 3);
  // A hello spread over several records: the first one does not hold the extensions.
  if (4 + bodyLen > rec.length) return { kind: 'opaque' };
  const clientVersion = rec.readUInt16BE(4);
  let p = 4 + 2 + 32;
  p += 1 + rec[p]!; // session id
  const suitesLen = rec.readUInt16BE(p);
  const out: HelloInfo & { kind: 'hello' } = { kind: 'hello', renegotiationInfo: false, clientVersion };
  for (let i = p + 2; i < p + 2 + suitesLen; i += 2) if (rec.readUInt16BE(i) === SCSV) out.renegotiationInfo = true;
  p += 2 + suitesLen;
  p += 1 + rec[p]!; // compression methods
  const end = 4 + bodyLen;
  if (p + 2 <= end) {
    const extEnd = p + 2 + rec.readUInt16BE(p);
    p += 2;
    while (p + 4 <= extEnd) {
      const type = rec.readUInt16BE(p);
      const len = rec.readUInt16BE(p + 2);
      const data = rec.subarray(p + 4, p + 4 + len);
      if (type === EXT_RENEGOTIATION_INFO) out.renegotiationInfo = true;
      if (type === EXT_SERVER_NAME && data.length >= 5 && data[2] === 0) {
        out.serverName = data.subarray(5, 5 + data.readUInt16BE(3)).toString('latin1');
      }
      if (type === EXT_SUPPORTED_VERSIONS && data.length >= 1) out.versions = u16List(data.subarray(1, 1 + data[0]!));
      p += 4 + len;
    }
  }
  return out;
}

function u16List(b: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i + 1 < b.length; i += 2) out.push(b.readUInt16BE(i));
  return out;
}

/** The highest protocol version the client offers, by name; undefined when unknown. */
export function highestOffered(h: HelloInfo): string | undefined {
  const offered = h.versions ?? (h.clientVersion !== undefined ? [h.clientVersion] : []);
  const known = offered.filter((v) => VERSION_NAMES.has(v));
  return known.length === 0 ? undefined : VERSION_NAMES.get(Math.max(...known));
}

const VERSION_NAMES = new Map<number, string>([
  [0x0300, 'SSLv3'],
  [0x0301, 'TLS 1.0'],
  [0x0302, 'TLS 1.1'],
  [0x0303, 'TLS 1.2'],
  [0x0304, 'TLS 1.3'],
]);
