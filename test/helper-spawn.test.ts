// The helper starts its app on libuv's process handle where it knows this Node's (src/runtime/
// process-handle.ts), and through child_process where process.binding() is gone: on this
// runtime, both paths give the app the same fds, variables, channels and exit status, and
// a failure to start the same line and status. Which path ran is read from the helper's own
// list of loaded modules at its exit.
import t, { type Test } from 'tap';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { appFds, baseEnv, HELPER, Lines, makeCert, readReport, tempDir, tlsSession } from './helpers';
import { closed } from './hostile';
import { HELPER_MODE } from './modes';

/**
 * Loaded by the helper's node through NODE_OPTIONS: records which of the two paths ran, and in
 * the child_process case first takes process.binding() away, as a Node without it would be.
 */
const PRELOAD = `'use strict';
if (/ucspi-tls-wrap$/.test(process.argv[1] || '')) {
  if (process.env.NO_BINDING === '1') process.binding = undefined;
  process.on('exit', () => {
    const loaded = process.moduleLoadList.filter((m) => /^(NativeModule child_process|Internal Binding process_wrap)$/.test(m));
    require('node:fs').writeFileSync(process.env.REPORT + '/spawned-by.' + process.pid, loaded.join(','));
  });
}
`;

interface Variant {
  name: string;
  env: Record<string, string>;
  /** `env NODE_OPTIONS=...`: set after the test runner's own hooks, which load child_process. */
  prefix: string[];
  /** What the helper had loaded at its exit, of child_process and the process handle's binding (child_process uses it too). */
  loaded: string;
}

function variants(dir: string): Variant[] {
  const preload = join(dir, 'preload.js');
  writeFileSync(preload, PRELOAD);
  // --pending-deprecation makes process.binding() warn: no warning may reach fd 2 (the client, under xinetd).
  return [
    { name: 'the process handle', env: {}, prefix: ['env', `NODE_OPTIONS=--pending-deprecation --require ${preload}`], loaded: 'Internal Binding process_wrap' },
    { name: 'child_process, without process.binding()', env: { NO_BINDING: '1' }, prefix: ['env', `NODE_OPTIONS=--require ${preload}`], loaded: 'Internal Binding process_wrap,NativeModule child_process' },
  ];
}

function spawnedBy(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.startsWith('spawned-by.'))
    .map((f) => readFileSync(join(dir, f), 'latin1'));
}

function cases(t: Test, v: Variant): void {
  t.test('STARTTLS: the fds, the variables, a line each way through TLS, the exit status', async (t) => {
    const dir = tempDir(t);
    const certs = makeCert(dir);
    const s = await HELPER_MODE.serve(t, { ...v.env, QUIT_STATUS: '3' }, ['-v'], { dir, certs, prefix: v.prefix });
    const session = await tlsSession(s.port, dir);
    t.match(session.answer, /^250 /, 'the app answered through TLS');
    t.equal(session.vars.get('SSL_PROTOCOL'), session.protocol, 'the variables came on the control socket');
    t.same(appFds(dir), ['0', '1', '2', '3', '4', '5']);
    t.match(readReport(dir, 'env'), /^SSLCTLFD=3$/m);
    t.equal(await s.appStatus(), 3);
    t.notMatch(s.log(), /Warning|DEP0111/, 'nothing but our lines on fd 2');
    t.same(spawnedBy(dir), [v.loaded], `started by ${v.loaded}`);
    await s.finish(t);
  });

  t.test('--implicit: the app behind the handshake, its status', async (t) => {
    const dir = tempDir(t);
    const s = await HELPER_MODE.serve(t, { ...v.env, QUIT_STATUS: '4' }, ['--implicit'], { dir, prefix: v.prefix });
    const tls = tlsConnect({ port: s.port, host: '127.0.0.1', rejectUnauthorized: false });
    const lines = new Lines(tls as unknown as Socket);
    t.equal(await lines.line(), '220 test ESMTP');
    tls.write('QUIT\r\n');
    t.equal(await lines.line(), '221 bye');
    t.equal(await s.appStatus(), 4);
    t.match(readReport(dir, 'env'), /^SSL_PROTOCOL=TLSv1\.3$/m);
    t.notMatch(s.log(), /Warning|DEP0111/);
    await closed(tls as unknown as Socket);
    t.same(spawnedBy(dir), [v.loaded]);
    await s.finish(t);
  });

  t.test('the app killed by a signal: 128+N', async (t) => {
    const s = await HELPER_MODE.serve(t, { ...v.env, KILL_SIG: 'USR1' }, ['-v'], { prefix: v.prefix });
    const sock = connect({ port: s.port, host: '127.0.0.1' });
    const lines = new Lines(sock);
    await lines.reply('220');
    sock.write('KILL\r\n');
    t.equal(await s.appStatus(), 128 + 10);
    t.match(s.log(), HELPER_MODE.appEnded('SIGUSR1'));
    sock.destroy();
    await s.finish(t);
  });

  t.test('an app that is missing, or not executable: 127 or 126, one line', async (t) => {
    const dir = tempDir(t);
    const env = { ...baseEnv(makeCert(dir)), ...v.env, REPORT: dir };
    const alone = (app: string): SpawnSyncReturns<string> =>
      spawnSync(v.prefix[0]!, [...v.prefix.slice(1), HELPER, app], { env, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], timeout: 10000 });
    const missing = alone(join(dir, 'no-such-app'));
    t.equal(missing.status, 127);
    t.match(missing.stderr, new RegExp(`^${HELPER_MODE.fatal}cannot run \\S+no-such-app: no such file\n$`));
    writeFileSync(join(dir, 'not-executable'), '#!/bin/sh\necho never\n', { mode: 0o644 });
    const denied = alone(join(dir, 'not-executable'));
    t.equal(denied.status, 126);
    t.equal(denied.stdout, '');
    t.match(denied.stderr, new RegExp(`^${HELPER_MODE.fatal}cannot run \\S+not-executable: permission denied\n$`));
    t.same(spawnedBy(dir), [v.loaded, v.loaded]);
  });
}

t.test(`Node ${process.version}`, async (t) => {
  const dir = tempDir(t);
  for (const v of variants(dir)) t.test(v.name, async (t) => cases(t, v));
});
