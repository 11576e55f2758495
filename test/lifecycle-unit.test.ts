// The pure parts of ucspi-tls-server's stop, restart and live figures: the failure buckets,
// the runtime check for --reuse-port, the figure lines, the options, the stop sequence.
import t from 'tap';
import { Drain } from '../src/server/lifecycle/drain';
import { failureReason } from '../src/server/lifecycle/failure-reason';
import { Counters, figureLines } from '../src/server/lifecycle/figures';
import { privateBytes } from '../src/server/lifecycle/memory';
import { EXIT_USAGE } from '../src/contract/exit-codes';
import { parseServerArgs } from '../src/server/options';
import { reusePortRefusal } from '../src/server/lifecycle/reuse-port';

t.test('handshake failures: the log line -> its bucket', async (t) => {
  const cases: Array<[string, string]> = [
    ['handshake timed out after 30 s', 'timeout'],
    ['handshake timed out after 0.5 s', 'timeout'],
    ['handshake failed: client closed the connection before its ClientHello', 'client gone'],
    ['handshake failed: client closed the connection during the handshake', 'client gone'],
    ['handshake failed: connection reset by client', 'client gone'],
    ['handshake failed: client went away', 'client gone'],
    ['handshake not started: the client connection is gone', 'client gone'],
    ['handshake failed: client sent an HTTP request, not a TLS ClientHello', 'protocol'],
    ['handshake refused: no certificate for server name other.example (--strict-sni)', 'protocol'],
    ['handshake failed: sslv3 alert bad certificate', 'protocol'],
    ['handshake failed: tlsv1 alert unknown ca', 'protocol'],
    ['handshake failed: unexpected message', 'protocol'],
    ['handshake failed: unsupported protocol (the client offers TLSv1.2 at most)', 'no shared cipher/version'],
    ['handshake failed: version too low', 'no shared cipher/version'],
    ['handshake failed: no shared cipher', 'no shared cipher/version'],
    ['handshake failed: no suitable signature algorithm', 'no shared cipher/version'],
    ['handshake failed: wrong version number', 'no shared cipher/version'],
    ['client certificate refused: the client sent none', 'certificate required'],
    ['client certificate refused: unable to get local issuer certificate', 'certificate required'],
    ['handshake failed: peer did not return a certificate', 'certificate required'],
    ['handshake not started: TLS policy rejected by OpenSSL: no cipher match', 'other'],
    ['handshake failed: something new', 'other'],
  ];
  for (const [line, reason] of cases) t.equal(failureReason(line), reason, line);
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
    launcher: { pid: 10, rss: 50 * 1048576, private: 12.34 * 1048576 },
    workers: [
      { index: 1, pid: 11, conns: 2, rss: 40 * 1048576, private: 8 * 1048576, tls: 1, toClient: 7, toApp: 3 },
      { index: 2, pid: 12, conns: 1 },
    ],
  });
  t.same(lines, [
    'figures: connections: 3 now (limit 40), 12 accepted, 2 refused, up 61 s',
    'figures: tls: 2 started, 3 handshakes failed (timeout 1, client gone 0, protocol 2, no shared cipher/version 0, certificate required 0, other 0)',
    'figures: bytes: 107 to clients, 53 to apps',
    'figures: launcher pid 10: rss 50.0 MB, private 12.3 MB',
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
