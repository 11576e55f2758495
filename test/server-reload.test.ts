// ucspi-tls-server reloads its TLS files on SIGHUP (and with --watch when they change):
// sessions running across a reload finish byte-exact, new ones get the new certificate; a
// new set that fails the start's checks changes nothing but one log line; a worker started
// after a reload gets the new set; session tickets across a reload. STARTTLS and --implicit.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import {
  APP, baseEnv, freePort, ROOT, hashUntilEnd, Lines, logged, makeCert, pemDer, replyVars, ServerLauncher, startTls, tempDir, ucspiTlsServer, waitFor,
  within, type Certs,
} from './helpers';
import { stopServer, SERVER_MODE } from './modes';
import { issue, selfSigned, type Pair } from './pki';
import { parseUnit, unitValues } from './unit-file';

const SERVER_LINE = 'ucspi-tls-server: ';

interface Kind {
  name: string;
  flags: string[];
}
const KINDS: Kind[] = [
  { name: 'STARTTLS', flags: [] },
  { name: '--implicit', flags: ['--implicit'] },
];

/** The serial as the reply's SSL_SERVER_M_SERIAL gives it. */
function serialOf(certFile: string): string {
  return new X509Certificate(readFileSync(certFile)).serialNumber.toUpperCase();
}

/** A new key and certificate for the same name, made aside and renamed over the old files (as a renewal does). */
function renew(dir: string, certs: Certs, o: { cert?: boolean; key?: boolean } = {}): string {
  const aside = join(dir, `next-${randomBytes(4).toString('hex')}`);
  mkdirSync(aside);
  const fresh = selfSigned(aside, 'new', { subject: '/CN=mail.example.test', san: 'DNS:mail.example.test' });
  const serial = serialOf(fresh.cert);
  if (o.cert ?? true) renameSync(fresh.cert, certs.cert);
  if (o.key ?? true) renameSync(fresh.key, certs.key);
  return serial;
}

interface Open {
  tls: TLSSocket;
  lines: Lines;
  /** SSL_SERVER_M_SERIAL as the app got it. */
  serial: string;
  /** Every variable the app got (the `Y` reply, or with --implicit its environment). */
  vars: Map<string, string>;
  /** The certificate the client got. */
  cert: Buffer;
  report: string;
}

function tlsClient(port: number, o: ConnectionOptions = {}): Promise<TLSSocket> {
  return new Promise((res, rej) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername: 'mail.example.test', rejectUnauthorized: false, ...o });
    s.once('secureConnect', () => res(s));
    s.once('error', rej);
  });
}

/** A session up to the app's first line through TLS; what the app and the client were given. */
async function open(kind: Kind, port: number, dir: string, o: ConnectionOptions = {}): Promise<Open> {
  if (kind.flags.includes('--implicit')) {
    const tls = await within(tlsClient(port, { allowHalfOpen: true, ...o } as ConnectionOptions), 20000, 'TLS');
    const lines = new Lines(tls as unknown as Socket);
    const report = join(dir, String(tls.localPort));
    if ((await within(lines.line(), 10000, 'the banner')) !== '220 test ESMTP') throw new Error('no banner');
    const vars = new Map([...(await waitFor(join(report, 'env'))).matchAll(/^(SSL_\w+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]));
    return { tls, lines, serial: vars.get('SSL_SERVER_M_SERIAL') ?? '', vars, cert: tls.getPeerCertificate().raw, report };
  }
  const tls = await within(startTls(port, { allowHalfOpen: true, tls: o }), 20000, 'STARTTLS');
  const lines = new Lines(tls as unknown as Socket);
  tls.write('NOOP\r\n');
  if ((await within(lines.line(), 10000, 'a line through TLS')) !== '250 yes NOOP') throw new Error('no answer');
  const report = join(dir, String(tls.localPort));
  const vars = replyVars(readFileSync(join(report, 'reply')));
  return { tls, lines, serial: vars.get('SSL_SERVER_M_SERIAL') ?? '', vars, cert: tls.getPeerCertificate().raw, report };
}

/** One line through the session, QUIT, close. */
async function quit(s: Open): Promise<void> {
  s.tls.write('QUIT\r\n');
  await within(s.lines.line(), 10000, 'QUIT');
  s.tls.destroy();
}

const BULK = 1 << 20;

interface Sink {
  /** Sends the first half: the session is then under way. */
  half(): Promise<void>;
  /** Sends the rest in small pieces, a few ms apart (so that a reload meets bytes in flight), then EOF. */
  rest(): Promise<void>;
  /** The rest if not sent yet; resolves with what each side got and sent. */
  finish(): Promise<{ sent: string; sink: string; got: { sha: string; bytes: number }; src: string }>;
}

/** SINK: the client sends BULK bytes in two halves and ends; the app answers with BULK bytes. */
async function sink(s: Open): Promise<Sink> {
  s.tls.write('SINK\r\n');
  if ((await within(s.lines.line(), 10000, 'SINK')) !== '354 send') throw new Error('no 354');
  s.lines.detach();
  s.tls.resume();
  const got = hashUntilEnd(s.tls);
  const data = randomBytes(BULK);
  const write = async (b: Buffer): Promise<void> => {
    if (!s.tls.write(b)) await new Promise((r) => s.tls.once('drain', r));
  };
  let resting: Promise<void> | undefined;
  const rest = (): Promise<void> =>
    (resting ??= (async () => {
      for (let off = BULK / 2; off < BULK; off += 16 * 1024) {
        await write(data.subarray(off, off + 16 * 1024));
        await new Promise((r) => setTimeout(r, 10));
      }
      s.tls.end();
    })());
  return {
    half: () => write(data.subarray(0, BULK / 2)),
    rest,
    async finish() {
      await rest();
      const answer = await within(got, 30000, 'the answer');
      return {
        sent: createHash('sha256').update(data).digest('hex'),
        sink: (await waitFor(join(s.report, 'sink.sha'))).trim(),
        got: answer,
        src: (await waitFor(join(s.report, 'src.sha'))).trim(),
      };
    },
  };
}

async function server(t: Test, kind: Kind, dir: string, certs: Certs, flags: string[], env: Record<string, string> = {}): Promise<{ srv: ServerLauncher; port: number }> {
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(certs, { REPORT: dir, REPORT_EACH: '1', BULK: String(BULK), ...env }), [...kind.flags, ...flags], [APP]);
  return { srv, port };
}

/** How many lines of the server's log match. */
function count(srv: ServerLauncher, re: RegExp): number {
  return srv.err.split('\n').filter((l) => re.test(l)).length;
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

for (const kind of KINDS) {
  t.test(`${kind.name}: the certificate renewed mid-load; SIGHUP; running sessions finish byte-exact, new ones get the new certificate`, async (t) => {
    const dir = tempDir(t, 'utw-reload-');
    const certs = makeCert(dir);
    const oldSerial = serialOf(certs.cert);
    const { srv, port } = await server(t, kind, dir, certs, ['-w', '2']);

    // Sessions on both workers, each half-way through its upload.
    const running = await Promise.all(Array.from({ length: 4 }, () => open(kind, port, dir)));
    t.same(running.map((s) => s.serial), running.map(() => oldSerial), 'the sessions before the reload have the old serial');
    const sinks = await Promise.all(running.map(sink));
    await Promise.all(sinks.map((s) => s.half()));

    const newSerial = renew(dir, certs);
    t.not(newSerial, oldSerial);
    // The uploads go on, in pieces, while the server reloads.
    for (const s of sinks) void s.rest();
    process.kill(srv.pid, 'SIGHUP');
    t.ok(await logged(srv, new RegExp(`^${SERVER_LINE}reloaded \\(SIGHUP\\): 1 certificate, serial ${newSerial}$`, 'm')), 'one line: reloaded, with the new serial');

    // New sessions, on each worker in turn: the new serial, and the client got the new certificate.
    const after = await Promise.all(Array.from({ length: 4 }, () => open(kind, port, dir)));
    for (const s of after) {
      t.equal(s.serial, newSerial, `a session after the reload: SSL_SERVER_M_SERIAL=${newSerial}`);
      t.ok(s.cert.equals(pemDer(certs.cert)), 'and the client got the new certificate');
    }
    await Promise.all(after.map(quit));

    // The running ones were not disturbed: both directions byte-exact.
    const results = await Promise.all(sinks.map((s) => s.finish()));
    for (const r of results) {
      t.equal(r.sink, r.sent, 'client -> app byte-exact across the reload');
      t.same(r.got, { sha: r.src, bytes: BULK }, 'app -> client byte-exact across the reload');
    }
    await srv.end({ nth: 7 });
    t.same(srv.ends().map((e) => [e.status, e.session]), Array.from({ length: 8 }, () => [0, 'tls']), 'all 8 connections ended with exit 0 after TLS');
    t.notMatch(srv.err, /died|refused/, 'no worker died, nothing refused');
    await stopServer(t, srv);
  });
}

t.test('STARTTLS: a handshake under way when the reload comes ends with the files it started with', async (t) => {
  const dir = tempDir(t, 'utw-reload-inflight-');
  const certs = makeCert(dir);
  const oldDer = pemDer(certs.cert);
  const { srv, port } = await server(t, KINDS[0]!, dir, certs, ['-w', '1', '-v']);
  const sock = netConnect({ port, host: '127.0.0.1' });
  const lines = new Lines(sock);
  await lines.reply('220');
  sock.write('STARTTLS\r\n');
  await lines.reply('220');
  lines.detach();
  // The worker has the app's command: the handshake has begun, waiting for the client's hello.
  t.ok(await logged(srv, /^ucspi-tls-server: pid \d+: app asked for TLS \(Y\)$/m), 'the app asked for TLS');
  const newSerial = renew(dir, certs);
  process.kill(srv.pid, 'SIGHUP');
  t.ok(await logged(srv, /reloaded \(SIGHUP\)/));
  const tls = await within(new Promise<TLSSocket>((res, rej) => {
    const c = tlsConnect({ socket: sock, servername: 'mail.example.test', rejectUnauthorized: false });
    c.once('secureConnect', () => res(c));
    c.once('error', rej);
  }), 20000, 'the handshake');
  t.ok(tls.getPeerCertificate().raw.equals(oldDer), 'it completes, with the certificate of before');
  const s = new Lines(tls as unknown as Socket);
  tls.write('NOOP\r\n');
  t.equal(await s.line(), '250 yes NOOP');
  tls.write('QUIT\r\n');
  await s.line();
  tls.destroy();
  const next = await open(KINDS[0]!, port, dir);
  t.equal(next.serial, newSerial, 'the next handshake has the new one');
  await quit(next);
  await srv.end({ nth: 1 });
  t.same(srv.ends().map((e) => [e.status, e.session]), [[0, 'tls'], [0, 'tls']]);
  await stopServer(t, srv);
});

/** The message of the start's fatal line for these files. */
async function startRefusal(certs: Certs): Promise<string> {
  const r = await SERVER_MODE.runAlone([], [APP], baseEnv(certs));
  const m = /^ucspi-tls-server: pid \d+: fatal: (.*)$/m.exec(r.stderr);
  if (m === null || r.status !== 111) throw new Error(`the start did not refuse: ${r.status} ${r.stderr}`);
  return m[1]!;
}

interface Bad {
  name: string;
  /** Spoil the files in place; returns how to put them back. */
  spoil(dir: string, certs: Certs): () => void;
}

const BAD: Bad[] = [
  {
    name: 'a key that does not match the certificate',
    spoil(dir, certs) {
      const keep = readFileSync(certs.cert);
      renew(dir, certs, { key: false });
      return () => writeFileSync(certs.cert, keep);
    },
  },
  {
    name: 'the key file missing',
    spoil(_dir, certs) {
      renameSync(certs.key, `${certs.key}.away`);
      return () => renameSync(`${certs.key}.away`, certs.key);
    },
  },
  {
    name: 'a folder where the certificate was',
    spoil(_dir, certs) {
      renameSync(certs.cert, `${certs.cert}.away`);
      mkdirSync(certs.cert);
      return () => {
        rmSync(certs.cert, { recursive: true });
        renameSync(`${certs.cert}.away`, certs.cert);
      };
    },
  },
  {
    name: 'garbage in the PEM',
    spoil(_dir, certs) {
      const keep = readFileSync(certs.cert);
      writeFileSync(certs.cert, keep.toString('latin1').replace(/^(-----BEGIN CERTIFICATE-----\n)(.{10})/m, '$1!!!garbage'));
      return () => writeFileSync(certs.cert, keep);
    },
  },
];

for (const kind of KINDS) {
  t.test(`${kind.name}: a bad new set keeps the old one: one line with the start's words, the running session untouched`, async (t) => {
    const dir = tempDir(t, 'utw-reload-bad-');
    const certs = makeCert(dir);
    const oldSerial = serialOf(certs.cert);
    const { srv, port } = await server(t, kind, dir, certs, ['-w', '2']);
    const running = await open(kind, port, dir);
    const upload = await sink(running);
    await upload.half();
    let sessions = 1;

    for (const [i, bad] of BAD.entries()) {
      const restore = bad.spoil(dir, certs);
      const why = await startRefusal(certs);
      process.kill(srv.pid, 'SIGHUP');
      const line = `${SERVER_LINE}reload (SIGHUP) refused: ${why}; still serving the files read before`;
      t.ok(await logged(srv, new RegExp(`^${escape(line)}$`, 'm')), `${bad.name}: "${line}"`);
      t.equal(count(srv, /reload \(SIGHUP\) refused: /), i + 1, 'one line for it');
      const s = await open(kind, port, dir);
      sessions++;
      t.equal(s.serial, oldSerial, 'a new session still gets the old certificate');
      await quit(s);
      restore();
    }
    t.notMatch(srv.err, /reloaded/, 'nothing was reloaded');
    const r = await upload.finish();
    t.equal(r.sink, r.sent, 'the running session: client -> app byte-exact');
    t.same(r.got, { sha: r.src, bytes: BULK }, 'app -> client byte-exact');
    await srv.end({ nth: sessions - 1 });
    t.same(srv.ends().map((e) => [e.status, e.session]), Array.from({ length: sessions }, () => [0, 'tls']), 'every connection ended well: nothing dropped');
    await stopServer(t, srv);
  });
}

t.test('STARTTLS: --watch follows a renewal as certbot makes it (new files, links in live/ renamed over), without a signal', async (t) => {
  const dir = tempDir(t, 'utw-watch-');
  const archive = join(dir, 'archive');
  const live = join(dir, 'live');
  mkdirSync(archive);
  mkdirSync(live);
  const first = selfSigned(archive, 'cert1', { subject: '/CN=mail.example.test', san: 'DNS:mail.example.test' });
  const certs = { cert: join(live, 'cert.pem'), key: join(live, 'key.pem') };
  symlinkSync('../archive/cert1.pem', certs.cert);
  symlinkSync('../archive/cert1.key', certs.key);
  const oldSerial = serialOf(first.cert);
  const kind = KINDS[0]!;
  const { srv, port } = await server(t, kind, dir, certs, ['-w', '2', '--watch']);
  const running = await open(kind, port, dir);
  t.equal(running.serial, oldSerial);
  const upload = await sink(running);
  await upload.half();

  const relink = (target: string, link: string): void => {
    symlinkSync(target, `${link}.tmp`);
    renameSync(`${link}.tmp`, link);
  };
  const second = selfSigned(archive, 'cert2', { subject: '/CN=mail.example.test', san: 'DNS:mail.example.test' });
  const newSerial = serialOf(second.cert);
  // The certificate's link first, alone long enough for a reload: that set is refused...
  relink('../archive/cert2.pem', certs.cert);
  t.ok(await logged(srv, /^ucspi-tls-server: reload \(files changed\) refused: KEYFILE \S+ does not match the certificate in CERTFILE \S+; still serving the files read before$/m, 15000),
    'the certificate without its key: refused, one line');
  t.equal((await open(kind, port, dir).then(async (s) => (await quit(s), s))).serial, oldSerial, 'the old certificate is still served');
  // ...and the key's link, the next change, completes it.
  relink('../archive/cert2.key', certs.key);
  t.ok(await logged(srv, new RegExp(`^${SERVER_LINE}reloaded \\(files changed\\): 1 certificate, serial ${newSerial}$`, 'm'), 15000), 'the key follows: reloaded');
  const s = await open(kind, port, dir);
  t.equal(s.serial, newSerial, 'a new session gets the new serial');
  t.ok(s.cert.equals(pemDer(second.cert)), 'and the new certificate');
  await quit(s);
  const r = await upload.finish();
  t.equal(r.sink, r.sent, 'the session across both: client -> app byte-exact');
  t.same(r.got, { sha: r.src, bytes: BULK }, 'app -> client byte-exact');
  t.equal(count(srv, /reload/), 2, 'two reload lines in all');
  await srv.end({ nth: 2 });
  await stopServer(t, srv);
});

t.test('--implicit: --watch reloads once when certificate and key are renamed over the old files one after the other', async (t) => {
  const dir = tempDir(t, 'utw-watch-');
  const certs = makeCert(dir);
  const kind = KINDS[1]!;
  const { srv, port } = await server(t, kind, dir, certs, ['-w', '1', '--watch']);
  const before = await open(kind, port, dir);
  await quit(before);
  const newSerial = renew(dir, certs);
  t.ok(await logged(srv, new RegExp(`^${SERVER_LINE}reloaded \\(files changed\\): 1 certificate, serial ${newSerial}$`, 'm'), 15000), 'reloaded without a signal');
  const s = await open(kind, port, dir);
  t.equal(s.serial, newSerial, 'a new session gets the new serial');
  await quit(s);
  t.equal(count(srv, /reload/), 1, 'the two renames made one reload, and nothing was refused');
  // A file next to them that the policy does not name: no reload.
  writeFileSync(join(dir, 'unrelated.log'), 'x');
  await new Promise((r) => setTimeout(r, 2500));
  t.equal(count(srv, /reload/), 1, 'a change beside the files reloads nothing');
  await srv.end({ nth: 1 });
  await stopServer(t, srv);
});

for (const kind of KINDS) {
  t.test(`${kind.name}: a worker killed after a reload comes back with the new files`, async (t) => {
    const dir = tempDir(t, 'utw-reload-kill-');
    const certs = makeCert(dir);
    const { srv, port } = await server(t, kind, dir, certs, ['-w', '1']);
    const newSerial = renew(dir, certs);
    process.kill(srv.pid, 'SIGHUP');
    t.ok(await logged(srv, /reloaded \(SIGHUP\)/));
    const [victim] = srv.workers();
    process.kill(victim!, 'SIGKILL');
    t.ok(await logged(srv, new RegExp(`^${SERVER_LINE}worker 1 \\(pid \\d+\\) started$`, 'm'), 15000), 'another worker started');
    const s = await open(kind, port, dir);
    t.equal(s.serial, newSerial, 'the new worker serves the new certificate');
    await quit(s);
    await srv.end({ nth: 0 });
    await stopServer(t, srv);
  });
}

t.test('STARTTLS: SIGHUPs in quick succession, the files renewed between them: the newest files end up in use', async (t) => {
  const dir = tempDir(t, 'utw-reload-twice-');
  const certs = makeCert(dir);
  const kind = KINDS[0]!;
  const { srv, port } = await server(t, kind, dir, certs, ['-w', '2']);
  let newest = '';
  for (let i = 0; i < 3; i++) {
    newest = renew(dir, certs);
    process.kill(srv.pid, 'SIGHUP');
  }
  // Signals sent together may arrive as one: at least one reload, the last with the newest.
  t.ok(await logged(srv, new RegExp(`reloaded \\(SIGHUP\\): 1 certificate, serial ${newest}\n$`)), 'the last reload line has the newest serial');
  for (let i = 0; i < 2; i++) {
    const s = await open(kind, port, dir);
    t.equal(s.serial, newest, `a new session on worker ${i + 1}: the newest serial`);
    await quit(s);
  }
  // (A reload may have read a renewal half-way, between its two renames: refused, and the next one reads it whole.)
  await stopServer(t, srv);
});

t.test("the example systemd unit's ExecReload reloads the server", async (t) => {
  const unit = parseUnit(readFileSync(join(ROOT, 'examples', 'server', 'systemd', 'submission.service'), 'utf8'));
  const [reload] = unitValues(unit, 'Service', 'ExecReload');
  t.equal(reload, '/bin/kill -HUP $MAINPID');
  const dir = tempDir(t, 'utw-reload-unit-');
  const certs = makeCert(dir);
  const { srv } = await server(t, KINDS[0]!, dir, certs, ['-w', '1']);
  const serial = renew(dir, certs);
  // As systemd runs it: MAINPID is the server's pid.
  const r = spawnSync('/bin/sh', ['-c', reload!], { env: { MAINPID: String(srv.pid) } });
  t.equal(r.status, 0);
  t.ok(await logged(srv, new RegExp(`reloaded \\(SIGHUP\\): 1 certificate, serial ${serial}$`, 'm')));
  await stopServer(t, srv);
});

/** A DER OCSP response for the certificate, from its CA, saying `status` ('V' good, 'R' revoked). */
function ocspResponse(dir: string, ca: Pair, cert: Pair, status: 'V' | 'R', out: string): void {
  const serial = serialOf(cert.cert);
  const index = join(dir, `index-${status}.txt`);
  writeFileSync(index, `${status}\t351231235959Z\t${status === 'R' ? '250101000000Z' : ''}\t${serial}\tunknown\t/CN=mail.example.test\n`);
  const req = join(dir, 'req.der');
  for (const args of [
    ['ocsp', '-issuer', ca.cert, '-cert', cert.cert, '-no_nonce', '-reqout', req],
    ['ocsp', '-index', index, '-rsigner', ca.cert, '-rkey', ca.key, '-CA', ca.cert, '-reqin', req, '-respout', out, '-ndays', '1'],
  ]) {
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr}`);
  }
}

/** openssl s_client -status, STARTTLS or implicit: what it printed. */
function sClientStatus(kind: Kind, port: number): string {
  const starttls = kind.flags.includes('--implicit') ? [] : ['-starttls', 'smtp'];
  const r = spawnSync('openssl', ['s_client', ...starttls, '-connect', `127.0.0.1:${port}`, '-servername', 'mail.example.test', '-status', '-ign_eof'], {
    input: 'QUIT\r\n', encoding: 'utf8', timeout: 20000,
  });
  return r.stdout + r.stderr;
}

for (const kind of KINDS) {
  t.test(`${kind.name}: OCSPFILE and CAFILE are read again too (openssl s_client, Node's client with a certificate)`, async (t) => {
    const dir = tempDir(t, 'utw-reload-ocsp-');
    const root = selfSigned(dir, 'root', { subject: '/CN=Reload Root', ca: true });
    const srvCert = issue(dir, 'server', root, { subject: '/CN=mail.example.test', san: 'DNS:mail.example.test' });
    const ocsp = join(dir, 'ocsp.der');
    ocspResponse(dir, root, srvCert, 'V', ocsp);
    const [caA, caB] = [selfSigned(dir, 'ca-a', { subject: '/CN=Client CA A', ca: true }), selfSigned(dir, 'ca-b', { subject: '/CN=Client CA B', ca: true })];
    const client = issue(dir, 'client', caB, { subject: '/CN=client.example.test' });
    const caFile = join(dir, 'clients.pem');
    writeFileSync(caFile, readFileSync(caA.cert));
    const { srv, port } = await server(t, kind, dir, srvCert, ['-w', '1', '-Y'], { OCSPFILE: ocsp, CAFILE: caFile });

    t.match(sClientStatus(kind, port), /Cert Status: good/, 'the stapled response says good');
    const withCert = { cert: readFileSync(client.cert), key: readFileSync(client.key) };
    const before = await open(kind, port, dir, withCert);
    t.match(before.vars.get('SSL_CLIENT_VERIFY'), /^FAILED:/, 'a client certificate of CA B: not trusted yet');
    await quit(before);

    ocspResponse(dir, root, srvCert, 'R', `${ocsp}.new`);
    renameSync(`${ocsp}.new`, ocsp);
    writeFileSync(`${caFile}.new`, readFileSync(caB.cert));
    renameSync(`${caFile}.new`, caFile);
    process.kill(srv.pid, 'SIGHUP');
    t.ok(await logged(srv, /reloaded \(SIGHUP\)/));

    t.match(sClientStatus(kind, port), /Cert Status: revoked/, 'the new response is stapled');
    const after = await open(kind, port, dir, withCert);
    t.equal(after.vars.get('SSL_CLIENT_VERIFY'), 'SUCCESS', 'CA B trusted now');
    await quit(after);
    await stopServer(t, srv);
  });
}

/** A session that leaves a ticket behind; the ticket. */
async function ticket(kind: Kind, port: number, dir: string, session?: Buffer): Promise<{ reused: boolean; ticket: Buffer; serial: string }> {
  const s = await open(kind, port, dir, session !== undefined ? { session } : {});
  const reused = s.tls.isSessionReused();
  // TLS 1.3 tickets come after the handshake: one more line makes sure they are in.
  s.tls.write('NOOP 2\r\n');
  await within(s.lines.line(), 10000, 'a second line');
  const got = s.tls.getSession();
  await quit(s);
  if (got === undefined) throw new Error('no session ticket');
  return { reused, ticket: got, serial: s.serial };
}

for (const kind of KINDS) {
  t.test(`${kind.name}: session tickets across reloads`, async (t) => {
    t.test('without TICKETKEYFILE: the key made at start is kept, a ticket from before resumes', async (t) => {
      const dir = tempDir(t, 'utw-reload-ticket-');
      const certs = makeCert(dir);
      const { srv, port } = await server(t, kind, dir, certs, ['-w', '2']);
      const first = await ticket(kind, port, dir);
      t.notOk(first.reused);
      renew(dir, certs);
      process.kill(srv.pid, 'SIGHUP');
      t.ok(await logged(srv, /reloaded \(SIGHUP\)/));
      // Two tries: one on each worker.
      for (let i = 0; i < 2; i++) t.ok((await ticket(kind, port, dir, first.ticket)).reused, `resumed after the reload (try ${i + 1})`);
      await stopServer(t, srv);
    });
    t.test('TICKETKEYFILE replaced: new tickets use the new key, a ticket from before still resumes once, then not after the next rotation', async (t) => {
      const dir = tempDir(t, 'utw-reload-ticket-');
      const certs = makeCert(dir);
      const keyFile = join(dir, 'ticket.key');
      writeFileSync(keyFile, randomBytes(48));
      const { srv, port } = await server(t, kind, dir, certs, ['-w', '1'], { TICKETKEYFILE: keyFile });
      const first = await ticket(kind, port, dir);
      t.ok((await ticket(kind, port, dir, first.ticket)).reused, 'resumes before any reload');
      writeFileSync(`${keyFile}.new`, randomBytes(48));
      renameSync(`${keyFile}.new`, keyFile);
      process.kill(srv.pid, 'SIGHUP');
      t.ok(await logged(srv, /reloaded \(SIGHUP\)/));
      const second = await ticket(kind, port, dir, first.ticket);
      t.ok(second.reused, 'a ticket made with the previous key still resumes');
      const fresh = await ticket(kind, port, dir);
      t.notOk(fresh.reused);
      writeFileSync(`${keyFile}.new`, randomBytes(48));
      renameSync(`${keyFile}.new`, keyFile);
      process.kill(srv.pid, 'SIGHUP');
      t.ok(await logged(srv, /reloaded \(SIGHUP\)[^]*reloaded \(SIGHUP\)/));
      t.notOk((await ticket(kind, port, dir, first.ticket)).reused, 'a ticket two keys old: a full handshake');
      t.ok((await ticket(kind, port, dir, fresh.ticket)).reused, 'one made with the key before the last rotation resumes');
      await stopServer(t, srv);
    });
  });
}
