// A look at the client's first TLS record before OpenSSL gets it, for what Node does not
// expose (whether the client offered secure renegotiation) and for a clear log line when
// the client does not speak TLS at all. Pure.

export type Hello =
  | { kind: 'need-more' }
  | { kind: 'not-tls'; looksLike: string }
  /** A TLS record we could not read to the end of the extensions: let OpenSSL judge it. */
  | { kind: 'opaque' }
  | { kind: 'hello'; renegotiationInfo: boolean; serverName?: string };

const RECORD_HEADER = 5;
const HANDSHAKE = 0x16;
const CLIENT_HELLO = 0x01;
const EXT_SERVER_NAME = 0x0000;
const EXT_RENEGOTIATION_INFO = 0xff01;
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
  let p = 4 + 2 + 32;
  p += 1 + rec[p]!; // session id
  const suitesLen = rec.readUInt16BE(p);
  let renegotiationInfo = false;
  for (let i = p + 2; i < p + 2 + suitesLen; i += 2) if (rec.readUInt16BE(i) === SCSV) renegotiationInfo = true;
  p += 2 + suitesLen;
  p += 1 + rec[p]!; // compression methods
  const end = 4 + bodyLen;
  let serverName: string | undefined;
  if (p + 2 <= end) {
    const extEnd = p + 2 + rec.readUInt16BE(p);
    p += 2;
    while (p + 4 <= extEnd) {
      const type = rec.readUInt16BE(p);
      const len = rec.readUInt16BE(p + 2);
      const data = rec.subarray(p + 4, p + 4 + len);
      if (type === EXT_RENEGOTIATION_INFO) renegotiationInfo = true;
      if (type === EXT_SERVER_NAME && data.length >= 5 && data[2] === 0) {
        serverName = data.subarray(5, 5 + data.readUInt16BE(3)).toString('latin1');
      }
      p += 4 + len;
    }
  }
  const out: Hello = { kind: 'hello', renegotiationInfo };
  if (serverName !== undefined) out.serverName = serverName;
  return out;
}
