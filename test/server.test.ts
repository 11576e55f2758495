// ucspi-tls-server as a launcher: tcpserver's variables, IPv6, the log's start and end
// lines, the -c limit, and sockets handed over by systemd (Accept=no).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import {
  APP, appFds, baseEnv, freePort, Launcher, Lines, logged, makeCert, readReport, SERVER, ServerLauncher, sleep, startTls,
  tempDir, ucspiTlsServer, waitFor,
} from './helpers';
import { stopServer } from './modes';

/** Banner, then QUIT, in plaintext; the client's own port (the app's TCPREMOTEPORT). */
async function plainSession(port: number, host = '127.0.0.1'): Promise<number> {
  const sock = connect({ port, host });
  const lines = new Lines(sock);
  await lines.reply('220');
  const local = sock.localPort!;
  sock.write('QUIT\r\n');
  await lines.line();
  sock.destroy();
  return local;
}

/** The app's PROTO and TCP* variables, with the two ports named rather than numbered. */
function tcpVars(env: string, port: number, client: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of env.matchAll(/^(PROTO|TCP\w*)=(.*)$/gm)) {
    out[m[1]!] = m[2] === String(port) ? 'PORT' : m[2] === String(client) ? 'CLIENT' : m[2]!;
  }
  return out;
}

const FORGED = { TCPREMOTEHOST: 'forged.example', TCPREMOTEINFO: 'forged', TCPLOCALHOST: 'forged.example' };

t.test("the app gets tcpserver's variables with tcpserver's values (-l NAME, no lookups)", async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const env = baseEnv(certs, { REPORT: dir, REPORT_EACH: '1', ...FORGED });

  const tcpPort = await freePort();
  const tcp = new Launcher('tcpserver', ['-R', '-H', '-l', 'mail.example.test', '127.0.0.1', String(tcpPort), APP], env);
  t.teardown(() => tcp.stop());
  await tcp.ready(tcpPort);
  const c1 = await plainSession(tcpPort);
  const want = tcpVars(await waitFor(join(dir, String(c1), 'env')), tcpPort, c1);
  await tcp.stop();
  t.same(Object.keys(want).sort(), ['PROTO', 'TCPLOCALHOST', 'TCPLOCALIP', 'TCPLOCALPORT', 'TCPREMOTEIP', 'TCPREMOTEPORT'], "tcpserver's set, for the record");

  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, env, ['-v', '-l', 'mail.example.test'], [APP]);
  const c2 = await plainSession(port);
  t.same(tcpVars(await waitFor(join(dir, String(c2), 'env')), port, c2), want, 'the same names and values');

  // Without -l: no TCPLOCALHOST at all, not even the one in the server's environment.
  const port2 = await freePort();
  const srv2 = await ucspiTlsServer(t, port2, env, [], [APP]);
  const c3 = await plainSession(port2);
  const { TCPLOCALHOST: _, ...rest } = want;
  t.same(tcpVars(await waitFor(join(dir, String(c3), 'env')), port2, c3), rest, 'no TCPLOCALHOST without -l');
  await stopServer(t, srv);
  await stopServer(t, srv2);
});

const hasIpv6Loopback = /^0{31}1 \S+ \S+ \S+ \S+\s+lo$/m.test(readFileSync('/proc/net/if_inet6', 'utf8'));

// IPv6 where the machine has it (a container may have no ::1).
if (!hasIpv6Loopback) t.comment('no ::1 on this machine: IPv6 not tested');
else t.test('IPv6 on ::1: PROTO=TCP6, the addresses as ucspi-tcp6 gives them, TLS through it', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1' }), ['-v'], [APP], { host: '::1' });
  const tls = await startTls(port, { host: '::1' });
  const client = tls.localPort!;
  const lines = new Lines(tls as unknown as Socket);
  tls.write('NOOP\r\n');
  t.equal(await lines.line(), '250 yes NOOP', 'a line through TLS over IPv6');
  tls.write('QUIT\r\n');
  await lines.line();
  tls.destroy();
  const env = readReport(join(dir, String(client)), 'env');
  t.same(tcpVars(env, port, client), {
    PROTO: 'TCP6',
    TCPLOCALIP: '::1', TCPLOCALPORT: 'PORT', TCPREMOTEIP: '::1', TCPREMOTEPORT: 'CLIENT',
    TCP6LOCALIP: '::1', TCP6LOCALPORT: 'PORT', TCP6REMOTEIP: '::1', TCP6REMOTEPORT: 'CLIENT',
  });
  t.match(srv.err, new RegExp(`^ucspi-tls-server: pid \\d+: start: ::1 port ${client} -> ::1 port ${port}, worker \\d+, 1 of 40$`, 'm'));
  t.equal((await srv.end()).status, 0);
  await stopServer(t, srv);
});

t.test('the start and end lines: addresses, worker, count; exit status, tls or plaintext, bytes each way', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1', QUIT_STATUS: '3' }), ['-c', '7', '-w', '2'], [APP]);
  // The socket may show as listening a moment before the line reaches us.
  t.ok(await logged(srv, new RegExp(`^ucspi-tls-server: listening on 127\\.0\\.0\\.1 port ${port}, 2 workers, at most 7 connections$`, 'm')), 'the start line');
  t.equal(srv.workers().length, 2, 'two workers run');

  const tls = await startTls(port);
  const client = tls.localPort!;
  const lines = new Lines(tls as unknown as Socket);
  tls.write('NOOP\r\n'); // 6 bytes to the app, "250 yes NOOP\r\n" (14) back
  await lines.line();
  tls.write('QUIT\r\n'); // 6 more, "221 bye\r\n" (9) back
  await lines.line();
  const app = Number(readReport(join(dir, String(client)), 'pid'));
  const start = await srv.start();
  t.same(start, { pid: app, remotePort: client, worker: start.worker }, 'the start line names the app and the client');
  t.match(srv.err, new RegExp(`^ucspi-tls-server: pid ${app}: start: 127\\.0\\.0\\.1 port ${client} -> 127\\.0\\.0\\.1 port ${port}, worker [12], 1 of 7$`, 'm'));
  const end = await srv.end({ pid: app });
  t.same({ ...end, seconds: 0 }, { pid: app, status: 3, signal: null, session: 'tls', toClient: 23, toApp: 12, seconds: 0 }, 'exit 3, tls, 23 bytes to the client, 12 to the app');
  t.ok(end.seconds > 0 && end.seconds < 10, `a duration (${end.seconds} s)`);
  tls.destroy();

  const plain = await plainSession(port);
  const app2 = Number(readReport(join(dir, String(plain)), 'pid'));
  t.same({ ...(await srv.end({ pid: app2 })), seconds: 0 }, { pid: app2, status: 3, signal: null, session: 'plaintext', toClient: 0, toApp: 0, seconds: 0 },
    'a session without TLS: the server saw no bytes');
  t.match(srv.err, new RegExp(`^ucspi-tls-server: pid ${app2}: start: 127\\.0\\.0\\.1 port ${plain} -> 127\\.0\\.0\\.1 port ${port}, worker [12], 1 of 7$`, 'm'),
    'the first connection no longer counts');
  await stopServer(t, srv);
});

t.test('-c 2: the third client gets no banner until a connection ends, then it does', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1' }), ['-v', '-c', '2'], [APP]);
  const open = async (): Promise<{ sock: Socket; lines: Lines; got: () => number }> => {
    const sock = connect({ port, host: '127.0.0.1' });
    let bytes = 0;
    sock.on('data', (d: Buffer) => (bytes += d.length));
    return { sock, lines: new Lines(sock), got: () => bytes };
  };
  const [a, b] = [await open(), await open()];
  await a.lines.reply('220');
  await b.lines.reply('220');
  const c = await open();
  await new Promise((r) => c.sock.once('connect', r));
  await sleep(1500);
  t.equal(c.got(), 0, 'no banner for the third while two are open');
  t.equal(srv.starts().length, 2, 'two connections started');
  t.ok(await logged(srv, /^ucspi-tls-server: 2 connections: accepting paused$/m), 'the pause is logged');
  a.sock.write('QUIT\r\n');
  t.equal(await a.lines.line(), '221 bye');
  t.equal(await c.lines.line(), '220 test ESMTP', 'the third gets its banner once the first has ended');
  t.ok(await logged(srv, /^ucspi-tls-server: accepting resumed$/m));
  for (const x of [b, c]) {
    x.sock.write('QUIT\r\n');
    await x.lines.line();
    x.sock.destroy();
  }
  await srv.end({ nth: 2 });
  t.same(srv.ends().map((e) => e.status), [0, 0, 0]);
  await stopServer(t, srv);
});

t.test('systemd-socket-activate -l (no --accept): the listening socket handed over, every connection served by one server', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const l = new ServerLauncher('systemd-socket-activate', [
    '-l', `127.0.0.1:${port}`, '-E', 'CERTFILE', '-E', 'KEYFILE', '-E', 'REPORT', '-E', 'REPORT_EACH', SERVER, '-v', APP,
  ], baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1' }));
  t.teardown(() => l.stop());
  await l.ready(port);
  const clients: number[] = [];
  for (let i = 0; i < 2; i++) {
    const tls = await startTls(port);
    clients.push(tls.localPort!);
    const lines = new Lines(tls as unknown as Socket);
    tls.write('NOOP\r\n');
    t.equal(await lines.line(), '250 yes NOOP', `connection ${i + 1}: a line through TLS`);
    tls.write('QUIT\r\n');
    await lines.line();
    tls.destroy();
  }
  t.ok(await logged(l, /^ucspi-tls-server: listening on /m), 'it serves the socket it was given');
  for (const c of clients) {
    const report = join(dir, String(c));
    t.same(appFds(report), ['0', '1', '2', '3', '4', '5'], 'the app has exactly fds 0-5 (not the listening socket)');
    t.notMatch(readReport(report, 'env'), /^LISTEN_/m, 'LISTEN_* removed');
    t.match(readReport(report, 'env'), new RegExp(`^TCPLOCALPORT=${port}$`, 'm'));
    t.match(readReport(report, 'env'), new RegExp(`^TCPREMOTEPORT=${c}$`, 'm'));
  }
  t.equal(l.starts().length, 2, 'both connections were started by the one server');
  t.ok(l.workers().length >= 1, 'systemd-socket-activate became the server: the workers are its children');
  await l.end({ nth: 1 });
  await stopServer(t, l);
});
