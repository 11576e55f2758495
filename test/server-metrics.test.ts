// ucspi-tls-server --metrics: real scrapes (curl, and promtool's check) of a server that
// carried known traffic: every value against what was sent and refused, a reload taken and
// one refused, a certificate that expires soon, scrapes during a transfer, a Unix socket,
// GET /metrics only, and bad addresses refused at start.
import t, { type Test } from 'tap';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import {
  APP, baseEnv, freePort, Lines, logged, run, SERVER, ServerLauncher, sinkExchange, startTls, tempDir, ucspiTlsServer, within, WITHOUT_TEST_HOOKS,
} from './helpers';
import { selfSigned, type Pair } from './pki';
import { reusePortRefusal } from '../src/server/lifecycle/reuse-port';
import { tcprules } from './tcprules';

const SAN = { subject: '/CN=mail.example.test', san: 'DNS:mail.example.test' };

/** notAfter of a certificate file, in seconds since the epoch. */
function notAfter(file: string): number {
  return Math.floor(Date.parse(new X509Certificate(readFileSync(file)).validTo) / 1000);
}

/** curl's GET; `where`: 127.0.0.1:PORT, or a socket path. */
async function curl(where: string, path = '/metrics', more: string[] = []): Promise<{ status: number; body: string }> {
  const target = where.includes('/') ? ['--unix-socket', where, `http://localhost${path}`] : [`http://${where}${path}`];
  const r = await run('curl', ['-sS', '--max-time', '20', '-w', '\n%{http_code}', ...more, ...target], { PATH: process.env.PATH });
  if (r.status !== 0) throw new Error(`curl failed (${r.status}): ${r.err}`);
  const cut = r.out.lastIndexOf('\n');
  return { status: Number(r.out.slice(cut + 1)), body: r.out.slice(0, cut) };
}

/**
 * The text, checked strictly (every sample after its family's HELP and TYPE, our prefix,
 * counters named _total, values numbers) and by promtool; series -> value.
 */
async function scrape(t: Test, where: string): Promise<Map<string, number>> {
  const { status, body } = await curl(where);
  t.equal(status, 200, 'GET /metrics: 200');
  const types = new Map<string, string>();
  const helped = new Set<string>();
  const series = new Map<string, number>();
  for (const line of body.split('\n').slice(0, -1)) {
    let m: RegExpExecArray | null;
    if ((m = /^# HELP (ucspi_tls_[a-z_]+) \S.*$/.exec(line)) !== null) helped.add(m[1]!);
    else if ((m = /^# TYPE (ucspi_tls_[a-z_]+) (counter|gauge)$/.exec(line)) !== null) types.set(m[1]!, m[2]!);
    else if ((m = /^((ucspi_tls_[a-z_]+)(\{[a-z_]+="[^"\\\n]*"(,[a-z_]+="[^"\\\n]*")*\})?) (-?\d+(\.\d+)?(e[+-]?\d+)?)$/.exec(line)) !== null) {
      const name = m[2]!;
      if (!helped.has(name) || !types.has(name)) throw new Error(`a sample before its HELP and TYPE: ${line}`);
      if ((types.get(name) === 'counter') !== name.endsWith('_total')) throw new Error(`a counter not named _total, or a gauge named so: ${line}`);
      if (series.has(m[1]!)) throw new Error(`a series twice: ${line}`);
      series.set(m[1]!, Number(m[5]));
    } else throw new Error(`not a line of the text format: ${JSON.stringify(line)}`);
  }
  t.ok(body.endsWith('\n'), 'ends with a newline');
  const lint = await run('sh', ['-c', 'printf %s "$0" | promtool check metrics', body], { PATH: process.env.PATH });
  t.same([lint.status, lint.out + lint.err], [0, ''], 'promtool check metrics: no problem');
  return series;
}

function values(m: Map<string, number>, names: string[]): Record<string, number | undefined> {
  return Object.fromEntries(names.map((n) => [n, m.get(n)]));
}

/** A plaintext client from `from`, once it has the banner or was closed without a byte. */
async function plain(port: number, from = '127.0.0.1'): Promise<{ sock: Socket; lines: Lines; served: boolean }> {
  const sock = connect({ port, host: '127.0.0.1', localAddress: from });
  sock.on('error', () => {});
  const lines = new Lines(sock);
  const closed = new Promise<boolean>((r) => sock.once('close', () => r(false)));
  const banner = lines.reply('220').then(() => true, () => false);
  const served = await within(Promise.race([banner, closed]), 20000, `banner or close for ${from}`);
  return { sock, lines, served };
}

/** A new certificate for the same name, made aside and renamed over the served one (as a renewal does). */
function renew(dir: string, served: Pair, days: number): void {
  const aside = join(dir, `next-${days}`);
  mkdirSync(aside);
  const fresh = selfSigned(aside, 'new', { ...SAN, days });
  renameSync(fresh.key, served.key);
  renameSync(fresh.cert, served.cert);
}

const REFUSALS = ['limit', 'per-address', 'rules', 'proxy', 'stopping', 'no worker', 'app not started', 'client gone'];
const BUCKETS = ['timeout', 'client gone', 'protocol', 'no shared cipher/version', 'certificate required', 'other'];

t.test('127.0.0.1:PORT: after known traffic every value; a reload, a refused reload, a certificate that expires in 5 days', async (t) => {
  const dir = tempDir(t);
  const cert = selfSigned(dir, 'cert', { ...SAN, days: 5 });
  const rules = join(dir, 'rules.cdb');
  tcprules(rules, ['127.0.0.2:deny', ':allow']);
  const [port, mport] = [await freePort(), await freePort()];
  const where = `127.0.0.1:${mport}`;
  const startedAt = Math.floor(Date.now() / 1000);
  const srv = await ucspiTlsServer(t, port, baseEnv(cert, { REPORT: dir, TLS_MIN_VERSION: '1.3' }), ['-w', '2', '-C', '1', '-x', rules, '--metrics', where], [APP]);

  const warning = /^ucspi-tls-server: warning: the certificate in CERTFILE \S+cert\.pem \(serial [0-9A-F]+\) expires in 5 days: notAfter .+ GMT$/gm;
  t.ok(await logged(srv, warning), 'a warning at start: the certificate expires within 14 days');
  t.equal(srv.err.match(warning)?.length, 1, 'one');

  const start = await scrape(t, where);
  t.same(values(start, ['ucspi_tls_connections', 'ucspi_tls_connections_accepted_total', 'ucspi_tls_tls_started_total', 'ucspi_tls_to_clients_bytes_total']), {
    ucspi_tls_connections: 0, ucspi_tls_connections_accepted_total: 0, ucspi_tls_tls_started_total: 0, ucspi_tls_to_clients_bytes_total: 0,
  }, 'nothing yet');

  // 1. A TLS session: 12 bytes to the app, 23 to the client.
  const good = await startTls(port);
  const goodLines = new Lines(good as unknown as Socket);
  good.write('NOOP\r\n');
  t.equal(await goodLines.line(), '250 yes NOOP');
  good.write('QUIT\r\n');
  t.equal(await goodLines.line(), '221 bye');
  good.destroy();
  await srv.end({ nth: 0 });
  // 2. Not TLS after STARTTLS: a protocol failure.
  const garbage = await plain(port);
  garbage.sock.write('STARTTLS\r\n');
  t.equal(await garbage.lines.line(), '220 ready');
  garbage.sock.write('HELO not tls\r\n');
  await srv.end({ nth: 1 });
  garbage.sock.destroy();
  // 3. TLS 1.2 at most against TLS_MIN_VERSION=1.3: no shared version.
  await t.rejects(startTls(port, { maxVersion: 'TLSv1.2' }), 'the old client is refused');
  await srv.end({ nth: 2 });
  // 4. Denied by the rules.
  t.notOk((await plain(port, '127.0.0.2')).served, '127.0.0.2: closed by the rules');
  t.ok(await logged(srv, /deny: 127\.0\.0\.2 port \d+ by rule 127\.0\.0\.2$/m));
  // 5. One from 127.0.0.3 held, a second one refused by -C 1.
  const held = await plain(port, '127.0.0.3');
  t.ok(held.served);
  t.notOk((await plain(port, '127.0.0.3')).served, 'the second from 127.0.0.3: closed by -C 1');
  t.ok(await logged(srv, /deny: 127\.0\.0\.3 port \d+: 1 connection from 127\.0\.0\.3 already \(-C 1\)$/m));
  // 6. A TLS session still running: 6 bytes to the app, 14 to the client so far.
  const live = await startTls(port);
  const liveLines = new Lines(live as unknown as Socket);
  live.write('NOOP\r\n');
  t.equal(await liveLines.line(), '250 yes NOOP');
  await srv.start(4);

  const m = await scrape(t, where);
  const expected: Record<string, number> = {
    ucspi_tls_connections: 2,
    ucspi_tls_connections_limit: 40,
    ucspi_tls_connections_accepted_total: 7,
    ...Object.fromEntries(REFUSALS.map((r) => [`ucspi_tls_connections_refused_total{reason="${r}"}`, r === 'rules' || r === 'per-address' ? 1 : 0])),
    ucspi_tls_tls_started_total: 2,
    ...Object.fromEntries(BUCKETS.map((b) => [`ucspi_tls_handshake_failures_total{bucket="${b}"}`, b === 'protocol' || b === 'no shared cipher/version' ? 1 : 0])),
    ucspi_tls_to_clients_bytes_total: 23 + 14,
    ucspi_tls_to_apps_bytes_total: 12 + 6,
    'ucspi_tls_reloads_total{outcome="done"}': 0,
    'ucspi_tls_reloads_total{outcome="refused"}': 0,
    ucspi_tls_last_reload_successful: 1,
    'ucspi_tls_certificate_not_after_seconds{name="",key_type="rsa"}': notAfter(cert.cert),
  };
  t.same(values(m, Object.keys(expected)), expected, 'every value as sent and refused');
  t.equal((m.get('ucspi_tls_worker_connections{process="worker 1"}') ?? 0) + (m.get('ucspi_tls_worker_connections{process="worker 2"}') ?? 0), 2, 'the workers serve the two connections');
  for (const p of ['acceptor', 'spawner', 'worker 1', 'worker 2']) {
    t.ok((m.get(`ucspi_tls_resident_memory_bytes{process="${p}"}`) ?? 0) > 10 * 1048576, `${p}: resident memory`);
    t.ok((m.get(`ucspi_tls_private_memory_bytes{process="${p}"}`) ?? 0) > 1048576, `${p}: private memory`);
  }
  const began = m.get('ucspi_tls_start_time_seconds') ?? 0;
  t.ok(began >= startedAt - 1 && began <= Date.now() / 1000, 'the start time');
  t.ok(notAfter(cert.cert) - Date.now() / 1000 < 5 * 86400 + 60, 'the certificate expires within 5 days');

  // A renewal for 60 days, reloaded: its notAfter, and no warning.
  renew(dir, cert, 60);
  srv.proc.kill('SIGHUP');
  t.ok(await logged(srv, /reloaded \(SIGHUP\): 1 certificate/), 'reloaded');
  const renewed = notAfter(cert.cert);
  const afterReload = await scrape(t, where);
  t.same(values(afterReload, ['ucspi_tls_reloads_total{outcome="done"}', 'ucspi_tls_reloads_total{outcome="refused"}', 'ucspi_tls_last_reload_successful', 'ucspi_tls_certificate_not_after_seconds{name="",key_type="rsa"}']), {
    'ucspi_tls_reloads_total{outcome="done"}': 1,
    'ucspi_tls_reloads_total{outcome="refused"}': 0,
    ucspi_tls_last_reload_successful: 1,
    'ucspi_tls_certificate_not_after_seconds{name="",key_type="rsa"}': renewed,
  }, 'the reload, and the new notAfter');
  t.equal(srv.err.match(warning)?.length, 1, 'no warning for the 60-day certificate');

  // A broken file: refused, the 60-day certificate still served.
  writeFileSync(cert.cert, 'not a certificate\n');
  srv.proc.kill('SIGHUP');
  t.ok(await logged(srv, /reload \(SIGHUP\) refused: /), 'refused');
  const afterRefusal = await scrape(t, where);
  t.same(values(afterRefusal, ['ucspi_tls_reloads_total{outcome="done"}', 'ucspi_tls_reloads_total{outcome="refused"}', 'ucspi_tls_last_reload_successful', 'ucspi_tls_certificate_not_after_seconds{name="",key_type="rsa"}']), {
    'ucspi_tls_reloads_total{outcome="done"}': 1,
    'ucspi_tls_reloads_total{outcome="refused"}': 1,
    ucspi_tls_last_reload_successful: 0,
    'ucspi_tls_certificate_not_after_seconds{name="",key_type="rsa"}': renewed,
  }, 'the refused reload; the certificate served is still the 60-day one');

  // Only GET /metrics.
  t.equal((await curl(where, '/')).status, 404, 'GET /: 404');
  t.equal((await curl(where, '/metrics/x')).status, 404, 'GET /metrics/x: 404');
  t.equal((await curl(where, '/metrics', ['-X', 'POST', '-d', 'x'])).status, 404, 'POST /metrics: 404');
  t.equal((await curl(where, '/metrics?name[]=x')).status, 200, 'a query string is ignored');

  live.write('QUIT\r\n');
  t.equal(await liveLines.line(), '221 bye');
  live.destroy();
  held.sock.write('QUIT\r\n');
  await held.lines.line();
  held.sock.destroy();
  t.same((await srv.shutdown()).left, [], 'nothing left running');
  const gone = await run('curl', ['-sS', '--max-time', '5', `http://${where}/metrics`], { PATH: process.env.PATH });
  t.not(gone.status, 0, 'the metrics stop with the server');
});

t.test('a Unix socket: scrapes during a transfer, a PROXY refusal; the file goes at exit', async (t) => {
  const dir = tempDir(t);
  const cert = selfSigned(dir, 'cert', { ...SAN, days: 60 });
  const port = await freePort();
  const sock = join(dir, 'metrics.sock');
  // A stale socket file, as a killed server leaves it: replaced.
  await run('python3', ['-c', 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])', sock], { PATH: process.env.PATH });
  t.ok(existsSync(sock), 'a stale socket file is there');
  const srv = await ucspiTlsServer(t, port, baseEnv(cert, { REPORT: dir, BULK: '1000' }), ['-w', '1', '--metrics', sock], [APP]);
  t.notMatch(srv.err, /warning: the certificate/, 'no warning for a certificate valid 60 days');

  const tls = await startTls(port, { allowHalfOpen: true });
  const bytes = 8 * 1048576;
  let scrapes = 0;
  let transferring = true;
  const scraping = (async () => {
    while (transferring) {
      const r = await curl(sock);
      if (r.status === 200) scrapes++;
    }
  })();
  const { sent, received } = await sinkExchange(t, tls, bytes);
  const got = await within(received, 60000, 'the app\'s bytes');
  transferring = false;
  await scraping;
  t.equal(got.bytes, 1000, 'the app\'s 1000 bytes came');
  t.equal(readFileSync(join(dir, 'sink.sha'), 'latin1').trim(), sent, 'every byte sent reached the app');
  t.ok(scrapes >= 1, `${scrapes} scrapes answered during the transfer`);
  const end = await srv.end({ nth: 0 });
  t.same([end.toApp, end.toClient], [6 + bytes, 10 + 1000], 'the end line: SINK and its bytes, 354 and the app\'s bytes');
  const m = await scrape(t, sock);
  t.same(values(m, ['ucspi_tls_to_apps_bytes_total', 'ucspi_tls_to_clients_bytes_total', 'ucspi_tls_tls_started_total']), {
    ucspi_tls_to_apps_bytes_total: end.toApp, ucspi_tls_to_clients_bytes_total: end.toClient, ucspi_tls_tls_started_total: 1,
  }, 'the bytes each way, as the end line has them');
  t.same((await srv.shutdown()).left, [], 'nothing left running');
  t.notOk(existsSync(sock), 'the socket file is gone');
});

t.test('--proxy: a connection without a valid header is counted as refused for PROXY', async (t) => {
  const dir = tempDir(t);
  const cert = selfSigned(dir, 'cert', { ...SAN, days: 60 });
  const [port, mport] = [await freePort(), await freePort()];
  const srv = await ucspiTlsServer(t, port, baseEnv(cert, { REPORT: dir }), ['-w', '1', '--proxy', '--metrics', `127.0.0.1:${mport}`], [APP]);
  const c = connect({ port, host: '127.0.0.1' });
  c.on('error', () => {});
  c.write('HELO not a header\r\n');
  await within(new Promise((r) => c.once('close', r)), 20000, 'closed');
  t.ok(await logged(srv, /closed: .*PROXY/), 'the refusal logged');
  const ok = connect({ port, host: '127.0.0.1' });
  const lines = new Lines(ok);
  ok.write('PROXY TCP4 192.0.2.9 198.51.100.9 40020 25\r\nQUIT\r\n');
  t.same([await lines.line(), await lines.line()], ['220 test ESMTP', '221 bye']);
  ok.destroy();
  await srv.end({ nth: 0 });
  const m = await scrape(t, `127.0.0.1:${mport}`);
  t.same(values(m, ['ucspi_tls_connections_accepted_total', 'ucspi_tls_connections_refused_total{reason="proxy"}', 'ucspi_tls_connections_refused_total{reason="rules"}']), {
    ucspi_tls_connections_accepted_total: 2, 'ucspi_tls_connections_refused_total{reason="proxy"}': 1, 'ucspi_tls_connections_refused_total{reason="rules"}': 0,
  });
  t.same((await srv.shutdown()).left, [], 'nothing left running');
});

// Where --reuse-port runs at all (Node.js 22.12 and later; server-restart.test.ts has the refusal).
if (reusePortRefusal(process.versions.node) === undefined) {
  t.test('--reuse-port: the new server shares the metrics address with the one it replaces', async (t) => {
    const dir = tempDir(t);
    const cert = selfSigned(dir, 'cert', { ...SAN, days: 60 });
    const [port, mport] = [await freePort(), await freePort()];
    const where = `127.0.0.1:${mport}`;
    const flags = ['-w', '1', '--reuse-port', '--metrics', where];
    const old = await ucspiTlsServer(t, port, baseEnv(cert, { REPORT: dir }), flags, [APP]);
    t.equal((await scrape(t, where)).get('ucspi_tls_connections_accepted_total'), 0, 'the old server answers');
    const next = await ucspiTlsServer(t, port, baseEnv(cert, { REPORT: dir }), flags, [APP]);
    t.ok(await logged(next, /^ucspi-tls-server: listening on /m), 'the new server starts beside it');
    t.same((await old.shutdown()).left, [], 'the old one stops, nothing of it left');
    const one = await plain(port);
    one.sock.write('QUIT\r\n');
    await one.lines.line();
    one.sock.destroy();
    await next.end({ nth: 0 });
    t.equal((await scrape(t, where)).get('ucspi_tls_connections_accepted_total'), 1, 'the new server answers on the same address');
    t.same((await next.shutdown()).left, [], 'nothing left running');
  });
}

t.test('bad --metrics addresses: one line and the usage or configuration status; nothing left running, no file touched', async (t) => {
  const dir = tempDir(t);
  const cert = selfSigned(dir, 'cert', { ...SAN, days: 60 });
  const port = await freePort();
  const start = async (address: string): Promise<{ status: number | null; err: string }> => {
    const srv = new ServerLauncher(WITHOUT_TEST_HOOKS[0]!, [...WITHOUT_TEST_HOOKS.slice(1), SERVER, '-w', '1', '--metrics', address, '127.0.0.1', String(port), APP], baseEnv(cert, { REPORT: dir }));
    t.teardown(() => srv.stop());
    const r = await srv.exit();
    return { status: r.status, err: srv.err };
  };
  const usage = await start('localhost:9100');
  t.equal(usage.status, 100, 'a name, not an address: usage');
  t.match(usage.err, /^ucspi-tls-server: pid \d+: fatal: --metrics needs host:port \(an IP address\) or the path of a Unix socket, not 'localhost:9100' \(see ucspi-tls-server --help\)\n$/);

  // A port another program holds.
  const taken = await freePort();
  const holder = (await import('node:net')).createServer().listen(taken, '127.0.0.1');
  t.teardown(() => void holder.close());
  await new Promise((r) => holder.once('listening', r));
  const inUse = await start(`127.0.0.1:${taken}`);
  t.equal(inUse.status, 111, 'cannot bind: configuration');
  t.match(inUse.err, new RegExp(`^ucspi-tls-server: pid \\d+: fatal: cannot listen on 127\\.0\\.0\\.1:${taken} for --metrics: .*in use.*\\n$`, 'i'));

  // A file that is not a socket: left as it is.
  const file = join(dir, 'not-a-socket');
  writeFileSync(file, 'keep me\n');
  const notSocket = await start(file);
  t.equal(notSocket.status, 111);
  t.match(notSocket.err, /^ucspi-tls-server: pid \d+: fatal: cannot listen on \S+not-a-socket for --metrics: a file that is not a socket is there\n$/);
  t.equal(readFileSync(file, 'utf8'), 'keep me\n', 'the file is untouched');
});
