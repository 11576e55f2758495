// make soak's accounting (bench/soak-log.ts, bench/soak-report.ts): it reads the lines the
// server writes (made here by the server's own functions, so that a change of wording fails
// here, in make check, and not in a soak), and gives each session its verdict.
import t from 'tap';
import { endLine, startLine, workerDiedLine } from '../src/server/log-lines';
import { lineKind, sameSerial, serialDue, ServerLog, verdict, type EndLine } from '../bench/soak-log';
import { emptyTally, lateGrowth, sessionTable } from '../bench/soak-report';

const P = 'ucspi-tls-server: ';
const peer = (port: number) => ({ address: '127.0.0.1', port });

t.test('the server log, fed in pieces that split lines', async (t) => {
  const log = new ServerLog();
  const text = [
    `${P}listening on 127.0.0.1 port 2525, 2 workers, at most 40 connections`,
    `${P}pid 100: ${startLine(peer(40001), peer(2525), 0, 1, 40)}`,
    `${P}pid 101: ${startLine(peer(40002), peer(2525), 1, 2, 40)}`,
    `${P}pid 100: ${endLine({ code: 0, signal: null }, 'tls', 2097152, 30, 1234)}`,
    `${P}${workerDiedLine(1, 555, null, 'SIGKILL', 1)}`,
    `${P}worker 1 (pid 556) started`,
    `${P}pid 101: ${endLine({ code: null, signal: 'SIGTERM' }, 'worker lost', 0, 0, 50)}`,
    `${P}pid 102: ${startLine(peer(40001), peer(2525), 0, 1, 40)}`,
    `${P}pid 102: handshake failed: wrong version number`,
    `${P}pid 102: ${endLine({ code: 0, signal: null }, 'plaintext', 0, 0, 5)}`,
    `${P}reloaded (SIGHUP): 1 certificate, serial 4F1A00C3`,
    // pid 100 again, for a new app, before the end line of the old one's second life ends:
    `${P}pid 100: ${startLine(peer(40005), peer(2525), 0, 1, 40)}`,
    `${P}pid 100: ${startLine(peer(40006), peer(2525), 1, 2, 40)}`,
    `${P}pid 100: ${endLine({ code: 3, signal: null }, 'tls', 1, 1, 5)}`,
    `${P}pid 100: ${endLine({ code: 4, signal: null }, 'tls', 2, 2, 5)}`,
    '',
  ].join('\n');
  for (let i = 0; i < text.length; i += 7) log.feed(text.slice(i, i + 7));
  t.same(log.starts.slice(0, 3), [
    { pid: 100, remotePort: 40001, worker: 0 },
    { pid: 101, remotePort: 40002, worker: 1 },
    { pid: 102, remotePort: 40001, worker: 0 },
  ]);
  t.equal(log.starts.length, 5);
  t.equal(log.ends.length, 5, 'every end line counted, pids reused or not');
  t.same(log.endOf(log.starts[0]!), { pid: 100, status: 0, signal: null, mode: 'tls', toClient: 2097152, toApp: 30 });
  t.same(log.endOf(log.starts[1]!), { pid: 101, status: null, signal: 'SIGTERM', mode: 'worker lost', toClient: 0, toApp: 0 });
  t.equal(log.endOf(log.starts[2]!)?.mode, 'plaintext');
  t.equal(log.endOf(log.starts[3]!)?.status, 3, 'a reused pid: the oldest connection without an end gets the next end line');
  t.equal(log.endOf(log.starts[4]!)?.status, 4);
  t.same(log.died, [{ index: 1, pid: 555, how: 'died on SIGKILL', lost: 1 }]);
  t.same(log.restarted, [{ index: 1, pid: 556 }]);
  t.same([...log.other], [['listening on N.N port N', 1], ['handshake failed', 1], ['reloaded', 1]]);
  // Port 40001 twice: a client that connected after start line 1 is the second connection.
  t.equal(log.startFrom({ port: 40001 }, 0)?.pid, 100);
  t.equal(log.startFrom({ port: 40001 }, 1)?.pid, 102);
  t.equal(log.startFrom({ port: 40003 }, 0), undefined);
  t.equal(log.startFrom({ pid: 100 }, 1), log.starts[3], 'by the app pid a client saw, from its mark on');
});

t.test('the kind of an other line', async (t) => {
  t.equal(lineKind(`${P}pid 9: handshake timed out after 10 s`), 'handshake timed out after N s');
  t.equal(lineKind(`${P}pid 9: client connection: read ECONNRESET`), 'client connection');
  t.equal(lineKind('cat: write error'), 'cat');
});

t.test('the verdict on a session', async (t) => {
  const end = (mode: EndLine['mode'], status: number | null = 0): EndLine => ({ pid: 1, status, signal: status === null ? 'SIGKILL' : null, mode, toClient: 0, toApp: 0 });
  t.equal(verdict({ expect: 'finish', clientOk: true, end: end('tls') }).verdict, 'finished');
  t.equal(verdict({ expect: 'finish', clientOk: true, end: undefined }).verdict, 'unexplained', 'no end line: unexplained, whatever the client saw');
  t.equal(verdict({ expect: 'finish', clientOk: false, end: end('worker lost') }).verdict, 'worker lost');
  t.equal(verdict({ expect: 'finish', clientOk: false, end: end('tls') }).verdict, 'unexplained', 'a failed client on a live worker');
  t.equal(verdict({ expect: 'finish', clientOk: true, end: end('tls', 1) }).verdict, 'unexplained', 'the app did not exit 0');
  t.equal(verdict({ expect: 'finish', clientOk: true, end: end('plaintext') }).verdict, 'unexplained', 'no TLS');
  t.equal(verdict({ expect: 'vanish', clientOk: true, end: end('tls') }).verdict, 'fault');
  t.equal(verdict({ expect: 'vanish', clientOk: true, end: end('plaintext') }).verdict, 'unexplained');
  t.equal(verdict({ expect: 'hostile', clientOk: true, end: end('plaintext', 98) }).verdict, 'fault');
  t.equal(verdict({ expect: 'hostile', clientOk: false, end: end('plaintext') }).verdict, 'unexplained', 'the server did not close');
  t.equal(verdict({ expect: 'hostile', clientOk: true, end: end('tls') }).verdict, 'unexplained', 'TLS on garbage');
  t.equal(verdict({ expect: 'hostile', clientOk: false, end: end('worker lost') }).verdict, 'worker lost');
});

t.test('the serial due at a handshake, and serials compared', async (t) => {
  const renewals = [
    { at: -Infinity, serial: 'A0' },
    { at: 1000, serial: 'B1' },
    { at: 6000, serial: 'C2' },
  ];
  t.equal(serialDue(renewals, 500, 1500), 'A0');
  t.equal(serialDue(renewals, 1200, 1500), undefined, 'within the grace: either');
  t.equal(serialDue(renewals, 2600, 1500), 'B1');
  t.equal(serialDue(renewals, 9000, 1500), 'C2');
  t.ok(sameSerial('00ab', 'AB'));
  t.ok(sameSerial('7F:01', '7f01'));
  t.notOk(sameSerial('AB', 'AC'));
  t.notOk(sameSerial('', ''), 'no serial is no match');
});

t.test('the session table: a row per kind with sessions, and the total', async (t) => {
  const quick = emptyTally('quick');
  quick.sessions = 3;
  quick.starttls = 2;
  quick.implicit = 1;
  quick.byVerdict.finished = 3;
  quick.toClient = 1048576;
  const idle = emptyTally('idle');
  const table = sessionTable([quick, idle]).split('\n');
  t.equal(table.length, 4, 'head, rule, quick, all (no row for a kind with no session)');
  t.match(table[2], /^\| quick +\| +3 \(2 \/ 1\) \| +3 \| +0 \| +0 \| +0 \| +1\.0 \| +0\.0 \|$/);
  t.match(table[3], /^\| all /);
});

t.test('late growth of a memory timeline', async (t) => {
  t.ok(Number.isNaN(lateGrowth([1, 2, 3, 4, 5, 6, 7, 8])), 'too short: no figure');
  t.equal(lateGrowth([10, 50, 60, 100, 100, 100, 100, 100, 100]), 0, 'grown, then level');
  t.equal(lateGrowth([0, 10, 20, 30, 40, 50, 60, 70, 80]), 30, 'a leak: still rising by a third of the run');
  t.ok(lateGrowth([100, 150, 150, 150, 150, 150, 120, 150, 150]) < 0, 'a killed worker replaced by a small one: below');
});
