// Bad input from the network, after the client said STARTTLS: for each, the helper's one log
// line, its exit status (the app's), the app seeing EOF, and nothing left running.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { Lines, readReport, sleep, waitFor } from './helpers';
import { clientHello, closed, endStatus, helperLog, helperPid, leftovers, OPENSSL_WORDS, serve, toStartTls, type Served } from './hostile';

const FAIL_STATUS = 7; // smtp-app's status when TLS failed (after checking its pipes)
const EOF_STATUS = 9; // smtp-app's status when its TLS read channel reached EOF

/** The app saw TLS fail: EOF with no reply, EOF on its read pipe, EPIPE on its write pipe. */
function assertAppSawFailure(t: Test, dir: string): void {
  t.equal(readReport(dir, 'state').trim(), 'failed');
  t.equal(readFileSync(join(dir, 'reply')).length, 0, 'no reply on the control socket, just EOF');
  t.match(readReport(dir, 'read-pipe'), /^eof/, 'EOF on the read pipe');
  t.equal(readReport(dir, 'write-pipe').trim(), 'failed', 'EPIPE on the write pipe');
}

/** STARTTLS, then `attack`; the helper must end with the one line and the app's status. */
async function handshakeCase(t: Test, line: string | RegExp, attack: (sock: Socket) => Promise<void>, flags: string[] = []): Promise<void> {
  const s = await serve(t, { EOF_STATUS: String(EOF_STATUS) }, flags);
  const { sock } = await toStartTls(s.port);
  const pid = await helperPid(s.srv);
  await attack(sock);
  t.equal(await endStatus(s.srv, pid), FAIL_STATUS, "exit status: the app's");
  const log = helperLog(s.srv, pid);
  t.equal(log.length, 1, `one log line: ${JSON.stringify(log)}`);
  if (typeof line === 'string') t.equal(log[0], line);
  else t.match(log[0], line);
  assertAppSawFailure(t, s.dir);
  t.same(await leftovers(s), [], 'no process left');
  sock.destroy();
}

t.test('garbage instead of a ClientHello', (t) =>
  handshakeCase(t, 'handshake failed: client sent non-TLS bytes, not a TLS ClientHello', async (sock) => {
    sock.write(Buffer.concat([Buffer.from([0x00, 0xff, 0x13]), randomBytes(200)]));
    await closed(sock);
  }),
);

t.test('an HTTP request', (t) =>
  handshakeCase(t, 'handshake failed: client sent an HTTP request, not a TLS ClientHello', async (sock) => {
    sock.write('GET / HTTP/1.1\r\nHost: mail.example.test\r\n\r\n');
    await closed(sock);
  }),
);

t.test('a truncated ClientHello, then EOF', (t) =>
  handshakeCase(t, 'handshake failed: client closed the connection before its ClientHello', async (sock) => {
    sock.end(clientHello().subarray(0, 60));
    await closed(sock);
  }),
);

t.test('an SSLv2 hello', (t) =>
  handshakeCase(t, 'handshake failed: client sent an SSLv2 hello, not a TLS ClientHello', async (sock) => {
    // SSLv2 CLIENT-HELLO (version 2), as old scanners send it.
    sock.write(Buffer.from('802e0100020015000000100700c0050080030080010080080080060040040080020080', 'hex'));
    await closed(sock);
  }),
);

t.test('an SSLv3 hello', (t) =>
  handshakeCase(t, 'handshake failed: version too low (the client offers SSLv3 at most)', async (sock) => {
    sock.write(clientHello({ recordVersion: 0x0300, clientVersion: 0x0300, suites: [0x002f, 0x000a] }));
    await closed(sock);
  }),
);

t.test('a TLS 1.0 client', (t) =>
  handshakeCase(t, 'handshake failed: unsupported protocol (the client offers TLS 1.0 at most)', async (sock) => {
    sock.write(clientHello({ clientVersion: 0x0301, suites: [0xc013, 0x002f] }));
    await closed(sock);
  }),
);

t.test('a client that stops mid-handshake: the time limit (-t 2)', (t) =>
  handshakeCase(
    t,
    'handshake timed out after 2 s',
    async (sock) => {
      sock.write(clientHello()); // a good TLS 1.2 hello; then nothing more
      await closed(sock);
    },
    ['-t', '2'],
  ),
);

t.test('a client that closes right after its side of the handshake: noticed at once, not at the time limit', (t) =>
  // Node's client reports the handshake done before its Finished is out; destroyed at once,
  // the Finished never leaves. With -t 600, only the EOF can end the helper in the test's wait.
  handshakeCase(
    t,
    'handshake failed: client closed the connection during the handshake',
    async (sock) => {
      const tls = tlsConnect({ socket: sock, rejectUnauthorized: false, servername: 'mail.example.test' });
      tls.on('error', () => {});
      await new Promise((r) => tls.once('secureConnect', r));
      tls.destroy();
    },
    ['-t', '600'],
  ),
);

/** A TLS session with one round trip done, for what goes wrong after the handshake. */
async function established(s: Served, maxVersion: 'TLSv1.2' | 'TLSv1.3' = 'TLSv1.3'): Promise<{ sock: Socket; tls: TLSSocket; pid: number; errors: string[] }> {
  const { sock } = await toStartTls(s.port);
  const pid = await helperPid(s.srv);
  const tls = tlsConnect({ socket: sock, rejectUnauthorized: false, servername: 'mail.example.test', maxVersion });
  const errors: string[] = [];
  tls.on('error', (e) => errors.push(e.message));
  await new Promise((r) => tls.once('secureConnect', r));
  const lines = new Lines(tls as unknown as Socket);
  tls.write('NOOP\r\n');
  if ((await lines.line()) !== '250 yes NOOP') throw new Error('no answer through TLS');
  lines.detach();
  tls.resume();
  return { sock, tls, pid, errors };
}

t.test('TLS 1.2 renegotiation asked by the client: refused, the client gives up', async (t) => {
  const s = await serve(t, { EOF_STATUS: String(EOF_STATUS) });
  const { tls, pid, errors } = await established(s, 'TLSv1.2');
  // Node reports the refusal as the renegotiation's result or as the socket's error.
  let result = '';
  t.ok(tls.renegotiate({}, (e) => (result = e?.message ?? 'renegotiated')), 'the client asks');
  await closed(tls as unknown as Socket);
  t.match(`${result} ${errors.join(' ')}`, /no renegotiation/, 'the server answered no_renegotiation');
  t.notMatch(result, /^renegotiated$/);
  t.equal(await endStatus(s.srv, pid), EOF_STATUS, 'the app saw EOF, its status is the exit status');
  t.same(helperLog(s.srv, pid), [`client connection: ${OPENSSL_WORDS.handshakeFailureAlert}`]);
  t.same(await leftovers(s), []);
});

t.test('a client that resets the connection mid-transfer', async (t) => {
  const s = await serve(t, { EOF_STATUS: String(EOF_STATUS), BULK: String(64 * 1024 * 1024) });
  const { sock, tls, pid } = await established(s);
  tls.write('SOURCE\r\n'); // the app starts sending 64 MiB
  let got = 0;
  await new Promise<void>((r) =>
    tls.on('data', (d: Buffer) => {
      got += d.length;
      if (got > 1024 * 1024) r();
    }),
  );
  sock.resetAndDestroy();
  // The app's cat gets EPIPE, then it reads its channel to EOF and exits 0.
  t.equal(await endStatus(s.srv, pid), 0, "the app's status");
  t.same(helperLog(s.srv, pid), ['client connection: connection reset by client']);
  t.equal((await waitFor(join(s.dir, 'sink.sha'))).trim().length, 64, 'the app read its channel to EOF');
  t.same(await leftovers(s), []);
});

t.test('a record over 16 KiB: record_overflow, the app sees EOF', async (t) => {
  const s = await serve(t, { EOF_STATUS: String(EOF_STATUS) });
  const { sock, tls, pid, errors } = await established(s);
  // An application_data record of 18433 bytes: beyond 2^14 + 2048 even for TLS 1.2's ciphertext.
  sock.write(Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x48, 0x01]), Buffer.alloc(0x4801, 0x41)]));
  await closed(tls as unknown as Socket);
  t.match(errors.join(' '), /record overflow/, 'the client got the record_overflow alert');
  t.equal(await endStatus(s.srv, pid), EOF_STATUS);
  t.same(helperLog(s.srv, pid), [`client connection: ${OPENSSL_WORDS.recordTooLong}`]);
  t.same(await leftovers(s), []);
});

t.test('a client that never reads: everything waits; when it goes, everything ends', async (t) => {
  const s = await serve(t, { EOF_STATUS: String(EOF_STATUS), BULK: String(64 * 1024 * 1024) });
  const { sock, tls, pid } = await established(s);
  tls.pause();
  sock.pause();
  tls.write('SOURCE\r\n');
  await waitFor(join(s.dir, 'src.sha'), 20000); // the app is writing 64 MiB into a connection nobody reads
  await sleep(500);
  t.ok((await leftovers(s, 0)).includes(pid), 'the helper waits (flow control), it does not give up or buffer it all');
  sock.resetAndDestroy();
  t.equal(await endStatus(s.srv, pid), 0);
  t.same(helperLog(s.srv, pid), ['client connection: connection reset by client']);
  t.equal((await waitFor(join(s.dir, 'sink.sha'))).trim().length, 64, 'the app read its channel to EOF');
  t.same(await leftovers(s), []);
});
