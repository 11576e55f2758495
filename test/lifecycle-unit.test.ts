// The pure parts of ucspi-tls-server's stop, restart and live figures: the failure buckets,
// the runtime check for --reuse-port, the figure lines, the options, the stop sequence.
import t from 'tap';
import { Drain } from '../src/server/lifecycle/drain';
import { errorReason, failureOf, HandshakeError } from '../src/tls/failure';
import { Counters, figureLines } from '../src/server/lifecycle/figures';
import { privateBytes } from '../src/server/lifecycle/memory';
import { EXIT_USAGE } from '../src/contract/exit-codes';
import { parseServerArgs } from '../src/server/options';
import { reusePortRefusal } from '../src/server/lifecycle/reuse-port';

t.test("handshake failures: Node's code for OpenSSL's reason or the socket's errno -> its bucket", async (t) => {
  const cases: Array<[string, string]> = [
    ['ECONNRESET', 'client gone'],
    ['EPIPE', 'client gone'],
    ['ETIMEDOUT', 'other'],
    ['ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE', 'certificate required'],
    ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'certificate required'],
    ['ERR_SSL_NO_SHARED_CIPHER', 'no shared cipher/version'],
    ['ERR_SSL_UNSUPPORTED_PROTOCOL', 'no shared cipher/version'],
    ['ERR_SSL_VERSION_TOO_LOW', 'no shared cipher/version'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'no shared cipher/version'],
    ['ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM', 'no shared cipher/version'],
    ['ERR_SSL_NO_SUITABLE_KEY_SHARE', 'no shared cipher/version'],
    ['ERR_SSL_NO_SHARED_GROUPS', 'no shared cipher/version'],
    ['ERR_SSL_NO_CIPHERS_AVAILABLE', 'no shared cipher/version'],
    ['ERR_SSL_TLSV1_ALERT_INAPPROPRIATE_FALLBACK', 'no shared cipher/version'],
    ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'protocol'],
    ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'protocol'],
    // OpenSSL 3.5's words for what 3.0 calls an sslv3 alert.
    ['ERR_SSL_SSL/TLS_ALERT_HANDSHAKE_FAILURE', 'protocol'],
    ['ERR_SSL_UNEXPECTED_MESSAGE', 'protocol'],
    ['ERR_SSL_HTTP_REQUEST', 'protocol'],
    ['ERR_SSL_PACKET_LENGTH_TOO_LONG', 'protocol'],
    ['ERR_SSL_SOMETHING_NEW', 'other'],
  ];
  for (const [code, reason] of cases) t.equal(errorReason(Object.assign(new Error('x'), { code })), reason, code);
  t.equal(errorReason(new Error('no code')), 'other');
  t.equal(failureOf(new HandshakeError('handshake timed out after 1 s', 'timeout')), 'timeout', 'a HandshakeError carries its reason');
  t.equal(failureOf(new Error('handshake timed out after 1 s')), 'other', 'a plain Error is not read for one');
});

t.test('--reuse-port: Node.js 22.12 or 23.1 and later', async (t) => {
  for (const v of ['20.20.2', '22.11.0', '23.0.0', '18.20.4']) t.match(reusePortRefusal(v), `--reuse-port needs Node.js 22.12 or later (SO_REUSEPORT); this is Node.js ${v}: use a systemd socket instead`, v);
  for (const v of ['22.12.0', '22.20.1', '23.1.0', '24.22.3', '25.0.0']) t.equal(reusePortRefusal(v), undefined, v);
});

t.test('figure lines: finished sessions from the counters, running ones from the workers', async (t) => {
  const c = new Counters();
  c.accepted = 12;
  c.refused = 2;
  c.ended({ tls: true, toClient: 100, toApp: 50 });
  c.ended({ tls: false, toClient: 0, toApp: 0, failed: 'timeout' });
  c.ended({ tls: false, toClient: 0, toApp: 0, failed: 'protocol' });
  c.ended({ tls: false, toClient: 0, toApp: 0, failed: 'protocol' });
  c.ended({ tls: false, toClient: 0, toApp: 0 });
  const lines = figureLines('figures', {
    counters: c,
    now: 3,
    limit: 40,
    uptimeMs: 61999,
    acceptor: { pid: 10, rss: 50 * 1048576, private: 12.34 * 1048576 },
    spawner: { pid: 9, rss: 30 * 1048576, private: 4 * 1048576 },
    workers: [
      { index: 1, pid: 11, conns: 2, rss: 40 * 1048576, private: 8 * 1048576, tls: 1, toClient: 7, toApp: 3 },
      { index: 2, pid: 12, conns: 1 },
    ],
  });
  t.same(lines, [
    'figures: connections: 3 now (limit 40), 12 accepted, 2 refused, up 61 s',
    'figures: tls: 2 started, 3 handshakes failed (timeout 1, client gone 0, protocol 2, no shared cipher/version 0, certificate required 0, other 0)',
    'figures: bytes: 107 to clients, 53 to apps',
    'figures: acceptor pid 10: rss 50.0 MB, private 12.3 MB',
    'figures: spawner pid 9: rss 30.0 MB, private 4.0 MB',
    'figures: worker 1 pid 11: 2 connections, rss 40.0 MB, private 8.0 MB',
    'figures: worker 2 pid 12: 1 connections, rss ?, private ?',
  ]);
});

t.test('private memory from smaps_rollup', async (t) => {
  const text = 'Rss:               45000 kB\nPss:               20000 kB\nShared_Clean:      30000 kB\nPrivate_Clean:      1000 kB\nPrivate_Dirty:      9000 kB\nSwap:                  0 kB\n';
  t.equal(privateBytes(text), 10000 * 1024);
  t.equal(privateBytes(''), 0);
});

t.test('--grace and --reuse-port', async (t) => {
  const run = (argv: string[], env: Record<string, string> = {}): ReturnType<typeof parseServerArgs> => parseServerArgs(argv, { CERTFILE: '/c.pem', ...env }, 2, 100);
  const config = (argv: string[]) => {
    const p = run([...argv, '0', '25', 'app']);
    return p.kind === 'run' ? p.config : p;
  };
  t.match(config([]), { graceMs: 30000, reusePort: false }, 'defaults: 30 s, no SO_REUSEPORT');
  t.match(config(['--grace', '0']), { graceMs: 0 });
  t.match(config(['--grace', '300', '--reuse-port']), { graceMs: 300000, reusePort: true });
  for (const bad of ['-1', '1.5', 'x', '']) t.match(config(['--grace', bad]), { kind: 'error', status: EXIT_USAGE, message: /--grace needs a whole number of seconds/ }, `--grace '${bad}'`);
  t.match(config(['--grace', '1', '--grace', '2']), { kind: 'error', status: EXIT_USAGE, message: '--grace given more than once' });
  t.match(run(['--reuse-port', 'app'], { LISTEN_FDS: '1', LISTEN_PID: '100' }), { kind: 'error', status: EXIT_USAGE, message: /--reuse-port is for host and port/ });
});

t.test('the stop sequence', async (t) => {
  const run = (graceMs: number, left: number) => {
    const log: string[] = [];
    let sessions = left;
    let exits = 0;
    const d = new Drain(graceMs, {
      left: () => sessions,
      signalApps: (sig) => {
        log.push(`apps ${sig}`);
        return sessions;
      },
      log: (l) => log.push(l),
      exit: () => exits++,
    });
    return { d, log, exits: () => exits, end: () => { sessions--; d.ended(); } };
  };
  const idle = run(30000, 0);
  idle.d.signal('SIGTERM');
  t.same(idle.log, ['SIGTERM: no longer accepting; no session left']);
  t.equal(idle.exits(), 1, 'no session: exit at once');

  const old = run(0, 2);
  old.d.signal('SIGINT');
  t.same(old.log, ['apps SIGTERM', 'SIGINT: no longer accepting; 2 session(s) left, SIGTERM sent to 2 app(s)'], '--grace 0: the apps get SIGTERM at once');
  old.end();
  t.equal(old.exits(), 0);
  old.end();
  t.equal(old.exits(), 1, 'the last session ends the server (and its SIGKILL timer)');

  const graceful = run(60000, 1);
  graceful.d.signal('SIGTERM');
  t.same(graceful.log, ['SIGTERM: no longer accepting; 1 session(s) left, 60 s to end'], 'nothing signalled yet');
  graceful.d.signal('SIGTERM');
  t.same(graceful.log.slice(1), ['apps SIGTERM', 'SIGTERM again: 1 session(s) left, SIGTERM sent to 1 app(s)'], 'a second signal ends the grace period');
  graceful.d.signal('SIGINT');
  t.same(graceful.log.slice(3), ['SIGINT again: already ending 1 session(s)'], 'a third changes nothing');
  graceful.end();
  t.equal(graceful.exits(), 1, 'exit once the session is over; no timer left to hold the process');
});
