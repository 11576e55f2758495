// The app-side module (import { startTls } from 'ucspi-tls-wrap'): the demo app is written
// with it; here it meets real clients, a helper that never closes the control socket, and
// commands pipelined after STARTTLS.
import t from 'tap';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { LineReader, startTls, StartTlsError } from '../src/app-side';
import { baseEnv, DEMO, freePort, HELPER, Lines, logged, makeCert, ROOT, tcpserver, tempDir } from './helpers';

t.test('commands pipelined after STARTTLS: refused before the go-ahead, no TLS, nothing acted on', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const srv = await tcpserver(port, baseEnv(makeCert(dir)), [HELPER, '-v', DEMO]);
  t.teardown(() => srv.stop());
  const sock = netConnect({ port, host: '127.0.0.1' });
  const lines = new Lines(sock);
  t.equal(await lines.line(), '220 demo ESMTP (plaintext until STARTTLS)');
  sock.write('EHLO x\r\n');
  t.same(await lines.reply('250'), ['250-demo', '250-STARTTLS', '250 HELP']);
  sock.write('STARTTLS\r\nNOOP\r\n'); // one segment: the NOOP is in the app's buffer with the STARTTLS
  t.equal(await lines.line(), '554 5.5.1 pipelined input after STARTTLS', 'no 220: the client never starts TLS');
  await t.rejects(lines.line(), /connection ended/, 'the NOOP got no answer; the app closed');
  t.ok(await logged(srv, /end \d+ status 0/));
  t.match(srv.err, /app closed the control socket: no TLS/, 'the helper was never asked for TLS');
  t.notMatch(srv.err, /TLS started/);
});

t.test('STARTTLS through the module: 4 MiB of DATA arrive exact, the variables are the reply', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const srv = await tcpserver(port, baseEnv(makeCert(dir)), [HELPER, '-v', DEMO]);
  t.teardown(() => srv.stop());
  const sock = netConnect({ port, host: '127.0.0.1' });
  const plain = new Lines(sock);
  await plain.line();
  sock.write('STARTTLS\r\n');
  t.equal(await plain.line(), '220 2.0.0 go ahead');
  plain.detach();
  const tls = await new Promise<TLSSocket>((res, rej) => {
    const s = tlsConnect({ socket: sock, servername: 'mail.example.test', rejectUnauthorized: false });
    s.once('secureConnect', () => res(s));
    s.once('error', rej);
  });
  const lines = new Lines(tls as unknown as Socket);
  tls.write('TLS\r\n');
  t.match(await lines.line(), /^250 TLSv1\.3 \S+ sni=mail\.example\.test$/);
  tls.write('EHLO client.test\r\n');
  t.same(await lines.reply('250'), ['250-demo', '250 HELP'], 'no STARTTLS offered inside TLS');
  tls.write('MAIL FROM:<a@client.test>\r\nRCPT TO:<b@mail.example.test>\r\n');
  t.equal(await lines.line(), '250 2.1.0 sender <a@client.test> ok');
  t.equal(await lines.line(), '250 2.1.5 recipient <b@mail.example.test> ok');
  tls.write('DATA\r\n');
  t.equal(await lines.line(), '354 end with <CRLF>.<CRLF>');
  const h = createHash('sha256');
  let size = 0;
  while (size < 4 << 20) {
    const l = Buffer.from(`${randomBytes(57).toString('base64')}\r\n`);
    h.update(l);
    size += l.length;
    if (!tls.write(l)) await new Promise((r) => tls.once('drain', r));
  }
  tls.write('.\r\n');
  t.equal(await lines.line(), `250 2.0.0 ${size} bytes sha256=${h.digest('hex')}`);
  tls.write('QUIT\r\n');
  t.equal(await lines.line(), '221 bye');
  tls.destroy();
});

t.test('a helper that never closes the control socket (as sslserver): the reply ends at the empty variable', async (t) => {
  // This test plays the helper: the child gets the three fds and runs the module.
  const script = `
    const { startTls } = require(${JSON.stringify(ROOT)});
    startTls().then(({ vars, stream }) => {
      stream.write(JSON.stringify(vars) + '\\n');
      stream.on('data', (d) => stream.end('got ' + d + '\\n'));
    }, (e) => { console.error(e.message); process.exit(3); });`;
  const child = spawn(process.execPath, ['-e', script], {
    env: { SSLCTLFD: '3', SSLREADFD: '4', SSLWRITEFD: '5' },
    stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe', 'pipe'],
  });
  const [ctl, toApp, fromApp] = [3, 4, 5].map((i) => child.stdio[i] as Socket) as [Socket, Socket, Socket];
  const cmd = await new Promise<Buffer>((r) => ctl.once('data', r));
  t.equal(cmd.toString(), 'Y', 'the module asked for the variables');
  ctl.write('SSL_PROTOCOL=TLSv1.3\0SSL_CIPHER=TLS_AES_128_GCM_SHA256\0UNSET_NAME\0\0');
  const out = new Lines(fromApp);
  t.equal(await out.line(), '{"SSL_PROTOCOL":"TLSv1.3","SSL_CIPHER":"TLS_AES_128_GCM_SHA256"}', 'a name without = is left unset, as s6 means it');
  toApp.end('ping');
  t.equal(await out.line(), 'got ping', 'the two pipes are the stream');
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  t.equal(code, 0);
  ctl.destroy();
});

t.test('outside a helper: StartTlsError, one clear message', async (t) => {
  await t.rejects(startTls({ env: {} }), new StartTlsError('SSLCTLFD is not set: not run under a UCSPI-TLS helper'));
  await t.rejects(startTls({ env: { SSLCTLFD: 'x' } }), /SSLCTLFD=x is not an fd number/);
});

t.test('LineReader: CRLF and LF, a last line without one, buffered bytes, an over-long line', async (t) => {
  const src = new PassThrough();
  const r = new LineReader(src);
  src.write('EHLO a\r\nNOOP\nQUI');
  t.equal(await r.line(), 'EHLO a');
  t.equal(r.buffered, 8, 'what came after the line is counted');
  t.equal(await r.line(), 'NOOP');
  src.end('T');
  t.equal(await r.line(), 'QUIT');
  t.equal(await r.line(), null);
  const long = new PassThrough();
  const lr = new LineReader(long, 16);
  long.write('x'.repeat(40));
  await t.rejects(lr.line(), { name: 'LineTooLongError', message: 'line longer than 16 bytes' });
});
