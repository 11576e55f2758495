// ucspi-tls-server's pure parts: options, systemd's fds, who runs as whom, tcpserver's
// variables, the log lines.
import t from 'tap';
import { endLine, listeningLine, startLine, workerDiedLine } from '../src/server/log-lines';
import { EXIT_CONFIG, EXIT_USAGE } from '../src/contract/exit-codes';
import { DEFAULT_BACKLOG, DEFAULT_CONCURRENCY, parseServerArgs, systemdFds } from '../src/server/options';
import { NOBODY, planServerPrivileges } from '../src/server/privileges';
import { tcpVariables, unmapped } from '../src/server/tcp-env';

const ENV = { CERTFILE: '/c.pem' };

t.test('options: tcpserver-like, the TLS ones as the helper has them', async (t) => {
  const r = parseServerArgs(['-v', '-1', '-c', '100', '-b', '50', '-w', '3', '-t', '5', '-l', 'mx.example', '--implicit', '0', '993', 'imapd', '-x'], ENV, 2, 42);
  t.equal(r.kind, 'run');
  if (r.kind !== 'run') return;
  const c = r.config;
  t.same(c.listen, { kind: 'address', host: '0.0.0.0', port: 993 }, 'host 0 is every IPv4 address');
  t.same(c.app, ['imapd', '-x'], 'options after the app are its own');
  t.same([c.concurrency, c.backlog, c.workers, c.handshakeTimeoutMs, c.localName, c.printPort, c.implicit, c.verbosity], [100, 50, 3, 5000, 'mx.example', true, true, 2]);

  const d = parseServerArgs(['::1', '25', 'app'], ENV, 4, 42);
  t.ok(d.kind === 'run' && d.config.concurrency === DEFAULT_CONCURRENCY && d.config.backlog === DEFAULT_BACKLOG && d.config.workers === 4, 'defaults: -c 40, -b 511, -w = CPUs');
  t.same(d.kind === 'run' && d.config.listen, { kind: 'address', host: '::1', port: 25 });
  t.ok(d.kind === 'run' && d.config.verbosity === 1 && d.config.appIds === undefined && d.config.workerIds === undefined);

  const ids = parseServerArgs(['-u', '1000', '-g', '100', '0', '25', 'app'], { ...ENV, UID: '5', GID: '5', TLS_UID: '7', TLS_GID: '8' }, 1, 42);
  t.same(ids.kind === 'run' && [ids.config.appIds, ids.config.workerIds], [{ uid: 1000, gid: 100 }, { uid: 7, gid: 8 }], '-u/-g win over $UID/$GID');
  const envIds = parseServerArgs(['0', '25', 'app'], { ...ENV, UID: '5', GID: '6' }, 1, 42);
  t.same(envIds.kind === 'run' && envIds.config.appIds, { uid: 5, gid: 6 });

  const bad: Array<[string[], Record<string, string>, number, RegExp]> = [
    [['--nope', '0', '25', 'app'], ENV, EXIT_USAGE, /unknown option --nope/],
    [['0', '25'], ENV, EXIT_USAGE, /no app to run/],
    [['0'], ENV, EXIT_USAGE, /give host and port/],
    [['localhost', '25', 'app'], ENV, EXIT_USAGE, /host must be an IP address/],
    [['0', '65536', 'app'], ENV, EXIT_USAGE, /port must be a number/],
    [['0', 'smtp', 'app'], ENV, EXIT_USAGE, /port must be a number/],
    [['-c', '0', '0', '25', 'app'], ENV, EXIT_USAGE, /-c needs a whole number from 1/],
    [['-w', 'x', '0', '25', 'app'], ENV, EXIT_USAGE, /-w needs a whole number/],
    [['-c', '1', '-c', '2', '0', '25', 'app'], ENV, EXIT_USAGE, /given more than once/],
    [['-t', 'soon', '0', '25', 'app'], ENV, EXIT_USAGE, /--timeout needs a number/],
    [['-u', '5', '0', '25', 'app'], ENV, EXIT_USAGE, /give both the uid and the gid/],
    [['-y', '-Y', '0', '25', 'app'], { ...ENV, CAFILE: '/ca' }, EXIT_USAGE, /exclude each other/],
    [['0', '25', 'app'], {}, EXIT_CONFIG, /CERTFILE is not set/],
    [['0', '25', 'app'], { ...ENV, TLS_UID: '5' }, EXIT_CONFIG, /TLS_UID\/TLS_GID: give both/],
    [['0', '25', 'app'], { ...ENV, TLS_MIN_VERSION: '0.9' }, EXIT_CONFIG, /TLS_MIN_VERSION/],
  ];
  for (const [argv, env, status, re] of bad) {
    const p = parseServerArgs(argv, env, 1, 42);
    t.equal(p.kind === 'error' && p.status, status, argv.join(' '));
    t.match(p.kind === 'error' ? p.message : '', re);
  }
  t.same(parseServerArgs(['-h'], {}, 1, 42), { kind: 'help' });
  t.same(parseServerArgs(['-V'], {}, 1, 42), { kind: 'version' });
});

t.test('systemd: LISTEN_FDS meant for this pid replaces host and port', async (t) => {
  t.same(systemdFds({ LISTEN_FDS: '2', LISTEN_PID: '42' }, 42), [3, 4]);
  t.equal(systemdFds({ LISTEN_FDS: '2', LISTEN_PID: '41' }, 42), undefined, 'for another process: ignored');
  t.equal(systemdFds({}, 42), undefined);
  t.match(systemdFds({ LISTEN_FDS: 'x', LISTEN_PID: '42' }, 42), /LISTEN_FDS=x/);
  const r = parseServerArgs(['-v', 'app', 'arg'], { ...ENV, LISTEN_FDS: '1', LISTEN_PID: '42' }, 1, 42);
  t.same(r.kind === 'run' && [r.config.listen, r.config.app], [{ kind: 'systemd', fds: [3] }, ['app', 'arg']], 'every word is the app');
});

t.test('privileges: workers never root, apps never as the workers, no change without root', async (t) => {
  const root = { uid: 0, gid: 0 };
  t.same(planServerPrivileges(undefined, undefined, root), { worker: NOBODY }, 'as root the workers default to nobody; the apps run as root, as under tcpserver');
  t.same(planServerPrivileges({ uid: 1000, gid: 1000 }, { uid: 101, gid: 101 }, root), { app: { uid: 1000, gid: 1000 }, worker: { uid: 101, gid: 101 } });
  t.match(planServerPrivileges({ uid: 65534, gid: 65534 }, undefined, root), /both run as uid 65534/);
  t.match(planServerPrivileges(undefined, { uid: 0, gid: 0 }, root), /never run as root/);
  const user = { uid: 1000, gid: 1000 };
  t.same(planServerPrivileges(undefined, undefined, user), {});
  t.same(planServerPrivileges(user, user, user), {}, 'the same user is no change');
  t.match(planServerPrivileges({ uid: 5, gid: 5 }, undefined, user), /only root can change user/);
  t.match(planServerPrivileges(undefined, { uid: 5, gid: 5 }, user), /cannot run the workers as 5:5/);
});

t.test("tcpserver's variables, IPv4, IPv6 and IPv4-mapped", async (t) => {
  t.same(tcpVariables({ localAddress: '127.0.0.1', localPort: 25, remoteAddress: '127.0.0.2', remotePort: 4000 }), {
    PROTO: 'TCP',
    TCPLOCALIP: '127.0.0.1',
    TCPLOCALPORT: '25',
    TCPREMOTEIP: '127.0.0.2',
    TCPREMOTEPORT: '4000',
  });
  t.same(tcpVariables({ localAddress: '::1', localPort: 25, remoteAddress: '::1', remotePort: 4000, localName: 'mx' }), {
    PROTO: 'TCP6',
    TCPLOCALIP: '::1',
    TCPLOCALPORT: '25',
    TCPREMOTEIP: '::1',
    TCPREMOTEPORT: '4000',
    TCPLOCALHOST: 'mx',
    TCP6LOCALIP: '::1',
    TCP6LOCALPORT: '25',
    TCP6REMOTEIP: '::1',
    TCP6REMOTEPORT: '4000',
    TCP6LOCALHOST: 'mx',
  });
  const mapped = tcpVariables({ localAddress: '::ffff:10.0.0.1', localPort: 25, remoteAddress: '::FFFF:192.0.2.7', remotePort: 1 });
  t.same([mapped.PROTO, mapped.TCPLOCALIP, mapped.TCPREMOTEIP], ['TCP', '10.0.0.1', '192.0.2.7'], 'an IPv4 client of a :: socket is TCP');
  t.equal(unmapped('2001:db8::1'), '2001:db8::1');
});

t.test('log lines, as the man page shows them', async (t) => {
  t.equal(listeningLine(['127.0.0.1 port 587'], 2, 40), 'listening on 127.0.0.1 port 587, 2 workers, at most 40 connections');
  t.equal(
    startLine({ address: '127.0.0.1', port: 40312 }, { address: '127.0.0.1', port: 587 }, 1, 1, 40),
    'start: 127.0.0.1 port 40312 -> 127.0.0.1 port 587, worker 1, 1 of 40',
  );
  t.equal(endLine({ code: 0, signal: null }, 'tls', 2731, 512, 1204.4), 'end: exit 0, tls, 2731 bytes to client, 512 bytes to app, 1.204 s');
  t.equal(endLine({ code: null, signal: 'SIGKILL' }, 'worker lost', 0, 0, 5), 'end: signal SIGKILL, worker lost, 0 bytes to client, 0 bytes to app, 0.005 s');
  t.equal(workerDiedLine(1, 4100, null, 'SIGKILL', 3), 'worker 1 (pid 4100) died on SIGKILL: 3 connection(s) lost; starting another');
  t.equal(workerDiedLine(2, 4101, 1, null, 0), 'worker 2 (pid 4101) died with 1: 0 connection(s) lost; starting another');
});
