// Load: 200 STARTTLS sessions at once under tcpserver -c 200; every one completes, and
// afterwards nothing leaks: tcpserver has no more fds and no children than before, no helper
// or app runs, this process holds no more fds and no connection to the port is open.
// make check: one round (about 40 s on 2 cores); make soak: rounds for SOAK_SECONDS.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { type Socket } from 'node:net';
import { APP, baseEnv, freePort, HELPER, Launcher, Lines, makeCert, sleep, startTls, tempDir } from './helpers';
import { childrenOf, fdCount, killLeftovers, processesOf } from './hostile';

/** TCP connections on 127.0.0.1 with this port at either end, but TIME_WAIT (06) and the listener (0A). */
function openConnections(port: number): number {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .filter((l) => {
      const f = l.trim().split(/\s+/);
      return f.length > 3 && (`${f[1]} `.includes(hex) || `${f[2]} `.includes(hex)) && f[3] !== '06' && f[3] !== '0A';
    }).length;
}

const SESSIONS = 200;
const SOAK_MS = Number(process.env.SOAK_SECONDS ?? 0) * 1000;

t.test(`${SESSIONS} concurrent STARTTLS sessions under tcpserver -c ${SESSIONS}`, async (t) => {
  const dir = tempDir(t, 'utw-load-');
  const port = await freePort();
  // TLS_CMD=y: the sessions share one report folder, where a Y reply file would be overwritten.
  const srv = new Launcher('tcpserver', ['-v', '-R', '-H', '-l', 'localhost', '-c', String(SESSIONS), '-b', String(SESSIONS), '127.0.0.1', String(port), HELPER, APP], baseEnv(makeCert(dir), { REPORT: dir, TLS_CMD: 'y' }));
  t.teardown(() => srv.stop());
  t.teardown(() => killLeftovers(dir, srv.proc.pid));
  await srv.ready(port);
  const pid = srv.proc.pid!;
  const fdsBefore = fdCount(pid);
  const ownFdsBefore = fdCount(process.pid);

  const one = async (i: number): Promise<boolean> => {
    const tls = await startTls(port);
    const lines = new Lines(tls as unknown as Socket);
    tls.write(`NOOP ${i}\r\n`);
    const ok = (await lines.line()) === `250 yes NOOP ${i}`;
    tls.write('QUIT\r\n');
    await lines.line();
    // A clean close, as a mail client's: close_notify, then wait for the helper's end. With
    // destroy() the helper's close_notify may arrive at a closed socket, whose kernel then
    // answers with a reset that the helper rightly logs.
    await new Promise((r) => {
      tls.once('close', r);
      tls.end();
    });
    return ok;
  };
  const started = Date.now();
  let rounds = 0;
  let done = 0;
  do {
    const errors: string[] = [];
    const results = await Promise.all(Array.from({ length: SESSIONS }, (_, i) => one(i).catch((e: Error) => (errors.push(e.message), false))));
    if (errors.length > 0) t.comment(`errors: ${[...new Set(errors)].join('; ')}`);
    done += results.filter((r) => r).length;
    rounds++;
    t.equal(results.filter((r) => r).length, SESSIONS, `round ${rounds}: every session answered through TLS`);
  } while (Date.now() - started < SOAK_MS);

  // Each session ends on its own; wait until tcpserver has seen every end.
  for (let i = 0; i < 1000 && [...srv.err.matchAll(/^tcpserver: end /gm)].length < rounds * SESSIONS; i++) await sleep(20);
  const others = srv.err.split('\n').filter((l) => /^tcpserver: end /.test(l) && !/ status 0$/.test(l));
  const theirs = others.map((l) => l.split(' ')[2]).flatMap((pid) => srv.err.split('\n').filter((l) => l.includes(`: pid ${pid}: `)));
  t.equal([...srv.err.matchAll(/^tcpserver: end \d+ status 0$/gm)].length, rounds * SESSIONS, `every helper exited 0${others.length > 0 ? `; not: ${others.join('; ')}; their lines: ${theirs.join('; ')}` : ''}`);
  t.same(childrenOf(pid), [], 'tcpserver has no child left');
  t.same(processesOf(dir, pid), [], 'no helper or app left');
  t.equal(fdCount(pid), fdsBefore, `tcpserver holds as many fds as before (${fdsBefore})`);
  // The clients' sockets close a tick after destroy(): give them a moment, not a deadline.
  for (let i = 0; i < 250 && (openConnections(port) > 0 || fdCount(process.pid) > ownFdsBefore); i++) await sleep(20);
  t.equal(openConnections(port), 0, 'no connection to the port is left open');
  // Node may close one of its own fds meanwhile: a leak is only ever more, never fewer.
  const ownFdsAfter = fdCount(process.pid);
  t.ok(ownFdsAfter <= ownFdsBefore, `the test holds no more fds than before (${ownFdsAfter}, was ${ownFdsBefore})`);
  t.notMatch(srv.err, /ucspi-tls-wrap: pid \d+: /, 'nothing went wrong in any session');
  t.comment(`${done} sessions in ${rounds} round(s), ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
