// The PROXY protocol header's pure parts: where a header ends (never a byte past it), what
// it says, what is refused and in which words; the options; the app's variables.
import t from 'tap';
import { EXIT_CONFIG, EXIT_USAGE } from '../src/contract/exit-codes';
import { parseServerArgs } from '../src/server/options';
import { clientEnds, proxyVariables, refusedLine, viaWords } from '../src/server/proxy/env';
import { canonicalIPv6, parseV1, parseV2, proxyStep, V1_MAX, V2_SIGNATURE, type ProxyHeader } from '../src/server/proxy/header';
import { headerTimeoutMs, proxySockets, requiresHeader } from '../src/server/proxy/options';

type Outcome = { header: ProxyHeader; consumed: number } | { error: string; consumed: number } | { truncated: number };

/**
 * Reads `stream` as src/server/proxy/read.ts does: each read asks for what proxyStep allows and gets
 * at most `chunk` bytes of it (a slow sender). What was consumed when it stopped.
 */
function frame(stream: Buffer, chunk = Infinity): Outcome {
  let got: Buffer = Buffer.alloc(0);
  for (;;) {
    const step = proxyStep(got);
    if ('header' in step) return { header: step.header, consumed: got.length };
    if ('error' in step) return { error: step.error, consumed: got.length };
    if (!(step.need >= 1)) throw new Error(`a read of ${step.need} bytes asked for`);
    const n = Math.min(step.need, chunk, stream.length - got.length);
    if (n === 0) return { truncated: got.length };
    got = stream.subarray(0, got.length + n);
  }
}

/** A v2 header: version/command byte, family byte, address block, then `extra` (TLVs). */
function v2(verCmd: number, fam: number, addresses: Buffer, extra = Buffer.alloc(0), length?: number): Buffer {
  const fixed = Buffer.alloc(4);
  fixed[0] = verCmd;
  fixed[1] = fam;
  fixed.writeUInt16BE(length ?? addresses.length + extra.length, 2);
  return Buffer.concat([V2_SIGNATURE, fixed, addresses, extra]);
}

function ipv4Block(src: number[], dst: number[], sport: number, dport: number): Buffer {
  const b = Buffer.alloc(12);
  Buffer.from(src).copy(b, 0);
  Buffer.from(dst).copy(b, 4);
  b.writeUInt16BE(sport, 8);
  b.writeUInt16BE(dport, 10);
  return b;
}

function ipv6Block(src: string, dst: string, sport: number, dport: number): Buffer {
  const b = Buffer.alloc(36);
  Buffer.from(src.replace(/:/g, ''), 'hex').copy(b, 0);
  Buffer.from(dst.replace(/:/g, ''), 'hex').copy(b, 16);
  b.writeUInt16BE(sport, 32);
  b.writeUInt16BE(dport, 34);
  return b;
}

/** TLVs as HAProxy sends them: ALPN "h2", a CRC32C, and NOOP padding. */
const TLVS = Buffer.from([0x01, 0x00, 0x02, 0x68, 0x32, 0x03, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef, 0x04, 0x00, 0x03, 0, 0, 0]);
/** What the client sends first, right behind the header: it must be left unread. */
const DATA = Buffer.from('EHLO client.example\r\n\x16\x03\x01 more bytes');

t.test('where the header ends: each valid header is consumed exactly, at any pace, the bytes behind it untouched', async (t) => {
  const v4 = { version: 1, command: 'proxy', source: { address: '192.0.2.7', port: 51234 }, destination: { address: '198.51.100.9', port: 25 } };
  const cases: Array<[string, Buffer, object]> = [
    ['v1 TCP4', Buffer.from('PROXY TCP4 192.0.2.7 198.51.100.9 51234 25\r\n'), v4],
    ['v1 TCP6', Buffer.from('PROXY TCP6 2001:DB8::7 2001:db8:0:0:0:0:0:9 1 65535\r\n'),
      { version: 1, command: 'proxy', source: { address: '2001:db8::7', port: 1 }, destination: { address: '2001:db8::9', port: 65535 } }],
    ['v1 UNKNOWN, the shortest header (15 bytes)', Buffer.from('PROXY UNKNOWN\r\n'), { version: 1, command: 'local' }],
    ['v1 UNKNOWN with addresses, which are ignored', Buffer.from('PROXY UNKNOWN ffff:: ffff:: 1 2\r\n'), { version: 1, command: 'local' }],
    ['v1 of the longest length (107 bytes)',
      Buffer.from('PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n'),
      { version: 1, command: 'proxy', source: { address: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', port: 65535 }, destination: { address: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', port: 65535 } }],
    ['v2 PROXY TCP4', v2(0x21, 0x11, ipv4Block([192, 0, 2, 7], [198, 51, 100, 9], 51234, 25)), { ...v4, version: 2 }],
    ['v2 PROXY TCP4 with TLVs', v2(0x21, 0x11, ipv4Block([192, 0, 2, 7], [198, 51, 100, 9], 51234, 25), TLVS), { ...v4, version: 2 }],
    ['v2 PROXY TCP6', v2(0x21, 0x21, ipv6Block('20010db8:00000000:00000000:00000007', '20010db8:00010000:00000000:00000000', 443, 587)),
      { version: 2, command: 'proxy', source: { address: '2001:db8::7', port: 443 }, destination: { address: '2001:db8:1::', port: 587 } }],
    ['v2 PROXY TCP6 with IPv4-mapped addresses', v2(0x21, 0x21, ipv6Block('00000000:00000000:0000ffff:c0000207', '00000000:00000000:0000ffff:7f000001', 9, 10)),
      { version: 2, command: 'proxy', source: { address: '::ffff:192.0.2.7', port: 9 }, destination: { address: '::ffff:127.0.0.1', port: 10 } }],
    ['v2 LOCAL (a health check), no addresses', v2(0x20, 0x00, Buffer.alloc(0)), { version: 2, command: 'local' }],
    ['v2 LOCAL with addresses, which are ignored', v2(0x20, 0x11, ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), { version: 2, command: 'local' }],
    ['v2 PROXY AF_UNSPEC', v2(0x21, 0x00, Buffer.alloc(0), TLVS), { version: 2, command: 'local' }],
    ['v2 PROXY AF_UNIX', v2(0x21, 0x31, Buffer.alloc(216)), { version: 2, command: 'local' }],
    ['v2 with 64 KiB of TLVs (the largest length)', v2(0x21, 0x11, ipv4Block([192, 0, 2, 7], [198, 51, 100, 9], 51234, 25), Buffer.alloc(65535 - 12)), { ...v4, version: 2 }],
  ];
  for (const [what, header, want] of cases) {
    for (const chunk of [Infinity, 1, 7]) {
      const r = frame(Buffer.concat([header, DATA]), chunk);
      t.same(r, { header: want, consumed: header.length }, `${what}, ${chunk === Infinity ? 'all at once' : `${chunk} byte(s) a read`}`);
    }
  }
});

t.test('what is refused, in which words, as soon as it is wrong', async (t) => {
  const bad: Array<[string, Buffer, RegExp]> = [
    ['garbage', Buffer.from('GET / HTTP/1.0\r\n\r\n'), /^no PROXY header: the connection starts with 'GET \/ HTTP\/1\.0\\x0d'$/],
    ['a TLS ClientHello (no balancer in front)', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]), /^no PROXY header: the connection starts with '\\x16\\x03\\x01\\x02\\x00\\x01EHLO clie'$/],
    ['SMTP from a client', Buffer.from('EHLO x\r\n'), /^no PROXY header: the connection starts with 'EHLO x\\x0d\\x0aEHLO cl'$/],
    ['lower-case proxy', Buffer.from('proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), /^no PROXY header/],
    ['v1: a protocol of its own', Buffer.from('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'), /^PROXY v1 header: unknown protocol 'UDP4'$/],
    ['v1: a protocol named as a property of every object', Buffer.from('PROXY constructor ::1 ::1 1 2\r\n'), /^PROXY v1 header: unknown protocol 'constructor'$/],
    ['v1: a line too short', Buffer.from('PROXY \r\nTCP4 1.2.3.4 5.6.7.8 1 2\r\n'), /^PROXY v1 header: a line of 8 bytes, shorter than any header$/],
    ['v1: an address that is no IPv4 one', Buffer.from('PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n'), /^PROXY v1 header: bad TCP4 source address '1\.2\.3\.256'$/],
    ['v1: a leading zero', Buffer.from('PROXY TCP4 1.2.3.4 05.6.7.8 1 2\r\n'), /bad TCP4 destination address '05\.6\.7\.8'/],
    ['v1: IPv6 under TCP4', Buffer.from('PROXY TCP4 ::1 5.6.7.8 1 2\r\n'), /bad TCP4 source address '::1'/],
    ['v1: IPv4 under TCP6', Buffer.from('PROXY TCP6 ::1 5.6.7.8 1 2\r\n'), /bad TCP6 destination address '5\.6\.7\.8'/],
    ['v1: a zone index', Buffer.from('PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n'), /bad TCP6 source address 'fe80::1%eth0'/],
    ['v1: a port past 65535', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'), /bad source port '65536'/],
    ['v1: a port with a leading zero', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 025\r\n'), /bad destination port '025'/],
    ['v1: a signed port', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n'), /bad source port '\+1'/],
    ['v1: a word missing', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'), /expected 'PROXY TCP4 source destination sport dport'/],
    ['v1: two spaces', Buffer.from('PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n'), /expected 'PROXY TCP4/],
    ['v1: a line feed alone', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'), /^PROXY v1 header: a line feed without a carriage return before it$/],
    ['v1: a CR inside the line', Buffer.from('PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n'), /expected 'PROXY TCP4/],
    ['v1: no CRLF in 107 bytes', Buffer.concat([Buffer.from('PROXY UNKNOWN '), Buffer.alloc(200, 0x41)]), /^PROXY v1 header: no CRLF within 107 bytes$/],
    ['v2: version 1 in the version nibble', v2(0x11, 0x11, ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), /^PROXY v2 header: version 1, not 2$/],
    ['v2: an unknown command', v2(0x22, 0x11, ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), /^PROXY v2 header: unknown command 2$/],
    ['v2: an unknown family', v2(0x21, 0x41, ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), /^PROXY v2 header: unknown address family and protocol 0x41$/],
    ['v2: an unknown transport', v2(0x21, 0x13, ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), /unknown address family and protocol 0x13/],
    ['v2: AF_INET with no transport', v2(0x21, 0x10, ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), /unknown address family and protocol 0x10/],
    ['v2: UDP addresses', v2(0x21, 0x12, ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), /^PROXY v2 header: a UDP address \(0x12\) for a TCP connection$/],
    ['v2: a length too short for IPv4 addresses', v2(0x21, 0x11, Buffer.alloc(0), Buffer.alloc(0), 8), /^PROXY v2 header: length 8 is too short for its addresses \(12 bytes\)$/],
    ['v2: a length too short for IPv6 addresses', v2(0x21, 0x21, ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), /length 12 is too short for its addresses \(36 bytes\)/],
    ['v2: a signature one byte off', Buffer.concat([V2_SIGNATURE.subarray(0, 11), Buffer.from([0x0b, 0x21, 0x11, 0, 12])]), /^no PROXY header: the connection starts with '\\x0d\\x0a\\x0d\\x0a\\x00\\x0d\\x0aQUIT\\x0b!\\x11\\x00'$/],
  ];
  for (const [what, stream, words] of bad) {
    const r = frame(Buffer.concat([stream, DATA]));
    t.ok('error' in r, `${what}: refused`);
    if ('error' in r) t.match(r.error, words, `${what}: ${r.error}`);
  }
  // The first read takes up to 15 bytes (no header is shorter); a slow sender is refused at its first wrong byte.
  t.same(frame(Buffer.from('HELO x\r\n'), 1), { error: "no PROXY header: the connection starts with 'H'", consumed: 1 }, 'garbage byte by byte: refused at its first byte');
  t.same(frame(Buffer.from('PROXY TCP4 1.2.3.4\n5.6.7.8 1 2\r\n'), 1), { error: 'PROXY v1 header: a line feed without a carriage return before it', consumed: 19 }, 'v1: refused at its stray line feed');
  const v2Bad = frame(Buffer.concat([v2(0x21, 0x11, Buffer.alloc(0), Buffer.alloc(0), 4), Buffer.alloc(100)]));
  t.same('consumed' in v2Bad && v2Bad.consumed, 16, 'v2: a bad fixed part is refused before its length is read');
});

t.test('a header cut short waits for more; the reader decides when to give up', async (t) => {
  const v1 = Buffer.from('PROXY TCP4 192.0.2.7 198.51.100.9 51234 25\r\n');
  const v2h = v2(0x21, 0x11, ipv4Block([192, 0, 2, 7], [198, 51, 100, 9], 51234, 25), TLVS);
  for (const [what, h] of [['v1', v1], ['v2', v2h]] as const) {
    for (const cut of [0, 1, 6, 12, 15, 16, h.length - 1]) {
      t.same(frame(h.subarray(0, cut)), { truncated: cut }, `${what} cut at ${cut} of ${h.length} bytes: more is asked for`);
    }
  }
  t.same(proxyStep(Buffer.alloc(0)), { need: 15 }, 'first read: 15 bytes, the shortest header of either version');
  t.same(proxyStep(Buffer.from('PROXY TCP4 1.2.3.4')), { need: 2 }, 'v1 without a CR at its end: two bytes at least before CRLF');
  t.same(proxyStep(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r')), { need: 1 }, 'v1 after a CR: one byte');
  t.same(proxyStep(Buffer.concat([Buffer.from('PROXY UNKNOWN '), Buffer.alloc(V1_MAX - 15, 0x41)])), { need: 1 }, 'v1 never past 107 bytes');
  t.same(proxyStep(v2h.subarray(0, 16)), { need: 12 + TLVS.length }, 'v2: its length field says how much more');
});

t.test('parsers on their own, and IPv6 as sockets show it', async (t) => {
  t.same(parseV1('PROXY TCP6 ::FFFF:192.0.2.1 ::1 1 2'), { version: 1, command: 'proxy', source: { address: '::ffff:192.0.2.1', port: 1 }, destination: { address: '::1', port: 2 } });
  t.equal(parseV2(Buffer.from('nothing')), 'no signature');
  t.match(String(parseV2(v2(0x21, 0x11, ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2), Buffer.alloc(0), 20).subarray(0, 28))), /length 20 does not match the 12 bytes given/);
  t.equal(canonicalIPv6('2001:0DB8:0000:0000:0001:0000:0000:0001'), '2001:db8::1:0:0:1', 'the longest run of zeros (the first of two equal ones)');
  t.equal(canonicalIPv6('0:0:0:0:0:0:0:0'), '::');
  t.equal(canonicalIPv6('::ffff:c000:201'), '::ffff:192.0.2.1', 'IPv4-mapped, dotted');
});

t.test('options: --proxy for every socket, --proxy-name for named systemd sockets', async (t) => {
  const ENV = { CERTFILE: '/c.pem' };
  const run = (argv: string[], env: Record<string, string> = {}): ReturnType<typeof parseServerArgs> => parseServerArgs(argv, { ...ENV, ...env }, 1, 42);
  const all = run(['--proxy', '0', '25', 'app']);
  t.same(all.kind === 'run' && all.config.proxy, 'all', '--proxy: every connection');
  const none = run(['0', '25', 'app']);
  t.same(none.kind === 'run' && none.config.proxy, undefined, 'without it: none');
  const sd = { LISTEN_PID: '42', LISTEN_FDS: '3', LISTEN_FDNAMES: 'smtp:lb-smtp:lb-imap' };
  const named = run(['--proxy-name', 'lb-smtp', '--proxy-name', 'lb-imap', 'app'], sd);
  t.same(named.kind === 'run' && named.config.proxy, [4, 5], 'the sockets of those names');
  const listed = run(['--proxy-name', 'lb-imap,smtp', 'app'], sd);
  t.same(listed.kind === 'run' && listed.config.proxy, [3, 5], 'a comma-separated list');
  const sdAll = run(['--proxy', 'app'], sd);
  t.same(sdAll.kind === 'run' && sdAll.config.proxy, 'all', '--proxy with systemd: every socket');

  const bad: Array<[string[], Record<string, string>, number, RegExp]> = [
    [['--proxy-name', 'x', '0', '25', 'app'], {}, EXIT_USAGE, /--proxy-name names sockets from systemd/],
    [['--proxy', '--proxy-name', 'smtp', 'app'], sd, EXIT_USAGE, /--proxy and --proxy-name exclude each other/],
    [['--proxy-name', '', 'app'], sd, EXIT_USAGE, /--proxy-name needs a name/],
    [['--proxy-name', 'lb-pop3', 'app'], sd, EXIT_CONFIG, /no socket named lb-pop3 in LISTEN_FDNAMES=smtp:lb-smtp:lb-imap/],
    [['--proxy-name', 'smtp', 'app'], { LISTEN_PID: '42', LISTEN_FDS: '2' }, EXIT_CONFIG, /LISTEN_FDNAMES= does not name the 2 socket\(s\)/],
    [['--proxy-name', 'smtp', 'app'], { ...sd, LISTEN_FDNAMES: 'smtp' }, EXIT_CONFIG, /does not name the 3 socket/],
  ];
  for (const [argv, env, status, words] of bad) {
    const r = run(argv, env);
    t.same(r.kind === 'error' && r.status, status, `${argv.join(' ')}: exit ${status}`);
    if (r.kind === 'error') t.match(r.message, words);
  }
  t.same(proxySockets(false, [], [3], {}), undefined);
  t.same([headerTimeoutMs(1500), headerTimeoutMs(0)], [1500, 30000], 'the header\'s time: -t, or 30 s when the handshake has none');
  t.ok(requiresHeader('all', { host: '::', port: 25 }), "'all' covers an address");
  t.ok(requiresHeader([4], { fd: 4 }) && !requiresHeader([4], { fd: 3 }) && !requiresHeader(undefined, { fd: 4 }), 'the named fds only');
});

t.test("the app's variables and the log's words", async (t) => {
  const socket = { remote: { address: '::ffff:10.0.0.2', port: 40000 }, local: { address: '::ffff:10.0.0.1', port: 2525 } };
  const h: ProxyHeader = { version: 2, command: 'proxy', source: { address: '192.0.2.7', port: 51234 }, destination: { address: '198.51.100.9', port: 25 } };
  t.same(clientEnds(h, socket), { remote: h.source, local: h.destination }, 'the client as the header names it');
  t.same(clientEnds({ version: 2, command: 'local' }, socket), socket, 'LOCAL: the socket\'s own');
  t.same(proxyVariables(socket), { PROXYREMOTEIP: '10.0.0.2', PROXYREMOTEPORT: '40000', PROXYLOCALIP: '10.0.0.1', PROXYLOCALPORT: '2525' }, 'the balancer and us, IPv4 unmapped');
  t.equal(viaWords(h, socket.remote), ', via ::ffff:10.0.0.2 port 40000 (PROXY v2)');
  t.equal(viaWords({ version: 1, command: 'local' }, { address: '10.0.0.2', port: 1 }), ', via 10.0.0.2 port 1 (PROXY v1 UNKNOWN)');
  t.equal(viaWords({ version: 2, command: 'local' }, { address: '10.0.0.2', port: 1 }), ', via 10.0.0.2 port 1 (PROXY v2 LOCAL)');
  t.equal(refusedLine({ address: '10.0.0.2', port: 1 }, 'closed before sending a PROXY header'), 'connection from 10.0.0.2 port 1 closed: closed before sending a PROXY header');
});
