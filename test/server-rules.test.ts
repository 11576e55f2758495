// ucspi-tls-server's access rules, -x/-X with files Debian's tcprules writes, and the -C
// limit per address: the app gets what tcpserver would give it, a refused client sees the
// connection closed without a byte and no app starts, the log says why.
// Clients come from 127.0.0.1, 127.0.0.2 and 127.0.0.3, all on the loopback.
import t, { type Test } from 'tap';
import { chmodSync, copyFileSync, existsSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { join } from 'node:path';
import {
  APP, baseEnv, freePort, Launcher, Lines, logged, makeCert, readReport, startTls, tempDir, ucspiTlsServer, waitFor, within, type ServerLauncher,
} from './helpers';
import { SERVER_MODE, stopServer } from './modes';
import { tcprules } from './tcprules';

interface Client {
  sock: Socket;
  lines: Lines;
  /** The client's port: its app's report folder. */
  port: number;
  /** The app's banner came; false: the server closed the connection without a byte. */
  served: boolean;
}

/** A client from `from`, once it has the app's banner or the connection has closed. */
async function client(port: number, from: string): Promise<Client> {
  const sock = connect({ port, host: '127.0.0.1', localAddress: from });
  let bytes = 0;
  let ended = false;
  sock.on('data', (d: Buffer) => (bytes += d.length));
  sock.once('end', () => (ended = true));
  const lines = new Lines(sock);
  await new Promise((r) => sock.once('connect', r));
  const localPort = sock.localPort!;
  try {
    // Either comes, however loaded the machine; the limit only keeps a broken server from hanging the run.
    await within(lines.reply('220'), 60000, `banner or close for ${from}`);
    return { sock, lines, port: localPort, served: true };
  } catch (e) {
    if (!ended || bytes !== 0) throw e;
    return { sock, lines, port: localPort, served: false };
  }
}

async function quit(c: Client): Promise<void> {
  c.sock.write('QUIT\r\n');
  await c.lines.line();
  c.sock.destroy();
}

/** The app's environment, as it recorded it. */
async function appEnv(dir: string, c: Client): Promise<Map<string, string>> {
  const env = await waitFor(join(dir, String(c.port), 'env'));
  return new Map(env.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

function pick(env: Map<string, string>, names: string[]): Record<string, string | undefined> {
  return Object.fromEntries(names.map((n) => [n, env.get(n)]));
}

/** The connection was refused: closed with nothing sent, no app (no report, no start line), the line logged. */
async function refused(t: Test, srv: ServerLauncher, dir: string, c: Client, why: string): Promise<void> {
  t.notOk(c.served, `${c.port}: closed without a byte`);
  const line = `ucspi-tls-server: deny: 127.0.0.${/^127\.0\.0\.(\d)/.exec(c.sock.localAddress ?? '')?.[1]} port ${c.port}${why}`;
  t.ok(await logged(srv, new RegExp(`^${line.replace(/[.()]/g, '\\$&')}$`, 'm')), line);
  t.notOk(existsSync(join(dir, String(c.port))), 'no app started for it');
  t.notOk(srv.starts().some((s) => s.remotePort === c.port), 'no start line for it');
}

const SERVER_FLAGS = ['-w', '1'];

t.test('allow with settings, deny, the default: what tcpserver does with the same rules file', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const rules = join(dir, 'rules.cdb');
  tcprules(rules, [
    '127.0.0.1:allow,RELAYCLIENT="",GREETING="hello world",TCPLOCALHOST="movie.edu"',
    '127.0.0.2:deny',
    ':allow,DEFAULT="yes"',
  ]);
  const env = baseEnv(certs, { REPORT: dir, REPORT_EACH: '1', RELAYCLIENT: 'inherited', DEFAULT: 'inherited' });
  const names = ['RELAYCLIENT', 'GREETING', 'TCPLOCALHOST', 'DEFAULT', 'TCPREMOTEIP'];

  // tcpserver first, for what an app expects.
  const tcpPort = await freePort();
  const tcp = new Launcher('tcpserver', ['-R', '-H', '-l', 'mail.example.test', '-x', rules, '127.0.0.1', String(tcpPort), APP], env);
  t.teardown(() => tcp.stop());
  await tcp.ready(tcpPort);
  const want: Array<Record<string, string | undefined>> = [];
  for (const from of ['127.0.0.1', '127.0.0.3']) {
    const c = await client(tcpPort, from);
    t.ok(c.served, `tcpserver serves ${from}`);
    want.push(pick(await appEnv(dir, c), names));
    await quit(c);
  }
  t.notOk((await client(tcpPort, '127.0.0.2')).served, 'tcpserver refuses 127.0.0.2');
  await tcp.stop();
  t.same(want[0], { RELAYCLIENT: '', GREETING: 'hello world', TCPLOCALHOST: 'movie.edu', DEFAULT: 'inherited', TCPREMOTEIP: '127.0.0.1' }, "tcpserver's, for the record");

  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, env, [...SERVER_FLAGS, '-l', 'mail.example.test', '-x', rules], [APP]);
  const c1 = await client(port, '127.0.0.1');
  t.ok(c1.served, '127.0.0.1 served');
  t.same(pick(await appEnv(dir, c1), names), want[0], 'the same settings, set after the TCP variables (the rule wins over -l)');
  // The session goes on as any: STARTTLS is not the rules' business.
  await quit(c1);
  const tls = await startTls(port);
  const tlsLines = new Lines(tls as unknown as Socket);
  tls.write('NOOP\r\n');
  t.equal(await tlsLines.line(), '250 yes NOOP', 'TLS for an allowed client');
  tls.write('QUIT\r\n');
  await tlsLines.line();
  tls.destroy();

  const c3 = await client(port, '127.0.0.3');
  t.ok(c3.served, '127.0.0.3 served by the default rule');
  t.same(pick(await appEnv(dir, c3), names), want[1], "the default rule's settings, as tcpserver");
  await quit(c3);

  const starts = srv.starts().length;
  const c2 = await client(port, '127.0.0.2');
  await refused(t, srv, dir, c2, ' by rule 127.0.0.2');
  t.equal(srv.starts().length, starts, 'no app started for the refused client');
  t.equal((await srv.end({ nth: 2 })).status, 0, 'the served ones ended as usual');
  await stopServer(t, srv);
});

t.test('tcprules run while the server runs: the next connection follows the new rules, open ones go on', async (t) => {
  const dir = tempDir(t);
  const rules = join(dir, 'rules.cdb');
  tcprules(rules, ['127.0.0.1:allow,GEN="1"', ':deny']);
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1' }), [...SERVER_FLAGS, '-x', rules], [APP]);

  const open = await client(port, '127.0.0.1');
  t.equal((await appEnv(dir, open)).get('GEN'), '1');
  await refused(t, srv, dir, await client(port, '127.0.0.3'), ' by the default rule');

  tcprules(rules, ['127.0.0.1:deny', ':allow,GEN="2"']);
  await refused(t, srv, dir, await client(port, '127.0.0.1'), ' by rule 127.0.0.1');
  const c3 = await client(port, '127.0.0.3');
  t.ok(c3.served, 'the default now allows');
  t.equal((await appEnv(dir, c3)).get('GEN'), '2', "the new file's settings");
  await quit(c3);

  open.sock.write('NOOP\r\n');
  t.equal(await open.lines.line(), '250 no NOOP', 'the session opened under the old rules goes on (in plaintext)');
  await quit(open);
  await stopServer(t, srv);
});

t.test('a missing or damaged rules file: fatal at start (but -X allows a missing one); later, connections refused', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const env = baseEnv(certs, { REPORT: dir, REPORT_EACH: '1' });
  const rules = join(dir, 'rules.cdb');

  const missing = await SERVER_MODE.runAlone(['-x', rules], [APP], env);
  t.equal(missing.status, 111, 'missing without -X: exit 111');
  t.match(missing.stderr, new RegExp(`^ucspi-tls-server: pid \\d+: fatal: rules ${rules}: no such file\n$`), 'one line');
  writeFileSync(rules, '127.0.0.1:deny\n'); // the text, not what tcprules makes of it
  const damaged = await SERVER_MODE.runAlone(['-X', '-x', rules], [APP], env);
  t.equal(damaged.status, 111, 'not a cdb, even with -X: exit 111');
  t.match(damaged.stderr, new RegExp(`^ucspi-tls-server: pid \\d+: fatal: rules ${rules}: not a cdb file: 15 bytes, shorter than a cdb header \\(2048\\)\n$`), 'one line');

  // Readable by root alone: the acceptor, which reads it at each connection as the workers'
  // user once listening, could not. Said at start, not at the first client.
  const secret = join(dir, 'secret.cdb');
  tcprules(secret, [':allow']);
  chmodSync(secret, 0o600);
  const unreadable = await SERVER_MODE.runAlone(['-x', secret], [APP], env);
  t.equal(unreadable.status, 111, 'readable by root alone: exit 111');
  t.match(unreadable.stderr, new RegExp(`^ucspi-tls-server: pid \\d+: fatal: rules ${secret}: permission denied \\(read as 65534:65534, the workers' user, once listening: make it readable by TLS_UID\\)\n$`), 'one line, saying who must read it');

  const optional = join(dir, 'optional.cdb');
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, env, [...SERVER_FLAGS, '-X', '-x', optional], [APP]);
  const c1 = await client(port, '127.0.0.1');
  t.ok(c1.served, '-X and no file: served');
  await quit(c1);
  tcprules(optional, ['127.0.0.1:deny', ':allow']);
  await refused(t, srv, dir, await client(port, '127.0.0.1'), ' by rule 127.0.0.1');

  // An operator copies the rules text over the cdb: refused, with the reason, until it is repaired.
  copyFileSync(rules, optional);
  await refused(t, srv, dir, await client(port, '127.0.0.3'), `: rules ${optional}: not a cdb file: 15 bytes, shorter than a cdb header (2048)`);
  tcprules(optional, [':allow']);
  const c2 = await client(port, '127.0.0.1');
  t.ok(c2.served, 'repaired: served again');
  await quit(c2);
  await stopServer(t, srv);
});

t.test('-C 2: a third connection at once from one address is refused, the next after one ends is not; TCPCONNMAX in a rule', async (t) => {
  const dir = tempDir(t);
  const rules = join(dir, 'rules.cdb');
  tcprules(rules, ['127.0.0.2:allow,TCPCONNMAX="1"', ':allow']);
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1' }), [...SERVER_FLAGS, '-C', '2', '-x', rules], [APP]);

  const a = await client(port, '127.0.0.1');
  const b = await client(port, '127.0.0.1');
  t.ok(a.served && b.served, 'two from 127.0.0.1 served');
  t.same([(await appEnv(dir, a)).get('TCPCONNNUM'), (await appEnv(dir, b)).get('TCPCONNNUM')], ['1', '2'], "TCPCONNNUM, as s6-tcpserver's");
  await refused(t, srv, dir, await client(port, '127.0.0.1'), ': 2 connections from 127.0.0.1 already (-C 2)');

  const other = await client(port, '127.0.0.2');
  t.ok(other.served, 'another address is counted apart');
  await refused(t, srv, dir, await client(port, '127.0.0.2'), ': 1 connection from 127.0.0.2 already (TCPCONNMAX=1)');

  const ended = Number(readReport(join(dir, String(a.port)), 'pid'));
  await quit(a);
  await srv.end({ pid: ended });
  const again = await client(port, '127.0.0.1');
  t.ok(again.served, 'one ended: 127.0.0.1 served again');
  t.equal((await appEnv(dir, again)).get('TCPCONNNUM'), '2');
  for (const c of [b, other, again]) await quit(c);
  await stopServer(t, srv);
});

t.test('--implicit: the same rules, checked before the handshake; the settings beside the session variables', async (t) => {
  const dir = tempDir(t);
  const rules = join(dir, 'rules.cdb');
  tcprules(rules, ['127.0.0.2:deny', ':allow,RELAYCLIENT="",SSL_PROTOCOL="forged"']);
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1' }), [...SERVER_FLAGS, '--implicit', '-x', rules], [APP]);
  const tls = await new Promise<TLSSocket>((res, rej) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername: 'mail.example.test', rejectUnauthorized: false });
    s.once('secureConnect', () => res(s));
    s.once('error', rej);
  });
  const lines = new Lines(tls as unknown as Socket);
  t.equal(await lines.line(), '220 test ESMTP');
  const env = await waitFor(join(dir, String(tls.localPort), 'env'));
  t.match(env, /^RELAYCLIENT=$/m, "the rule's setting");
  t.match(env, /^SSL_PROTOCOL=TLSv1\.[23]$/m, 'the session variables come after the rules: a rule cannot forge them');
  tls.write('QUIT\r\n');
  await lines.line();
  tls.destroy();

  // A TLS client refused: closed before any handshake byte.
  const refusedTls = await new Promise<Error>((res) => {
    const raw = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
    const s = tlsConnect({ socket: raw, servername: 'mail.example.test', rejectUnauthorized: false });
    s.once('secureConnect', () => res(new Error('handshake done')));
    s.once('error', res);
  });
  t.match(refusedTls.message, /socket disconnected before secure TLS connection was established|ECONNRESET/, 'no handshake');
  t.ok(await logged(srv, /^ucspi-tls-server: deny: 127\.0\.0\.2 port \d+ by rule 127\.0\.0\.2$/m), 'the deny line');
  t.equal(srv.starts().length, 1, 'one app started, for the allowed client only');
  await srv.end({ nth: 0 });
  await stopServer(t, srv);
});

t.test('options refused at once: -X alone, -C 0', async (t) => {
  const env = { PATH: process.env.PATH, CERTFILE: '/nonexistent' };
  for (const [flags, re] of [
    [['-X'], /^ucspi-tls-server: pid \d+: fatal: -X goes with -x FILE \(see ucspi-tls-server --help\)\n$/],
    [['-C', '0'], /^ucspi-tls-server: pid \d+: fatal: -C needs a whole number from 1, not '0' \(see ucspi-tls-server --help\)\n$/],
  ] as Array<[string[], RegExp]>) {
    const r = await SERVER_MODE.runAlone(flags, [APP], env);
    t.equal(r.status, 100, `${flags.join(' ')}: exit 100`);
    t.match(r.stderr, re);
  }
});
