// ucspi-tls-server --proxy behind a real HAProxy (mode tcp, send-proxy and send-proxy-v2):
// the client's address for the app, STARTTLS and implicit TLS byte-exact through it, the
// client's first bytes right behind the header left for the app and for TLS, headers that
// are refused, two servers sharing TICKETKEYFILE behind one haproxy, and --proxy-name on
// sockets from systemd.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import {
  APP, baseEnv, freePort, Launcher, Lines, logged, makeCert, readReport, replyVars, sinkExchange, SERVER, ServerLauncher,
  startTls, tempDir, ucspiTlsServer, waitFor, within,
} from './helpers';
import { stopServer } from './modes';
import { tcprules } from './tcprules';

/** The client connects from here, haproxy and the servers are on 127.0.0.1: the app must tell them apart. */
const CLIENT_IP = '127.0.0.2';
const BULK = 1 << 20;
const SENDS = ['send-proxy', 'send-proxy-v2'] as const;
type Send = (typeof SENDS)[number];

/**
 * haproxy in the foreground, as a child of the test: mode tcp on 127.0.0.1, round robin over
 * `servers`. With `checks`, it checks each server as a mail site would: the PROXY header,
 * then the banner.
 */
async function haproxy(t: Test, dir: string, servers: number[], send: Send, checks = false): Promise<number> {
  const port = await freePort();
  const cfg = join(dir, `haproxy-${port}.cfg`);
  writeFileSync(cfg, [
    'global',
    '    maxconn 200',
    'defaults',
    '    mode tcp',
    '    timeout connect 5s',
    '    timeout client 60s',
    '    timeout server 60s',
    'frontend mail',
    `    bind 127.0.0.1:${port}`,
    '    default_backend servers',
    'backend servers',
    '    balance roundrobin',
    ...(checks ? ['    option tcp-check', '    tcp-check expect string 220'] : []),
    ...servers.map((p, i) => `    server s${i} 127.0.0.1:${p} ${send}${checks ? ' check check-send-proxy inter 200ms' : ''}`),
    // Else haproxy makes one from /etc/resolv.conf: nothing here looks a name up, and nothing leaves loopback.
    'resolvers default',
    '    nameserver loopback 127.0.0.1:53',
    '',
  ].join('\n'));
  const hp = new Launcher('haproxy', ['-db', '-f', cfg], { PATH: process.env.PATH });
  t.teardown(() => hp.stop());
  await hp.ready(port);
  return port;
}

/** The PROTO, TCP* and PROXY* variables the app got. */
function addressVars(env: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of env.matchAll(/^(PROTO|TCP\w*|PROXY\w*)=(.*)$/gm)) out[m[1]!] = m[2]!;
  return out;
}

/** The balancer's port as the start line of the connection from `client` gives it. */
function viaPort(srv: ServerLauncher, client: number, version: 1 | 2): number | undefined {
  const m = new RegExp(`: start: ${CLIENT_IP.replace(/\./g, '\\.')} port ${client} -> 127\\.0\\.0\\.1 port \\d+, worker \\d+, \\d+ of \\d+, via 127\\.0\\.0\\.1 port (\\d+) \\(PROXY v${version}\\)$`, 'm').exec(srv.err);
  return m ? Number(m[1]) : undefined;
}

/** Implicit TLS straight from the connection's first byte (Node sends its ClientHello at once). */
function implicitClient(port: number): Promise<TLSSocket> {
  return new Promise((res, rej) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress: CLIENT_IP });
    const s = tlsConnect({ socket, servername: 'mail.example.test', rejectUnauthorized: false });
    s.once('secureConnect', () => res(s));
    s.once('error', rej);
  });
}

for (const send of SENDS) {
  const version = send === 'send-proxy' ? 1 : 2;
  t.test(`haproxy ${send}: STARTTLS byte-exact through it; the app has the client's address, and haproxy's in PROXY*`, async (t) => {
    const dir = tempDir(t);
    const sport = await freePort();
    const srv = await ucspiTlsServer(t, sport, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1', BULK: String(BULK) }), ['-v', '--proxy'], [APP]);
    const port = await haproxy(t, dir, [sport], send);

    const tls = await startTls(port, { localAddress: CLIENT_IP, allowHalfOpen: true });
    const client = tls.localPort!;
    const { sent, received } = await sinkExchange(t, tls, BULK);
    const got = await within(received, 30000, 'the app\'s bytes');
    const report = join(dir, String(client));
    t.equal((await waitFor(join(report, 'sink.sha'))).trim(), sent, 'client -> app: every byte, in order');
    t.same([got.bytes, got.sha], [BULK, (await waitFor(join(report, 'src.sha'))).trim()], 'app -> client: every byte, in order');

    const end = await srv.end();
    t.same([end.status, end.session], [0, 'tls']);
    const via = viaPort(srv, client, version);
    t.ok(via !== undefined && via !== client, `the start line: the client's address, then haproxy's (port ${via})`);
    t.same(addressVars(readReport(report, 'env')), {
      PROTO: 'TCP',
      TCPREMOTEIP: CLIENT_IP, TCPREMOTEPORT: String(client),
      TCPLOCALIP: '127.0.0.1', TCPLOCALPORT: String(port),
      PROXYREMOTEIP: '127.0.0.1', PROXYREMOTEPORT: String(via),
      PROXYLOCALIP: '127.0.0.1', PROXYLOCALPORT: String(sport),
    }, 'TCP*: the client and the address it connected to (haproxy\'s); PROXY*: haproxy\'s connection to the server');
    await stopServer(t, srv);
  });

  t.test(`haproxy ${send}: --implicit, the client's ClientHello right behind the header reaches TLS whole`, async (t) => {
    const dir = tempDir(t);
    const sport = await freePort();
    const srv = await ucspiTlsServer(t, sport, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1' }), ['-v', '--implicit', '--proxy'], [APP]);
    const port = await haproxy(t, dir, [sport], send);
    const tls = await implicitClient(port);
    const client = tls.localPort!;
    const lines = new Lines(tls as unknown as Socket);
    t.equal(await lines.line(), '220 test ESMTP', 'the app answers through TLS');
    tls.write('NOOP\r\n');
    t.equal(await lines.line(), '250 no NOOP');
    tls.write('QUIT\r\n');
    t.equal(await lines.line(), '221 bye');
    tls.destroy();
    const env = addressVars(readReport(join(dir, String(client)), 'env'));
    t.same([env.TCPREMOTEIP, env.TCPREMOTEPORT, env.TCPLOCALPORT, env.PROXYLOCALPORT], [CLIENT_IP, String(client), String(port), String(sport)]);
    t.match(readReport(join(dir, String(client)), 'env'), /^SSL_PROTOCOL=TLSv1\.3$/m, 'and the session\'s variables');
    const end = await srv.end();
    t.same([end.status, end.session], [0, 'tls']);
    await stopServer(t, srv);
  });

  t.test(`haproxy ${send}: a client that sends its commands at once: every byte reaches the app`, async (t) => {
    const dir = tempDir(t);
    const sport = await freePort();
    const srv = await ucspiTlsServer(t, sport, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1' }), ['--proxy'], [APP]);
    const port = await haproxy(t, dir, [sport], send);
    const sock = connect({ port, host: '127.0.0.1', localAddress: CLIENT_IP });
    const lines = new Lines(sock);
    sock.write('EHLO eager.example\r\nNOOP first\r\nNOOP second\r\nQUIT\r\n');
    const got: string[] = [];
    for (let i = 0; i < 6; i++) got.push(await within(lines.line(), 10000, `reply ${i + 1}`));
    t.same(got, ['220 test ESMTP', '250-test', '250 STARTTLS', '250 no NOOP first', '250 no NOOP second', '221 bye']);
    sock.destroy();
    t.equal((await srv.end()).status, 0);
    await stopServer(t, srv);
  });
}

t.test('haproxy\'s health checks (check-send-proxy, v2, expecting the banner): LOCAL, served with the connection\'s own addresses', async (t) => {
  const dir = tempDir(t);
  const sport = await freePort();
  const srv = await ucspiTlsServer(t, sport, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1' }), ['--proxy'], [APP]);
  const port = await haproxy(t, dir, [sport], 'send-proxy-v2', true);
  const check = /: start: 127\.0\.0\.1 port (\d+) -> 127\.0\.0\.1 port (\d+), worker \d+, \d+ of 40, via 127\.0\.0\.1 port (\d+) \(PROXY v2 LOCAL\)$/m;
  t.ok(await logged(srv, check, 10000), 'a check arrives as LOCAL');
  const [, from, to, via] = check.exec(srv.err)!;
  t.same([to, via], [String(sport), from], 'its start line: the connection\'s own addresses');
  t.notMatch(srv.err, /closed: .*PROXY/, 'no check refused');
  // And the clients through it are served all the same.
  const sock = connect({ port, host: '127.0.0.1', localAddress: CLIENT_IP });
  const lines = new Lines(sock);
  sock.write('QUIT\r\n');
  t.same([await lines.line(), await lines.line()], ['220 test ESMTP', '221 bye']);
  t.match(readReport(join(dir, String(sock.localPort)), 'env'), new RegExp(`^TCPREMOTEIP=${CLIENT_IP.replace(/\./g, '\\.')}$`, 'm'));
  sock.destroy();
  await stopServer(t, srv);
});

/** A v2 header, PROXY TCP4 (or LOCAL without addresses). */
function v2Header(src?: { ip: number[]; port: number }, dst?: { ip: number[]; port: number }, length?: number): Buffer {
  const head = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, src ? 0x21 : 0x20, src ? 0x11 : 0x00, 0, 0]);
  const addresses = Buffer.alloc(src && dst ? 12 : 0);
  if (src && dst) {
    Buffer.from(src.ip).copy(addresses, 0);
    Buffer.from(dst.ip).copy(addresses, 4);
    addresses.writeUInt16BE(src.port, 8);
    addresses.writeUInt16BE(dst.port, 10);
  }
  head.writeUInt16BE(length ?? addresses.length, 14);
  return Buffer.concat([head, addresses]);
}

/** A client that writes `first` in one write(2) as it connects; its lines and whether the server closed. */
function rawClient(port: number, first: Buffer | string): { sock: Socket; lines: Lines; closed: Promise<number> } {
  const sock = connect({ port, host: '127.0.0.1' });
  const startedAt = performance.now();
  const closed = new Promise<number>((res) => sock.once('close', () => res(performance.now() - startedAt)));
  sock.on('error', () => {}); // a reset is one way the server may close it
  if (first.length > 0) sock.write(first);
  return { sock, lines: new Lines(sock), closed };
}

t.test('the header and the first bytes in one segment: the app reads exactly what follows the header', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1' }), ['--proxy'], [APP]);
  const cases: Array<[string, Buffer, number]> = [
    ['v1', Buffer.from('PROXY TCP4 192.0.2.7 198.51.100.9 40001 587\r\n'), 40001],
    ['v2', v2Header({ ip: [192, 0, 2, 7], port: 40002 }, { ip: [198, 51, 100, 9], port: 587 }), 40002],
  ];
  for (const [what, header, client] of cases) {
    const c = rawClient(port, Buffer.concat([header, Buffer.from('NOOP binary \xfe\xff\r\nQUIT\r\n', 'latin1')]));
    const three = async (): Promise<string[]> => [await c.lines.line(), await c.lines.line(), await c.lines.line()];
    t.same(await within(three(), 10000, `${what}: the replies`), ['220 test ESMTP', '250 no NOOP binary \xfe\xff', '221 bye'], `${what}: both commands answered`);
    await c.closed;
    const env = addressVars(readReport(join(dir, String(client)), 'env'));
    t.same([env.TCPREMOTEIP, env.TCPREMOTEPORT, env.TCPLOCALIP, env.TCPLOCALPORT], ['192.0.2.7', String(client), '198.51.100.9', '587'], `${what}: the header's addresses`);
  }

  // v2 with 2000 bytes of TLVs (a NOOP one), sent in pieces: read across many reads, then the data.
  const tlv = Buffer.alloc(2000);
  tlv[0] = 0x04;
  tlv.writeUInt16BE(1997, 1);
  const long = v2Header({ ip: [192, 0, 2, 7], port: 40004 }, { ip: [198, 51, 100, 9], port: 587 }, 12 + tlv.length);
  const stream = Buffer.concat([long, tlv, Buffer.from('NOOP after TLVs\r\nQUIT\r\n')]);
  const c = rawClient(port, '');
  c.sock.setNoDelay(true);
  for (let at = 0; at < stream.length; at += 97) {
    c.sock.write(stream.subarray(at, at + 97));
    await new Promise((r) => setTimeout(r, 2));
  }
  const three = async (): Promise<string[]> => [await c.lines.line(), await c.lines.line(), await c.lines.line()];
  t.same(await within(three(), 10000, 'the replies'), ['220 test ESMTP', '250 no NOOP after TLVs', '221 bye'], 'v2 with TLVs, in pieces: the data behind it intact');
  t.match(readReport(join(dir, '40004'), 'env'), /^TCPREMOTEIP=192\.0\.2\.7$/m);

  await srv.end({ nth: 2 });
  t.same(srv.ends().map((e) => e.status), [0, 0, 0]);
  await stopServer(t, srv);
});

t.test('--implicit: a header and the ClientHello in one segment; the worker gets every byte of it', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1' }), ['--implicit', '--proxy'], [APP]);
  const sock = connect({ port, host: '127.0.0.1' });
  await new Promise((r) => sock.once('connect', r));
  sock.cork(); // the header and the ClientHello go out in one write
  sock.write(v2Header({ ip: [192, 0, 2, 8], port: 40003 }, { ip: [198, 51, 100, 9], port: 465 }));
  const tls = tlsConnect({ socket: sock, servername: 'mail.example.test', rejectUnauthorized: false });
  process.nextTick(() => sock.uncork());
  await new Promise((res, rej) => tls.once('secureConnect', res).once('error', rej));
  const lines = new Lines(tls as unknown as Socket);
  t.equal(await lines.line(), '220 test ESMTP');
  tls.write('QUIT\r\n');
  t.equal(await lines.line(), '221 bye');
  tls.destroy();
  t.match(readReport(join(dir, '40003'), 'env'), /^TCPREMOTEIP=192\.0\.2\.8$/m);
  t.equal((await srv.end()).status, 0);
  await stopServer(t, srv);
});

t.test('a bad or missing header: one line each, the connection closed, no app started', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1' }), ['-t', '1', '--proxy'], [APP]);
  const cases: Array<[string, Buffer | string, RegExp, boolean]> = [
    ['a client without a balancer', 'EHLO client\r\n', /no PROXY header: the connection starts with 'EHLO client\\x0d\\x0a'/, false],
    ['a TLS client without a balancer', Buffer.from([0x16, 0x03, 0x01, 0x00, 0xc8, 0x01]), /no PROXY header: the connection starts with '\\x16\\x03\\x01\\x00\\xc8\\x01'/, false],
    ['a header cut short', 'PROXY TCP4 192.0.2.1', /closed after 20 bytes of a PROXY header/, true],
    ['a header too slow', 'PROXY TCP4 ', /no complete PROXY header within 1 s \(11 bytes came\)/, false],
    ['nothing at all', '', /no complete PROXY header within 1 s \(0 bytes came\)/, false],
    ['v2 with a length too short for its addresses', v2Header({ ip: [192, 0, 2, 1], port: 1 }, { ip: [192, 0, 2, 2], port: 2 }, 8), /PROXY v2 header: length 8 is too short for its addresses \(12 bytes\)/, false],
    ['v1 with a bad address', 'PROXY TCP4 192.0.2.300 198.51.100.9 40010 25\r\nQUIT\r\n', /PROXY v1 header: bad TCP4 source address '192\.0\.2\.300'/, false],
  ];
  for (const [what, first, words, end] of cases) {
    const c = rawClient(port, first);
    const local = await new Promise<number>((r) => c.sock.once('connect', () => r(c.sock.localPort!)));
    if (end) c.sock.end();
    let got = '';
    c.sock.on('data', (d: Buffer) => (got += d.toString('latin1')));
    const ms = await within(c.closed, 10000, `${what}: the server closes the connection`);
    t.equal(got, '', `${what}: not a byte to the client`);
    const line = new RegExp(`^ucspi-tls-server: connection from 127\\.0\\.0\\.1 port ${local} closed: ${words.source}$`, 'm');
    t.ok(await logged(srv, line), `${what}: one line saying why`);
    if (/too slow|nothing/.test(what)) t.ok(ms >= 900 && ms < 5000, `${what}: closed after the -t time (${Math.round(ms)} ms)`);
  }
  t.notMatch(srv.err, /: start: /, 'no connection started');
  t.same(readdirSync(dir).filter((n) => /^\d+$/.test(n)), [], 'no app ran');

  // A balancer's health check (v2 LOCAL): an app runs, with the socket's own addresses.
  const check = rawClient(port, Buffer.concat([v2Header(), Buffer.from('QUIT\r\n')]));
  const local = await new Promise<number>((r) => check.sock.once('connect', () => r(check.sock.localPort!)));
  t.same([await check.lines.line(), await check.lines.line()], ['220 test ESMTP', '221 bye'], 'LOCAL: served');
  t.same(addressVars(readReport(join(dir, String(local)), 'env')), {
    PROTO: 'TCP', TCPREMOTEIP: '127.0.0.1', TCPREMOTEPORT: String(local), TCPLOCALIP: '127.0.0.1', TCPLOCALPORT: String(port),
    PROXYREMOTEIP: '127.0.0.1', PROXYREMOTEPORT: String(local), PROXYLOCALIP: '127.0.0.1', PROXYLOCALPORT: String(port),
  }, 'LOCAL: TCP* and PROXY* are the connection\'s own');
  t.match(srv.err, new RegExp(`start: 127\\.0\\.0\\.1 port ${local} -> 127\\.0\\.0\\.1 port ${port}, worker \\d+, 1 of 40, via 127\\.0\\.0\\.1 port ${local} \\(PROXY v2 LOCAL\\)$`, 'm'));
  t.equal((await srv.end()).status, 0);
  await stopServer(t, srv);
});

t.test('SIGTERM while a header is awaited: the server exits at once, nothing left', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1' }), ['--proxy'], [APP]);
  const silent = rawClient(port, '');
  // Accepted in order: once a later connection is served, the silent one waits in the launcher.
  const later = rawClient(port, 'PROXY TCP4 192.0.2.9 198.51.100.9 40020 25\r\nQUIT\r\n');
  t.same([await later.lines.line(), await later.lines.line()], ['220 test ESMTP', '221 bye']);
  await srv.end();
  const startedAt = performance.now();
  await stopServer(t, srv);
  t.ok(performance.now() - startedAt < 5000, 'not held by the -t time (30 s) of the header');
  await within(silent.closed, 5000, 'the waiting connection closed');
});

t.test('-c 1: a connection awaiting its header holds the one place; the next is served once it is refused', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1' }), ['-v', '-c', '1', '-t', '1', '--proxy'], [APP]);
  const silent = rawClient(port, '');
  t.ok(await logged(srv, /^ucspi-tls-server: 1 connections: accepting paused$/m), 'the silent connection counts: accepting paused');
  const next = rawClient(port, 'PROXY TCP4 192.0.2.11 198.51.100.9 40040 25\r\nQUIT\r\n');
  const banner = within(next.lines.line(), 10000, 'the banner');
  const ms = await within(silent.closed, 10000, 'the silent connection closed');
  t.equal(await banner, '220 test ESMTP', `served after the silent one was closed (${Math.round(ms)} ms)`);
  t.equal(await next.lines.line(), '221 bye');
  t.ok(ms >= 900, 'the silent one was given its -t time');
  t.ok(await logged(srv, /closed: no complete PROXY header within 1 s \(0 bytes came\)$/m), 'and refused with its line');
  t.equal((await srv.end()).status, 0);
  await stopServer(t, srv);
});

/** One `openssl s_client -starttls smtp` session: NOOP, QUIT, the server's close. */
function sClient(port: number, args: string[]): string {
  const r = spawnSync('openssl', ['s_client', '-starttls', 'smtp', '-connect', `127.0.0.1:${port}`, '-servername', 'mail.example.test', '-ign_eof', ...args], {
    input: 'NOOP\r\nQUIT\r\n', encoding: 'utf8', timeout: 20000,
  });
  return r.stdout + r.stderr;
}

for (const version of ['-tls1_3', '-tls1_2']) {
  t.test(`two servers behind one haproxy, one TICKETKEYFILE: a session made through one resumes through the other (${version})`, async (t) => {
    const dir = tempDir(t);
    const certs = makeCert(dir);
    const keys = join(dir, 'tickets');
    writeFileSync(keys, randomBytes(48), { mode: 0o600 });
    const servers: Array<{ srv: ServerLauncher; report: string; port: number }> = [];
    for (const name of ['a', 'b']) {
      const report = join(dir, name);
      spawnSync('mkdir', [report]);
      const port = await freePort();
      const srv = await ucspiTlsServer(t, port, baseEnv(certs, { REPORT: report, TICKETKEYFILE: keys }), ['-v', '--proxy'], [APP]);
      servers.push({ srv, report, port });
    }
    const port = await haproxy(t, dir, servers.map((s) => s.port), 'send-proxy-v2');
    const sess = join(dir, 'session');
    const first = sClient(port, [version, '-sess_out', sess]);
    t.match(first, /^New, TLSv1\.[23]/m, 'first connection: a full handshake');
    t.match(first, /250 yes NOOP/, 'the app answered through TLS');
    const second = sClient(port, [version, '-sess_in', sess]);
    t.match(second, /^Reused, TLSv1\.[23]/m, 'second connection: resumed');
    // spawnSync held the event loop: let the servers' logs come in.
    for (const s of servers) await logged(s.srv, /: end: /);
    const served = servers.map((s) => (s.srv.err.match(/: start: .*, via 127\.0\.0\.1 port \d+ \(PROXY v2\)$/gm) ?? []).length);
    t.same(served, [1, 1], 'one connection to each server (round robin)');
    const resumed = servers.map((s) => (existsSync(join(s.report, 'reply')) ? replyVars(readFileSync(join(s.report, 'reply'))).get('SSL_SESSION_RESUMED') : undefined));
    t.same(resumed.slice().sort(), ['Initial', 'Resumed'], 'SSL_SESSION_RESUMED: Initial on one server, Resumed on the other');
    for (const s of servers) t.match(readReport(s.report, 'env'), /^TCPREMOTEIP=127\.0\.0\.1$/m);
    for (const s of servers) await stopServer(t, s.srv);
  });
}

t.test('systemd sockets: --proxy-name requires the header on the named socket only', async (t) => {
  const dir = tempDir(t);
  const [direct, lb] = [await freePort(), await freePort()];
  const l = new ServerLauncher('systemd-socket-activate', [
    '-l', `127.0.0.1:${direct}`, '-l', `127.0.0.1:${lb}`, '--fdname=direct:balanced',
    '-E', 'CERTFILE', '-E', 'KEYFILE', '-E', 'REPORT', '-E', 'REPORT_EACH', '-E', 'PROXYREMOTEIP', SERVER, '-v', '--proxy-name', 'balanced', APP,
  ], baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1', PROXYREMOTEIP: '203.0.113.66' }));
  t.teardown(() => l.stop());
  await l.ready(direct);
  await l.ready(lb);

  const plain = rawClient(direct, 'QUIT\r\n');
  const local = await new Promise<number>((r) => plain.sock.once('connect', () => r(plain.sock.localPort!)));
  t.same([await plain.lines.line(), await plain.lines.line()], ['220 test ESMTP', '221 bye'], 'direct: served without a header');
  const env = addressVars(readReport(join(dir, String(local)), 'env'));
  t.same([env.TCPREMOTEPORT, env.PROXYREMOTEIP], [String(local), undefined], 'direct: the socket\'s addresses, no PROXY* (not even the server\'s own)');

  const proxied = rawClient(lb, 'PROXY TCP4 192.0.2.10 198.51.100.9 40030 25\r\nQUIT\r\n');
  t.same([await proxied.lines.line(), await proxied.lines.line()], ['220 test ESMTP', '221 bye'], 'balanced: served after its header');
  t.match(readReport(join(dir, '40030'), 'env'), /^TCPREMOTEIP=192\.0\.2\.10$/m);

  const bare = rawClient(lb, 'QUIT\r\n');
  const bareLocal = await new Promise<number>((r) => bare.sock.once('connect', () => r(bare.sock.localPort!)));
  await within(bare.closed, 10000, 'balanced without a header: closed');
  t.ok(await logged(l, new RegExp(`connection from 127\\.0\\.0\\.1 port ${bareLocal} closed: no PROXY header`)), 'balanced without a header: refused');
  await l.end({ nth: 1 });
  await stopServer(t, l);
});

t.test('-x and -C behind a balancer: the rules and the limit follow the client of the header, not the balancer', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const rules = join(dir, 'rules.cdb');
  tcprules(rules, ['192.0.2.66:deny', '192.0.2.:allow,RELAYCLIENT=""', ':allow']);
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1' }), ['--proxy', '-x', rules, '-C', '1'], [APP]);
  const from = (ip: string, p: number): Buffer => Buffer.from(`PROXY TCP4 ${ip} 198.51.100.9 ${p} 587\r\n`);

  const denied = rawClient(port, from('192.0.2.66', 40066));
  await within(denied.closed, 10000, 'the denied client is closed');
  t.ok(await logged(srv, /deny: 192\.0\.2\.66 port 40066 by rule 192\.0\.2\.66$/m), 'denied by the rule for the header\'s address');

  const first = rawClient(port, from('192.0.2.7', 40007));
  t.equal(await first.lines.line(), '220 test ESMTP', 'an allowed client is served');
  const env = readReport(join(dir, '40007'), 'env');
  t.match(env, /^TCPREMOTEIP=192\.0\.2\.7$/m);
  t.match(env, /^RELAYCLIENT=$/m, 'with its rule\'s settings');

  // Every connection comes from the balancer (127.0.0.1): -C 1 counts the header's clients.
  const again = rawClient(port, from('192.0.2.7', 40008));
  await within(again.closed, 10000, 'a second connection from the same client is closed');
  t.ok(await logged(srv, /deny: 192\.0\.2\.7 port 40008: 1 connections? from 192\.0\.2\.7 already \(-C 1\)$/m), '-C 1 for that client');
  const other = rawClient(port, from('192.0.2.8', 40009));
  t.equal(await other.lines.line(), '220 test ESMTP', 'another client through the same balancer is served');

  for (const c of [first, other]) c.sock.write('QUIT\r\n');
  await srv.end({ nth: 1 });
  t.same(readdirSync(dir).filter((n) => /^\d+$/.test(n)).sort(), ['40007', '40009'], 'apps ran for the allowed clients only');
  await stopServer(t, srv);
});
