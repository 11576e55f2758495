// UCSPI_TLS_WORKER_NODE_ARGS, for developers (make profile): node options the launcher adds
// to its TLS workers' own.
import t from 'tap';
import { chmodSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { APP, baseEnv, freePort, makeCert, tempDir, ucspiTlsServer } from './helpers';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const argv = (pid: number): string[] => readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').slice(0, -1);

t.test('the workers start with the options given, one per word; each writes its CPU profile at exit', async (t) => {
  const dir = tempDir(t, 'utw-wargs-');
  // As root the workers run as nobody: they must reach and write the profiles' folder.
  chmodSync(dir, 0o711);
  const profiles = join(dir, 'profiles');
  mkdirSync(profiles);
  chmodSync(profiles, 0o1777);
  const port = await freePort();
  const env = baseEnv(makeCert(dir), { UCSPI_TLS_WORKER_NODE_ARGS: `  --cpu-prof   --cpu-prof-dir=${profiles} ` });
  const srv = await ucspiTlsServer(t, port, env, ['-w', '2'], [APP]);
  const workers = srv.workers();
  t.equal(workers.length, 2, 'two workers');
  for (const w of workers) {
    const words = argv(w);
    t.ok(words.includes('--cpu-prof') && words.includes(`--cpu-prof-dir=${profiles}`), `worker ${w}: ${words.join(' ')}`);
    t.notOk(words.includes(''), `worker ${w}: no empty word`);
  }
  t.notOk(argv(srv.pid).includes('--cpu-prof'), 'the launcher is not given them');
  await srv.stop();
  const written = (): string[] => readdirSync(profiles).filter((f) => f.endsWith('.cpuprofile'));
  for (let i = 0; i < 100 && written().length < 2; i++) await sleep(100);
  t.equal(written().length, 2, `a profile from each worker: ${written().join(' ')}`);
});

t.test('without the variable, the workers have none of them', async (t) => {
  const dir = tempDir(t, 'utw-wargs-');
  const port = await freePort();
  const srv = await ucspiTlsServer(t, port, baseEnv(makeCert(dir)), ['-w', '1'], [APP]);
  const [w] = srv.workers();
  t.ok(w !== undefined, 'a worker');
  t.notOk(argv(w!).includes('--cpu-prof'), `worker: ${argv(w!).join(' ')}`);
});
