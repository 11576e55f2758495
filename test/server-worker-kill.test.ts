// ucspi-tls-server: a worker killed while connections are being handed to it. The handles on
// their way to the dead worker must be closed by the launcher, so that each of its apps sees
// EOF on the control socket and ends: no app waits forever, no fd stays in the launcher.
import t from 'tap';
import { connect, type Socket } from 'node:net';
import { APP, baseEnv, freePort, Lines, makeCert, sleep, tempDir, ucspiTlsServer, within } from './helpers';
import { fdCount } from './hostile';
import { stopServer } from './modes';

const ROUNDS = 4;
const BURST = 40;

/** Banner, EHLO, STARTTLS: the app then asks for TLS and waits for the control socket's EOF. */
async function askForTls(port: number, socks: Socket[]): Promise<void> {
  const s = connect({ port, host: '127.0.0.1' });
  s.on('error', () => undefined);
  socks.push(s);
  const lines = new Lines(s);
  try {
    await lines.reply('220');
    s.write('EHLO client.test\r\n');
    await lines.reply('250');
    s.write('STARTTLS\r\n');
    await lines.reply('220');
  } catch {
    // its worker died under it: the connection may end anywhere
  }
}

t.test('a worker killed amid a burst of STARTTLS commands: every connection ends, the launcher keeps no fd of them', async (t) => {
  const dir = tempDir(t, 'utw-kill-burst-');
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir), { REPORT: dir, REPORT_EACH: '1', TLS_CMD: 'y' }), ['-w', '2', '-c', '200'], [APP]);
  while (srv.workers().length < 2) await sleep(20);
  await sleep(300);
  const fdsBefore = fdCount(srv.pid);
  for (let round = 1; round <= ROUNDS; round++) {
    const socks: Socket[] = [];
    const opened = Promise.all(Array.from({ length: BURST }, () => askForTls(port, socks)));
    // While the launcher is handing the connections over.
    await sleep(10 + round * 15);
    const victim = srv.workers()[0]!;
    process.kill(victim, 'SIGKILL');
    await within(opened, 30000, `round ${round}: the burst`).catch((e: Error) => {
      // What the server said, to tell which connection waits and where.
      t.comment(srv.err.slice(-6000));
      throw e;
    });
    for (const s of socks) s.destroy();
    const starts = BURST * round;
    for (let i = 0; i < 500 && srv.ends().length < starts; i++) await sleep(20);
    t.equal(srv.ends().length, srv.starts().length, `round ${round}: every connection started has ended (${srv.starts().length})`);
    while (srv.workers().length < 2) await sleep(20);
    t.same(srv.apps(), [], `round ${round}: no app left under the spawner`);
    t.equal(fdCount(srv.pid), fdsBefore, `round ${round}: the launcher holds as many fds as before`);
    if (srv.ends().length !== srv.starts().length) break;
  }
  t.ok([...srv.err.matchAll(/died on SIGKILL: (\d+) connection/g)].some((m) => Number(m[1]) > 0), 'a worker died with connections of its own');
  await stopServer(t, srv);
});
