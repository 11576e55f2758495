// The bench's own arithmetic, checked before it measures (make bench runs this first): what
// it reads from /proc, which processes it counts, and the verdicts it prints.
import t from 'tap';
import { spawn } from 'node:child_process';
import { descendants, parsePrivateKiB, parseStat, privateKiB, processes, type Proc } from './procs';
import { emptyRow, helperGoals, serverGoals, table, targetTable, type Row } from './report';

t.test('a stat line whose command name holds spaces and parentheses', async (t) => {
  const line = '4242 (a (b) c) S 17 4242 4242 0 -1 4194560 120 0 0 0 31 7 5 2 20 0 1 0 1234 5000000 300 18446744073709551615';
  t.same(parseStat(line), { pid: 4242, ppid: 17, comm: 'a (b) c', ticks: 38, childTicks: 7 });
  t.equal(parseStat('garbage'), undefined);
});

t.test('this process as /proc shows it', async (t) => {
  const me = processes().get(process.pid);
  t.ok(me, 'found');
  t.equal(me!.ppid, process.ppid);
  t.ok(privateKiB(process.pid) > 1024, 'a Node process holds more than 1 MiB of its own');
  t.equal(privateKiB(2 ** 22 + 1), 0, 'no such process: 0');
});

t.test('private memory: clean and dirty together', async (t) => {
  t.equal(parsePrivateKiB('Rss:  900 kB\nPrivate_Clean:   12 kB\nPrivate_Dirty:  100 kB\nPrivate_Hugetlb: 0 kB\n'), 112);
  t.ok(Number.isNaN(parsePrivateKiB('Rss: 1 kB\n')));
});

t.test("a tree: the roots and their descendants, nobody else's", async (t) => {
  const p = (pid: number, ppid: number): Proc => ({ pid, ppid, comm: String(pid), ticks: 0, childTicks: 0 });
  const all = new Map([p(1, 0), p(10, 1), p(11, 10), p(12, 11), p(20, 1), p(21, 20), p(30, 10)].map((x) => [x.pid, x]));
  t.same(descendants([10], all).map((x) => x.pid).sort(), [10, 11, 12, 30]);
  t.same(descendants([11, 21], all).map((x) => x.pid).sort(), [11, 12, 21]);
  t.same(descendants([99], all), [], 'a root that is gone');
});

t.test('a child of this process is in its tree, and leaves it', async (t) => {
  const child = spawn('sleep', ['30']);
  t.teardown(() => child.kill());
  await new Promise((r) => child.once('spawn', r));
  t.ok(descendants([process.pid], processes()).some((x) => x.pid === child.pid && x.comm === 'sleep'));
  child.kill();
  await new Promise((r) => child.once('exit', r));
  t.notOk(descendants([process.pid], processes()).some((x) => x.pid === child.pid));
});

const row = (name: string, figures: Partial<Row>): Row => ({ ...emptyRow(name), ...figures });

t.test("the server's targets: met, not met, no figure, not built", async (t) => {
  const floor = row('tcpserver floor', { bannerMs: 1, sessionMs: 1.5, perSecond: 1000 });
  const stunnel = row('stunnel (inetd)', { perSecond: 100, toClient: 500, toApp: 400 });
  const server = row('ucspi-tls-server (STARTTLS)', { bannerMs: 1.4, sessionMs: 6, perSecond: 350, idleKiB: 48, slowGrowthKiB: 300, stalledGrowthKiB: 10, toClient: 650, toApp: 600 });
  const implicit = row('ucspi-tls-server --implicit', { missing: 'not built' });
  const text = targetTable(serverGoals(floor, stunnel, (r) => r.name.includes('STARTTLS')), [server, implicit]);
  const verdict = (what: string): string => text.split('\n').find((l) => l.startsWith(`| ${what}`))!;
  t.match(verdict('banner'), /\+ 0\.40 ms \|\s+met/);
  t.match(verdict('STARTTLS session'), /\+ 4\.50 ms \| NOT met/);
  t.match(verdict('sessions/s / tcpserver'), /× 0\.350 \|\s+met/);
  t.match(verdict('sessions/s / stunnel'), /× 3\.50 \|\s+met/);
  t.match(verdict('idle'), /48 KiB \|\s+met/, 'the limit itself is met');
  t.match(verdict('growth per connection, slow'), /300 KiB \| NOT met/);
  t.match(verdict('app→client'), /× 1\.30 \|\s+met/);
  t.match(verdict('client→app'), /× 1\.50 \|\s+met/);
  t.match(verdict('banner'), /not built/);

  const noFloor = targetTable(serverGoals(emptyRow('tcpserver floor'), stunnel, () => true), [server]);
  t.match(noFloor, /n\/a ms \| no figure/, 'a figure missing on either side is no verdict');
  t.notMatch(noFloor.split('\n').find((l) => l.startsWith('| banner'))!, /met/);
});

t.test("the helper's targets against the Node floor", async (t) => {
  const floor = row('Node floor', { bannerMs: 20, sessionMs: 30, idleKiB: 6000, perSecond: 50 });
  const stunnel = row('stunnel (inetd)', { toClient: 500, toApp: 500 });
  const helper = row('ucspi-tls-wrap', { bannerMs: 20.5, sessionMs: 40, toClient: 600, toApp: 500, idleKiB: 8000, peakKiB: 14000, stalledPeakKiB: 14500, perSecond: 30 });
  const text = targetTable(helperGoals(floor, stunnel), [helper]);
  t.match(text, /banner \/ Node floor\s+\|\s+≤ × 1\.03 \|\s+× 1\.025 \|\s+met/);
  t.match(text, /slow reader − Node floor\s+\| ≤ \+ 8192 KiB \|\s+\+ 8000 KiB \|\s+met/);
  t.match(text, /stalled reader − Node floor \| ≤ \+ 8192 KiB \|\s+\+ 8500 KiB \| NOT met/);
});

t.test('the table: figures, a failed step, a row not built', async (t) => {
  const ok = row('a', { bannerMs: 1.234, sessionMs: 2, toClient: 100.4, idleKiB: 47.6, perSecond: 12.34, cpuMs: 0.5 });
  const failed = row('b', { bannerMs: 3, failed: ['idle'] });
  const text = table([ok, failed, row('c', { missing: 'not built' })], { pace: '1 MiB/s', concurrent: 16 });
  const lines = text.split('\n');
  t.equal(lines.length, 5);
  t.match(lines[0], /peak KiB \(reader 1 MiB\/s\)/, 'the header says the pace');
  t.match(lines[2], /\| +1\.23 \| +2\.00 \| +100 \| +n\/a \| +48 \|/);
  t.match(lines[3], /\| +3\.00 \| +n\/a \| +n\/a \| +n\/a \| +fail \|/);
  t.match(lines[4], /^\| c +\| not built \| +– \|/);
});
