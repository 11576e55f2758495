// Bad input from the app: odd control bytes, several commands, a command after EOF, the
// control socket closed early, plaintext on fd 1 inside TLS, an exit without reading, a
// signal, a grandchild holding the pipes. Each: the log, the exit status, what the app and
// the client saw, and nothing of the helper left running.
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { alive, Lines, ROOT, readReport, waitFor } from './helpers';
import { closed, endStatus, helperLog, helperPid, leftovers, serve, toStartTls, type Served } from './hostile';

const HOSTILE_APP = join(ROOT, 'test', 'apps', 'hostile-app');
const EOF_STATUS = 9;

function start(t: Test, mode: string): Promise<Served> {
  return serve(t, { MODE: mode, EOF_STATUS: String(EOF_STATUS) }, ['-v'], [HOSTILE_APP]);
}

/** The log, each line against its pattern, nothing more. */
function logIs(t: Test, log: string[], want: Array<string | RegExp>): void {
  t.equal(log.length, want.length, `log: ${JSON.stringify(log)}`);
  want.forEach((w, i) => (typeof w === 'string' ? t.equal(log[i], w) : t.match(log[i], w)));
}

async function tlsUp(sock: Socket): Promise<{ tls: TLSSocket; lines: Lines; errors: string[] }> {
  const tls = tlsConnect({ socket: sock, rejectUnauthorized: false, servername: 'mail.example.test' });
  const errors: string[] = [];
  tls.on('error', (e) => errors.push(e.message));
  await new Promise((r) => tls.once('secureConnect', r));
  return { tls, lines: new Lines(tls as unknown as Socket), errors };
}

const STARTED = /^TLS started: TLSv1\.3 \S+ sni=mail\.example\.test$/;

/** A session that works: a line through TLS and back, then the client's close_notify. */
async function echoSession(t: Test, s: Served): Promise<number> {
  const { sock } = await toStartTls(s.port);
  const pid = await helperPid(s.srv);
  const { tls, lines } = await tlsUp(sock);
  tls.write('NOOP\r\n');
  t.equal(await lines.line(), '250 NOOP', 'TLS works');
  tls.end();
  t.equal(await endStatus(s.srv, pid), EOF_STATUS, 'the app saw EOF; its status');
  return pid;
}

t.test('an unknown control byte (NUL): one line, no TLS, the app sees EOF everywhere', async (t) => {
  const s = await start(t, 'unknown');
  const { sock } = await toStartTls(s.port);
  const pid = await helperPid(s.srv);
  const rest: Buffer[] = [];
  sock.on('data', (d: Buffer) => rest.push(d));
  await closed(sock);
  t.equal(Buffer.concat(rest).length, 0, 'not one byte to the client');
  t.equal(await endStatus(s.srv, pid), 7);
  logIs(t, helperLog(s.srv, pid), ['unknown command 0x00 on the control socket: TLS not started', 'app exited with 7']);
  t.equal(readFileSync(join(s.dir, 'reply')).length, 0);
  t.match(readReport(s.dir, 'read-pipe'), /^eof/);
  t.same(await leftovers(s), []);
});

t.test('several commands at once: the first counts, the rest is dropped with one line', async (t) => {
  const s = await start(t, 'several');
  const pid = await echoSession(t, s);
  logIs(t, helperLog(s.srv, pid), [
    'app asked for TLS (Y)',
    "ignored 2 byte(s) after the command on the control socket (first 'Y' (0x59))",
    STARTED,
    'app exited with 9',
    /^TLS ended: 10 bytes to client, 6 bytes to app$/,
  ]);
  t.match(readFileSync(join(s.dir, 'reply'), 'latin1'), /^SSL_PROTOCOL=TLSv1\.3\0[^]*\0\0$/, 'one reply, whole');
  t.same(await leftovers(s), []);
});

t.test('a command after the reply: EPIPE for the app, the session goes on', async (t) => {
  const s = await start(t, 'late');
  const pid = await echoSession(t, s);
  t.equal(readReport(s.dir, 'late').trim(), 'failed', 'the late command is refused');
  t.match(readReport(s.dir, 'late-err'), /Broken pipe/);
  logIs(t, helperLog(s.srv, pid), ['app asked for TLS (Y)', STARTED, 'app exited with 9', /^TLS ended: /]);
  t.same(await leftovers(s), []);
});

t.test('the control socket closed right after the command: TLS goes on without a reply', async (t) => {
  const s = await start(t, 'close-early');
  const pid = await echoSession(t, s);
  logIs(t, helperLog(s.srv, pid), ['app asked for TLS (Y)', STARTED, 'app exited with 9', /^TLS ended: /]);
  t.same(await leftovers(s), []);
});

t.test('plaintext written on fd 1 inside TLS: the client refuses it, never takes it as data', async (t) => {
  const s = await start(t, 'fd1');
  const { sock } = await toStartTls(s.port);
  const pid = await helperPid(s.srv);
  const { tls, errors } = await tlsUp(sock);
  const got: Buffer[] = [];
  tls.on('data', (d: Buffer) => got.push(d));
  await closed(tls as unknown as Socket);
  t.match(errors.join(' '), /wrong version number|packet length too long|record|decrypt/, 'the client saw a broken record');
  t.notMatch(Buffer.concat(got).toString('latin1'), /plaintext after TLS/, 'not delivered as TLS data');
  t.equal(await endStatus(s.srv, pid), EOF_STATUS, 'the app saw EOF');
  const log = helperLog(s.srv, pid);
  t.match(log.filter((l) => l.startsWith('client connection: ')), [/alert/], 'one line: the client’s alert');
  t.same(await leftovers(s), []);
});

t.test('the app exits right after its command, without reading: its status, the client is let go', async (t) => {
  const s = await start(t, 'exit-now');
  const { sock } = await toStartTls(s.port);
  const pid = await helperPid(s.srv);
  const tls = tlsConnect({ socket: sock, rejectUnauthorized: false, servername: 'mail.example.test' });
  tls.on('error', () => {});
  await closed(tls as unknown as Socket);
  t.equal(await endStatus(s.srv, pid), 5);
  const log = helperLog(s.srv, pid);
  t.equal(log.at(-1), 'app exited with 5');
  t.notOk(log.some((l) => /^TLS started/.test(l)), 'no relay for a gone app');
  t.same(await leftovers(s), []);
});

t.test('the app kills itself with a signal inside TLS: 128+N, close_notify to the client', async (t) => {
  const s = await start(t, 'signal');
  const { sock } = await toStartTls(s.port);
  const pid = await helperPid(s.srv);
  const { tls, lines } = await tlsUp(sock);
  t.equal(await lines.line(), '250 going');
  const ended = new Promise<void>((r) => tls.once('end', () => r()));
  await ended;
  t.pass('the client got close_notify and EOF');
  t.equal(await endStatus(s.srv, pid), 128 + 10);
  logIs(t, helperLog(s.srv, pid), ['app asked for TLS (Y)', STARTED, 'app exited on SIGUSR1', /^TLS ended: 11 bytes to client, 0 bytes to app$/]);
  t.same(await leftovers(s), []);
});

t.test('the app exits leaving a grandchild that holds its pipes: the helper still ends', async (t) => {
  const s = await start(t, 'grandchild');
  const { sock } = await toStartTls(s.port);
  const pid = await helperPid(s.srv);
  const { tls, lines } = await tlsUp(sock);
  t.equal(await lines.line(), '250 forked');
  lines.detach();
  tls.resume();
  await new Promise<void>((r) => tls.once('end', () => r()));
  t.pass('close_notify and EOF reached the client');
  t.equal(await endStatus(s.srv, pid), 0, "the app's status");
  logIs(t, helperLog(s.srv, pid), [
    'app asked for TLS (Y)',
    STARTED,
    'app exited with 0',
    'app exited, but its write channel is still open (held by a child of the app): closing the connection',
    /^TLS ended: 12 bytes to client, 0 bytes to app$/,
  ]);
  const grandchild = Number((await waitFor(join(s.dir, 'grandchild'))).trim());
  t.ok(alive(grandchild), "the grandchild is the app's business; it still runs (the teardown kills it)");
  t.same(await leftovers(s, 500).then((l) => l.filter((p) => p !== grandchild)), [], 'the helper and the app are gone');
  tls.destroy();
});
