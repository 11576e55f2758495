// Security properties, each against a client or an app that tries to break it: bytes
// pipelined before the handshake never come out of the TLS pipes; what goes through TLS is
// never on the wire in the clear (a tcpdump capture, searched); the TLS configuration is not
// in the app's environment; fds 0/1 stay blocking in plaintext; -y cannot be got round.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { Lines, ROOT, readReport, sleep, tempDir } from './helpers';
import { endStatus, helperLog, helperPid, leftovers, OPENSSL_WORDS, serve, type Served } from './hostile';
import { issue, issueExpired, selfSigned, type Pair } from './pki';

const SECURITY_APP = join(ROOT, 'test', 'apps', 'security-app');
const FAIL_STATUS = 7; // security-app's status when TLS failed
const EOF_STATUS = 9; // security-app's status after EOF on SSLREADFD in TLS
const O_NONBLOCK = 0o4000;
const O_ACCMODE = 0o3;
const O_RDWR = 0o2;

const marker = (what: string): string => `${what}-${randomBytes(12).toString('hex')}`;

function start(t: Test, env: Record<string, string> = {}, flags: string[] = []): Promise<Served> {
  return serve(t, { EOF_STATUS: String(EOF_STATUS), FAIL_STATUS: String(FAIL_STATUS), ...env }, ['-v', ...flags], [SECURITY_APP]);
}

/** A plaintext connection, after the app's greeting. */
async function greeted(port: number): Promise<{ sock: Socket; lines: Lines; banner: string }> {
  const sock = connect({ port, host: '127.0.0.1' });
  sock.on('error', () => {});
  const lines = new Lines(sock);
  const banner = (await lines.reply('220')).join('\n');
  return { sock, lines, banner };
}

interface Attempt {
  /** The client's handshake finished (under TLS 1.3 it may, before the server's verdict). */
  secure: boolean;
  reused: boolean;
  /** What came through TLS. */
  got: string;
  errors: string[];
}

/**
 * TLS over `sock`; once up, `send` goes out; the first line that comes back ends the client's
 * side. Waits until the connection is closed, 10 s at most.
 */
function attempt(sock: Socket, opts: ConnectionOptions, send: string, sessions: Buffer[] = []): Promise<Attempt> {
  const tls: TLSSocket = tlsConnect({ socket: sock, servername: 'mail.example.test', rejectUnauthorized: false, ...opts });
  const a: Attempt = { secure: false, reused: false, got: '', errors: [] };
  tls.on('error', (e) => a.errors.push(e.message));
  tls.on('session', (s: Buffer) => sessions.push(s));
  tls.once('secureConnect', () => {
    a.secure = true;
    a.reused = tls.isSessionReused();
    tls.write(send);
  });
  tls.on('data', (d: Buffer) => {
    a.got += d.toString('latin1');
    if (a.got.includes('\r\n')) tls.end();
  });
  return new Promise((r) => {
    const timer = setTimeout(() => {
      a.errors.push('still open after 10 s');
      tls.destroy();
    }, 10000);
    tls.once('close', () => {
      clearTimeout(timer);
      r(a);
    });
  });
}

/** The log of one session, each line against its pattern, nothing more. */
function logIs(t: Test, log: string[], want: Array<string | RegExp>): void {
  t.equal(log.length, want.length, `log: ${JSON.stringify(log)}`);
  want.forEach((w, i) => (typeof w === 'string' ? t.equal(log[i], w) : t.match(log[i], w)));
}

/** The app saw TLS fail: EOF on control with no reply, nothing on SSLREADFD, EPIPE on SSLWRITEFD. */
function appSawFailure(t: Test, dir: string, what = ''): void {
  t.equal(readReport(dir, 'state').trim(), 'failed', `${what}the app knows TLS failed`);
  t.equal(readFileSync(join(dir, 'reply')).length, 0, `${what}no reply on the control socket, just EOF`);
  t.equal(readFileSync(join(dir, 'tls-in')).length, 0, `${what}not one byte on SSLREADFD`);
  t.equal(readReport(dir, 'write-pipe').trim(), 'failed', `${what}SSLWRITEFD refuses (EPIPE)`);
}

// 1. Nothing the client sent before the handshake comes out of SSLREADFD.

t.test('plaintext pipelined after STARTTLS, read by the app on fd 0: SSLREADFD carries only what came through TLS', async (t) => {
  const tlsMarker = marker('TLS');
  const s = await start(t, { DRAIN: '1', TLS_MARKER: tlsMarker });
  const injected = marker('INJECTED');
  const { sock, lines } = await greeted(s.port);
  sock.write(`STARTTLS\r\n${injected}\r\n`); // one segment
  t.same(await lines.reply('220'), ['220 go']);
  lines.detach();
  const pid = await helperPid(s.srv);
  const through = `NOOP ${marker('CLIENT')}\r\n`;
  const a = await attempt(sock, {}, through);
  t.equal(a.got, `250 ${tlsMarker}\r\n`, 'TLS works: the app wrote through SSLWRITEFD');
  t.equal(await endStatus(s.srv, pid), EOF_STATUS);
  t.equal(readReport(s.dir, 'drained'), `${injected}\n`, 'the pipelined line reached the app on fd 0, as plaintext');
  t.equal(readReport(s.dir, 'tls-in'), through, 'SSLREADFD: exactly the bytes sent through TLS');
  t.notMatch(readReport(s.dir, 'tls-in'), /INJECTED/);
  logIs(t, helperLog(s.srv, pid), ['app asked for TLS (Y)', /^TLS started: TLSv1\.3 /, `app exited with ${EOF_STATUS}`, /^TLS ended: \d+ bytes to client, \d+ bytes to app$/]);
  t.same(await leftovers(s), [], 'nothing left running');
});

t.test('plaintext pipelined after STARTTLS, an app that asks for TLS without reading it: handshake garbage, never data', async (t) => {
  const s = await start(t);
  const injected = marker('INJECTED');
  const { sock, lines } = await greeted(s.port);
  sock.write(`STARTTLS\r\n${injected}\r\n`);
  t.same(await lines.reply('220'), ['220 go']);
  lines.detach();
  const pid = await helperPid(s.srv);
  const a = await attempt(sock, {}, `NOOP ${marker('CLIENT')}\r\n`);
  t.notOk(a.secure, 'no TLS session for the client');
  t.equal(a.got, '');
  t.equal(await endStatus(s.srv, pid), FAIL_STATUS);
  logIs(t, helperLog(s.srv, pid), [
    'app asked for TLS (Y)',
    'handshake failed: client sent plain text, not a TLS ClientHello',
    `app exited with ${FAIL_STATUS}`,
  ]);
  appSawFailure(t, s.dir);
  t.equal(readReport(s.dir, 'plain'), 'STARTTLS\n', 'the app read nothing after STARTTLS');
  t.same(await leftovers(s), []);
});

// 2. What goes through TLS is never on the wire in the clear.

interface Capture {
  /** SIGINT, wait for tcpdump to write its last packets and exit; the capture file's bytes. */
  stop(): Promise<Buffer>;
}

/** tcpdump on lo for one port, into a pcap file; resolves once it is listening. */
async function capture(t: Test, dir: string, port: number): Promise<Capture> {
  const file = join(dir, 'capture.pcap');
  const p = spawn('tcpdump', ['-i', 'lo', '-n', '--immediate-mode', '-U', '-s', '0', '-w', file, 'tcp', 'port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
  t.teardown(async () => {
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGINT');
    await exited;
  });
  for (let i = 0; i < 500 && !/listening on lo/.test(err); i++) {
    if (p.exitCode !== null) throw new Error(`tcpdump exited: ${err}`);
    await sleep(20);
  }
  if (!/listening on lo/.test(err)) throw new Error(`tcpdump not listening: ${err}`);
  return {
    async stop(): Promise<Buffer> {
      // The last packets of a session may still be on their way into the file: until it stops growing.
      let size = -1;
      for (let i = 0; i < 40 && statSync(file).size !== size; i++) {
        size = statSync(file).size;
        await sleep(100);
      }
      p.kill('SIGINT');
      const code = await exited;
      if (code !== 0) throw new Error(`tcpdump exit ${code}: ${err}`);
      const captured = /(\d+) packets? captured/.exec(err);
      if (captured === null || Number(captured[1]) === 0) throw new Error(`tcpdump captured nothing: ${err}`);
      return readFileSync(file);
    },
  };
}

t.test('no plaintext on the wire: what the app and the client say in TLS is not in a capture of the connection', async (t) => {
  const tlsMarkers = { 'TLSv1.3': marker('APP-TLS13'), 'TLSv1.2': marker('APP-TLS12') };
  const plainBanner = marker('BANNER');
  const s = await start(t, { BANNER: plainBanner });
  const cap = await capture(t, s.dir, s.port);
  const sent: string[] = [];
  const plainSent: string[] = [];
  let nth = 0;
  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    // One tcpserver, the app's marker per connection: the environment is fixed, so the app
    // writes the banner marker; the TLS marker comes from the client's line, echoed back.
    const { sock, lines, banner } = await greeted(s.port);
    t.match(banner, plainBanner, `${version}: the banner in plaintext`);
    const ehlo = marker('EHLO');
    plainSent.push(ehlo);
    sock.write(`EHLO ${ehlo}\r\n`);
    await lines.reply('250');
    sock.write('STARTTLS\r\n');
    await lines.reply('220');
    lines.detach();
    const pid = await helperPid(s.srv, nth++);
    const through = `NOOP ${tlsMarkers[version]}\r\n`;
    sent.push(tlsMarkers[version]);
    const a = await attempt(sock, { maxVersion: version, minVersion: version }, through);
    t.equal(a.got, '250 tls\r\n', `${version}: the app's line came through TLS`);
    t.equal(await endStatus(s.srv, pid), EOF_STATUS);
    t.equal(readReport(s.dir, 'tls-in'), through, `${version}: the app got the client's line through TLS`);
    t.match(helperLog(s.srv, pid).join('\n'), new RegExp(`TLS started: ${version.replace('.', '\\.')} `));
  }
  const pcap = await cap.stop();
  t.ok(pcap.includes(plainBanner), 'control: the plaintext banner is in the capture');
  for (const m of plainSent) t.ok(pcap.includes(m), `control: the client's plaintext EHLO ${m} is in the capture`);
  for (const m of sent) t.notOk(pcap.includes(m), `${m} (sent through TLS) is not in the capture`);
  t.notOk(pcap.includes('250 tls'), "the app's answer through TLS is not in the capture");
  t.same(await leftovers(s), []);
});

t.test('no plaintext on the wire: the app that writes a secret at a failed handshake gets EPIPE, nothing leaves', async (t) => {
  const secret = marker('SECRET');
  const plainBanner = marker('BANNER');
  const s = await start(t, { BANNER: plainBanner, TLS_MARKER: secret });
  const cap = await capture(t, s.dir, s.port);
  const { sock, lines } = await greeted(s.port);
  sock.write('STARTTLS\r\n');
  await lines.reply('220');
  lines.detach();
  const pid = await helperPid(s.srv);
  const after: Buffer[] = [];
  sock.on('data', (d: Buffer) => after.push(d));
  sock.write('GET / HTTP/1.1\r\nHost: mail.example.test\r\n\r\n');
  sock.resume();
  await new Promise((r) => sock.once('close', r));
  t.equal(await endStatus(s.srv, pid), FAIL_STATUS);
  logIs(t, helperLog(s.srv, pid), ['app asked for TLS (Y)', 'handshake failed: client sent an HTTP request, not a TLS ClientHello', `app exited with ${FAIL_STATUS}`]);
  appSawFailure(t, s.dir);
  t.notOk(Buffer.concat(after).includes(secret), 'the client did not get the secret');
  const pcap = await cap.stop();
  t.ok(pcap.includes(plainBanner), 'control: the banner is in the capture');
  t.ok(pcap.includes('GET / HTTP/1.1'), "control: the client's garbage is in the capture");
  t.notOk(pcap.includes(secret), 'the secret is not');
  t.same(await leftovers(s), []);
});

// 3. The TLS configuration is the helper's, not the app's.

t.test('secrets: no TLS variable in the app environment (unless -e), never a key', async (t) => {
  const dir = tempDir(t, 'utw-secrets-');
  const root = selfSigned(dir, 'root', { subject: '/CN=Secrets Root', ca: true });
  const server = issue(dir, 'server', root, { subject: '/CN=mail.example.test', san: 'DNS:mail.example.test' });
  const other = issue(dir, 'other', root, { subject: '/CN=other.example.test', san: 'DNS:other.example.test' });
  const cadir = join(dir, 'cadir');
  mkdirSync(cadir);
  writeFileSync(join(cadir, 'root.pem'), readFileSync(root.cert));
  writeFileSync(join(dir, 'chain.pem'), readFileSync(server.cert, 'latin1') + readFileSync(root.cert, 'latin1'));
  const tickets = randomBytes(48);
  writeFileSync(join(dir, 'tickets'), tickets, { mode: 0o600 });
  writeFileSync(join(dir, 'ocsp.der'), Buffer.from([0x30, 0x00]));
  const config: Record<string, string> = {
    CERTFILE: server.cert,
    KEYFILE: server.key,
    'CERTFILE:other.example.test': other.cert,
    'KEYFILE:other.example.test': other.key,
    CERTCHAINFILE: join(dir, 'chain.pem'),
    OCSPFILE: join(dir, 'ocsp.der'),
    CAFILE: root.cert,
    CADIR: cadir,
    CCAFILE: root.cert,
    VERIFYDEPTH: '2',
    CIPHERS: 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384',
    CIPHERSUITES: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384',
    TLS_GROUPS: 'X25519:P-256',
    TLS_MIN_VERSION: '1.2',
    TLS_MAX_VERSION: '1.3',
    TICKETKEYFILE: join(dir, 'tickets'),
    ALPN: 'smtp',
  };
  // What must never reach the app: each key's body, the ticket keys in any spelling.
  const keyBody = (p: Pair): string[] => readFileSync(p.key, 'latin1').split('\n').filter((l) => l !== '' && !l.startsWith('-----'));
  const secrets = [...keyBody(server), ...keyBody(other), tickets.toString('hex'), tickets.toString('base64')];

  for (const keep of [false, true]) {
    const s = await start(t, config, ['-Y', ...(keep ? ['-e'] : [])]);
    const { sock, lines } = await greeted(s.port);
    sock.write('STARTTLS\r\n');
    await lines.reply('220');
    lines.detach();
    const pid = await helperPid(s.srv);
    const a = await attempt(sock, { ALPNProtocols: ['smtp'] }, 'NOOP\r\n');
    t.equal(a.got, '250 tls\r\n', `${keep ? '-e' : 'default'}: the configuration works (a TLS session)`);
    t.equal(await endStatus(s.srv, pid), EOF_STATUS);
    const environ = readFileSync(join(s.dir, 'environ'));
    const env = new Map(environ.toString('latin1').split('\0').filter((e) => e !== '').map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
    t.equal(env.get('REPORT'), s.dir, 'control: the environment as the kernel gave it to the app');
    t.equal(env.get('SSLCTLFD'), '3');
    for (const [name, value] of Object.entries(config)) {
      if (keep) t.equal(env.get(name), value, `-e: ${name} kept`);
      else t.notOk(env.has(name), `${name} not in the app's environment`);
    }
    const seen = Buffer.concat([environ, readFileSync(join(s.dir, 'cmdline')), readFileSync(join(s.dir, 'reply'))]).toString('latin1');
    t.match(seen, /SSL_PROTOCOL=TLSv1\.3\0/, 'control: the reply is in what is searched');
    t.notOk(secrets.some((x) => seen.includes(x)), `${keep ? '-e: ' : ''}no line of a key, no ticket key in the app's environment, arguments or reply`);
    t.same(await leftovers(s), []);
  }
});

// 4. fds 0/1 blocking in plaintext: the helper never changes the client socket's flags.

t.test("fds 0/1 stay blocking through the plaintext phase, also after the app declines TLS", async (t) => {
  const s = await start(t, { TLS_CMD: 'none' });
  const { sock, lines } = await greeted(s.port);
  const pid = await helperPid(s.srv);
  sock.write('EHLO client.test\r\n');
  await lines.reply('250');
  sock.write('NOOP\r\n');
  t.equal(await lines.line(), '250 NOOP');
  sock.write('STARTTLS\r\n');
  t.equal(await lines.line(), '454 not now', 'the app declines TLS (closes the control fd)');
  await sleep(300); // time for the helper to react to the closed control socket, if it were to touch fd 0
  sock.write('NOOP\r\n');
  t.equal(await lines.line(), '250 NOOP', 'plaintext goes on');
  sock.write('QUIT\r\n');
  t.equal(await lines.line(), '221 bye');
  t.equal(await endStatus(s.srv, pid), 0);
  logIs(t, helperLog(s.srv, pid), ['app closed the control socket: no TLS', 'app exited with 0']);
  const rows = readReport(s.dir, 'flags').trim().split('\n').map((l) => l.split(' '));
  t.same(rows.map((r) => `${r[0]} ${r[1]}`), ['start 0', 'start 1', 'plain 0', 'plain 1', 'quit 0', 'quit 1']);
  for (const [when, fd, flags] of rows) {
    const f = parseInt(flags!, 8);
    t.equal(f & O_ACCMODE, O_RDWR, `${when} fd ${fd}: the client socket (O_RDWR), flags ${flags}`);
    t.equal(f & O_NONBLOCK, 0, `${when} fd ${fd}: blocking`);
  }
  t.same(await leftovers(s), []);
});

// 5. -y: a client without a certificate CAFILE vouches for gets nothing through.

t.test('-y cannot be got round: no certificate, self-signed, another CA, expired, renegotiation', async (t) => {
  const dir = tempDir(t, 'utw-require-');
  const root = selfSigned(dir, 'root', { subject: '/CN=Client Root', ca: true });
  const alice = issue(dir, 'alice', root, { subject: '/CN=alice' });
  const rogue = selfSigned(dir, 'rogue', { subject: '/CN=alice' });
  const otherRoot = selfSigned(dir, 'other-root', { subject: '/CN=Client Root', ca: true });
  const mallory = issue(dir, 'mallory', otherRoot, { subject: '/CN=alice' });
  const expired = issueExpired(dir, 'expired', root, '/CN=alice');
  const as = (p: Pair): ConnectionOptions => ({ cert: readFileSync(p.cert), key: readFileSync(p.key) });
  const tlsMarker = marker('TLS');
  const s = await start(t, { CAFILE: root.cert, TLS_MARKER: tlsMarker }, ['-y']);
  let nth = 0;

  const session = async (opts: ConnectionOptions): Promise<{ a: Attempt; pid: number; through: string }> => {
    const { sock, lines } = await greeted(s.port);
    sock.write('STARTTLS\r\n');
    await lines.reply('220');
    lines.detach();
    const pid = await helperPid(s.srv, nth++);
    const through = `NOOP ${marker('CLIENT')}\r\n`;
    return { a: await attempt(sock, opts, through), pid, through };
  };

  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    const v = { maxVersion: version, minVersion: version };
    const ok = await session({ ...v, ...as(alice) });
    t.equal(ok.a.got, `250 ${tlsMarker}\r\n`, `${version}, control: a certificate from CAFILE gets through`);
    t.equal(await endStatus(s.srv, ok.pid), EOF_STATUS);
    t.equal(readReport(s.dir, 'tls-in'), ok.through);

    for (const [what, opts, line] of [
      ['no certificate', {}, 'handshake failed: peer did not return a certificate'],
      ['a self-signed certificate', as(rogue), 'client certificate refused: self-signed certificate'],
      ['a certificate from another CA (same CA name)', as(mallory), /^client certificate refused: (certificate signature failure|unable to get local issuer certificate|unable to verify the first certificate)$/],
      ['an expired certificate from the right CA', as(expired), 'client certificate refused: certificate has expired'],
    ] as const) {
      const r = await session({ ...v, ...opts });
      const label = `${version}, ${what}: `;
      t.equal(r.a.got, '', `${label}nothing came back through TLS (${r.a.errors.join('; ')})`);
      t.equal(await endStatus(s.srv, r.pid), FAIL_STATUS, `${label}the app's failure status`);
      logIs(t, helperLog(s.srv, r.pid), ['app asked for TLS (Y)', line, `app exited with ${FAIL_STATUS}`]);
      appSawFailure(t, s.dir, label);
      t.same(await leftovers(s), [], `${label}nothing left running`);
    }
  }

  // Renegotiation (TLS 1.2) after a good handshake: refused, so the identity the app was given
  // stays the one it got; the connection ends.
  const { sock, lines } = await greeted(s.port);
  sock.write('STARTTLS\r\n');
  await lines.reply('220');
  lines.detach();
  const pid = await helperPid(s.srv, nth++);
  const tls = tlsConnect({ socket: sock, servername: 'mail.example.test', rejectUnauthorized: false, maxVersion: 'TLSv1.2', ...as(alice) });
  const errors: string[] = [];
  tls.on('error', (e) => errors.push(e.message));
  await new Promise((r) => tls.once('secureConnect', r));
  const tl = new Lines(tls as unknown as Socket);
  t.equal(await tl.line(), `250 ${tlsMarker}`);
  tl.detach();
  tls.resume();
  let result = '';
  tls.renegotiate({ rejectUnauthorized: false }, (e) => (result = e?.message ?? 'renegotiated'));
  await new Promise((r) => (tls.destroyed ? r(undefined) : tls.once('close', r)));
  t.match(`${result} ${errors.join(' ')}`, /no renegotiation/, 'renegotiation: the server answered no_renegotiation');
  t.equal(await endStatus(s.srv, pid), EOF_STATUS, 'renegotiation: the app saw EOF');
  logIs(t, helperLog(s.srv, pid), ['app asked for TLS (Y)', /^TLS started: TLSv1\.2 \S+ sni=mail\.example\.test client-cert=SUCCESS cn="alice"$/,
    `client connection: ${OPENSSL_WORDS.handshakeFailureAlert}`, `app exited with ${EOF_STATUS}`, /^TLS ended: /]);
  t.same(await leftovers(s), []);
});

t.test('-y cannot be got round by resuming a session from a server without -y (same certificate, shared TICKETKEYFILE)', async (t) => {
  const dir = tempDir(t, 'utw-resume-');
  const root = selfSigned(dir, 'root', { subject: '/CN=Client Root', ca: true });
  const server = selfSigned(dir, 'server', { subject: '/CN=mail.example.test', san: 'DNS:mail.example.test' });
  writeFileSync(join(dir, 'tickets'), randomBytes(48), { mode: 0o600 });
  const env = { CERTFILE: server.cert, KEYFILE: server.key, CAFILE: root.cert, TICKETKEYFILE: join(dir, 'tickets') };
  const open = await start(t, env);
  const strict = await start(t, env, ['-y']);
  const counts = new Map<Served, number>();

  const session = async (s: Served, opts: ConnectionOptions, sessions: Buffer[] = []): Promise<{ a: Attempt; pid: number }> => {
    const { sock, lines } = await greeted(s.port);
    sock.write('STARTTLS\r\n');
    await lines.reply('220');
    lines.detach();
    const nth = counts.get(s) ?? 0;
    counts.set(s, nth + 1);
    const pid = await helperPid(s.srv, nth);
    return { a: await attempt(sock, opts, 'NOOP\r\n', sessions), pid };
  };

  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    const v = { maxVersion: version, minVersion: version };
    const sessions: Buffer[] = [];
    const first = await session(open, v, sessions);
    t.equal(first.a.got, '250 tls\r\n', `${version}: a session without a certificate on the server without -y`);
    t.equal(await endStatus(open.srv, first.pid), EOF_STATUS);
    t.ok(sessions.length > 0, `${version}: the client got a session ticket`);
    const ticket = sessions[sessions.length - 1]!;

    const again = await session(open, { ...v, session: ticket });
    t.ok(again.a.reused, `${version}, control: the ticket resumes on another process of the same server`);
    t.equal(again.a.got, '250 tls\r\n');
    t.equal(await endStatus(open.srv, again.pid), EOF_STATUS);
    t.match(helperLog(open.srv, again.pid)[1], / resumed$/);

    const r = await session(strict, { ...v, session: ticket });
    t.notOk(r.a.reused, `${version}: not resumed on the server with -y`);
    t.equal(r.a.got, '', `${version}: nothing came back through TLS (${r.a.errors.join('; ')})`);
    t.equal(await endStatus(strict.srv, r.pid), FAIL_STATUS);
    logIs(t, helperLog(strict.srv, r.pid), ['app asked for TLS (Y)', 'handshake failed: peer did not return a certificate', `app exited with ${FAIL_STATUS}`]);
    appSawFailure(t, strict.dir, `${version}: `);
    t.same(await leftovers(strict), []);
  }
});

t.test('--implicit: no TLS variable, and no SSL_* from the launcher (a forged verdict), in the app environment; -y without a certificate never starts the app', async (t) => {
  const dir = tempDir(t, 'utw-implicit-');
  const root = selfSigned(dir, 'root', { subject: '/CN=Client Root', ca: true });
  const alice = issue(dir, 'alice', root, { subject: '/CN=alice' });
  const forged = { SSL_CLIENT_VERIFY: 'SUCCESS', SSL_CLIENT_S_DN_CN: 'admin' };
  const s = await start(t, { CAFILE: root.cert, ...forged }, ['--implicit', '-y']);
  const connectTls = (opts: ConnectionOptions): Promise<Attempt> => {
    const sock = connect({ port: s.port, host: '127.0.0.1' });
    sock.on('error', () => {});
    return attempt(sock, opts, 'QUIT\r\n');
  };

  const refused = await connectTls({});
  const pid = await helperPid(s.srv, 0);
  t.equal(refused.got, '', `no certificate: nothing came back (${refused.errors.join('; ')})`);
  t.equal(await endStatus(s.srv, pid), 98, 'exit 98: no TLS, the app never ran');
  logIs(t, helperLog(s.srv, pid), ['handshake failed: peer did not return a certificate', 'app not started: no TLS']);
  t.throws(() => readReport(s.dir, 'pid'), 'the app never ran');

  const ok = await connectTls({ cert: readFileSync(alice.cert), key: readFileSync(alice.key) });
  const okPid = await helperPid(s.srv, 1);
  t.match(ok.got, /^220 security ready\r\n/, 'control: with a certificate from CAFILE the app runs');
  t.equal(await endStatus(s.srv, okPid), 0);
  const env = readFileSync(join(s.dir, 'environ'), 'latin1').split('\0');
  t.ok(env.includes('SSL_CLIENT_VERIFY=SUCCESS'), "the helper's own verdict");
  t.ok(env.includes('SSL_CLIENT_S_DN_CN=alice'), "the helper's own name for the client");
  t.notOk(env.includes('SSL_CLIENT_S_DN_CN=admin'), "the launcher's SSL_CLIENT_S_DN_CN is gone");
  t.notOk(env.some((e) => /^(CAFILE|CERTFILE|KEYFILE)=/.test(e)), 'no TLS configuration');
  t.same(await leftovers(s), []);
});

t.test('SIGUSR1 to the helper (systemctl kill sends it to every process): no inspector opens, the session goes on', async (t) => {
  const s = await start(t, { TLS_CMD: 'none' });
  const { sock, lines } = await greeted(s.port);
  const pid = await helperPid(s.srv);
  process.kill(pid, 'SIGUSR1');
  await sleep(300); // Node's default would open the inspector within this
  t.notMatch(s.srv.err, /Debugger listening|inspector/i, 'no inspector in the log');
  const listening = readFileSync('/proc/net/tcp', 'utf8').split('\n').filter((l) => / 0A /.test(l) && /:240D$/i.test(l.trim().split(/\s+/)[1] ?? ''));
  t.same(listening, [], 'nothing listens on the inspector port (9229)');
  sock.write('NOOP\r\n');
  t.equal(await lines.line(), '250 NOOP', 'the helper still relays');
  sock.write('QUIT\r\n');
  t.equal(await lines.line(), '221 bye');
  t.equal(await endStatus(s.srv, pid), 0);
  t.same(await leftovers(s), []);
});
