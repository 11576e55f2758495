// The pure parts of the readiness protocol: what the environment asks for, the status line,
// how routine messages merge.
import t from 'tap';
import { Counters } from '../src/server/lifecycle/figures';
import { notifySettings } from '../src/server/notify/settings';
import { mergeAssignments, monotonicUsec, oneLine, statusLine } from '../src/server/notify/status';

t.test('the environment: NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID', async (t) => {
  t.equal(notifySettings({}, 10), undefined, 'not under systemd: nothing');
  t.equal(notifySettings({ NOTIFY_SOCKET: '' }, 10), undefined);
  t.same(notifySettings({ NOTIFY_SOCKET: '/run/systemd/notify' }, 10), { socket: '/run/systemd/notify' });
  t.same(notifySettings({ NOTIFY_SOCKET: '@abstract' }, 10), { socket: '@abstract' });
  t.same(notifySettings({ NOTIFY_SOCKET: '/s', WATCHDOG_USEC: '30000000' }, 10), { socket: '/s', pingEveryMs: 15000 }, 'half WATCHDOG_USEC');
  t.same(notifySettings({ NOTIFY_SOCKET: '/s', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '10' }, 10), { socket: '/s', pingEveryMs: 15000 }, 'for this pid');
  t.same(notifySettings({ NOTIFY_SOCKET: '/s', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '11' }, 10), { socket: '/s' }, "another process's watchdog");
  t.same(notifySettings({ NOTIFY_SOCKET: '/s', WATCHDOG_USEC: '1' }, 10), { socket: '/s', pingEveryMs: 1 }, 'never 0 ms');
  for (const bad of ['0', 'x', '-5', '1.5', '99999999999999999999']) {
    const s = notifySettings({ NOTIFY_SOCKET: '/s', WATCHDOG_USEC: bad }, 10);
    t.equal(s?.pingEveryMs, undefined, `WATCHDOG_USEC=${bad}: no watchdog`);
    t.equal(s?.problem, `WATCHDOG_USEC=${bad} is not a number of microseconds: no WATCHDOG=1 sent`);
  }
});

t.test('the status line', async (t) => {
  const c = new Counters();
  c.accepted = 7;
  c.refused = 1;
  c.ended({ tls: true, toClient: 5, toApp: 6 });
  c.ended({ tls: false, toClient: 0, toApp: 0, failed: 'protocol' });
  const line = statusLine({ counters: c, now: 2, limit: 40, uptimeMs: 5000, acceptor: { pid: 1, rss: 1 }, workers: [{ index: 1, pid: 2, conns: 1, rss: 1, tls: 1 }, { index: 2, pid: 3, conns: 1 }] }, 3);
  t.equal(line, 'connections: 2 now (limit 40), 7 accepted, 1 refused; tls: 2 started, 1 handshakes failed; workers: 1 of 3 answering');
  t.equal(oneLine('a\nb\r\nc'), 'a b c', 'one assignment per line: none inside a value');
});

t.test('routine messages merge: the newest value of each name', async (t) => {
  t.same(mergeAssignments(['WATCHDOG=1', 'STATUS=a'], ['STATUS=b']), ['WATCHDOG=1', 'STATUS=b']);
  t.same(mergeAssignments(['STATUS=a'], ['WATCHDOG=1', 'STATUS=b']).sort(), ['STATUS=b', 'WATCHDOG=1']);
  t.same(mergeAssignments(['WATCHDOG=1'], ['WATCHDOG=1']), ['WATCHDOG=1']);
});

t.test('MONOTONIC_USEC: CLOCK_MONOTONIC in microseconds', async (t) => {
  const ms = BigInt(Math.floor(performance.timeOrigin + performance.now()));
  const us = monotonicUsec();
  t.ok(us > 0n);
  t.ok(us < ms * 1000n, 'not the wall clock: counted from boot');
  t.ok(monotonicUsec() >= us, 'never backwards');
});
