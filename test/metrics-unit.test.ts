// The pure parts of ucspi-tls-server's metrics and of the expiry warning: --metrics' address,
// the text format, the families a scrape shows, the certificates' rows, a counter that never
// goes back, the warning lines.
import t from 'tap';
import type { Credentials } from '../src/tls/credentials';
import { expiryWarnings } from '../src/tls/expiry';
import { Counters, type Snapshot } from '../src/server/lifecycle/figures';
import { parseMetricsAddress } from '../src/server/metrics/address';
import { certificateRows, keyType } from '../src/server/metrics/certificates';
import { MetricsState } from '../src/server/metrics/state';
import { escapeLabel, render } from '../src/server/metrics/text-format';
import { EXIT_USAGE } from '../src/contract/exit-codes';
import { parseServerArgs } from '../src/server/options';

const DAY = 86_400_000;
const ENV = { CERTFILE: '/c.pem' };

/** Credentials with only what the metrics and the warning read. */
function creds(certs: Array<{ name?: string; oid: string; notAfterMs: number; serial?: string }>): Credentials {
  return {
    identities: certs.map((c) => ({
      ...(c.name !== undefined ? { name: c.name } : {}),
      pairs: [{ leaf: { notAfterMs: c.notAfterMs, notAfter: 'Dec 10 15:00:00 2026 GMT', serial: c.serial ?? '01', publicKey: { algorithm: c.oid } } }],
    })),
  } as unknown as Credentials;
}

t.test('--metrics ADDRESS: IPv4:port, [IPv6]:port, a socket path; anything else is a usage error', async (t) => {
  t.same(parseMetricsAddress('127.0.0.1:9100'), { kind: 'tcp', host: '127.0.0.1', port: 9100 });
  t.same(parseMetricsAddress('[::1]:9100'), { kind: 'tcp', host: '::1', port: 9100 });
  t.same(parseMetricsAddress('/run/ucspi-tls/metrics.sock'), { kind: 'unix', path: '/run/ucspi-tls/metrics.sock' });
  t.same(parseMetricsAddress('./metrics.sock'), { kind: 'unix', path: './metrics.sock' });
  for (const bad of ['9100', 'localhost:9100', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:65536', '::1:9100', '[127.0.0.1]:9100', '1.2.3:80', '']) {
    t.match(parseMetricsAddress(bad), { error: /^--metrics needs host:port/ }, `'${bad}'`);
  }
  t.match(parseMetricsAddress(`/${'x'.repeat(107)}`), { error: /at most 107 bytes/ });
  const r = parseServerArgs(['--metrics', 'localhost:9100', '127.0.0.1', '25', 'app'], ENV, 1, 1);
  t.same(r, { kind: 'error', status: EXIT_USAGE, message: "--metrics needs host:port (an IP address) or the path of a Unix socket, not 'localhost:9100'" });
  t.match(parseServerArgs(['--metrics', '127.0.0.1:1', '--metrics', '127.0.0.1:2', '127.0.0.1', '25', 'app'], ENV, 1, 1), { kind: 'error', status: EXIT_USAGE });
  const ok = parseServerArgs(['--metrics', '127.0.0.1:9100', '127.0.0.1', '25', 'app'], ENV, 1, 1);
  t.same(ok.kind === 'run' && ok.config.metrics, { kind: 'tcp', host: '127.0.0.1', port: 9100 });
  const none = parseServerArgs(['127.0.0.1', '25', 'app'], ENV, 1, 1);
  t.equal(none.kind === 'run' && none.config.metrics, undefined, 'never on by default');
});

t.test('the text format: HELP, TYPE, samples; label values and help escaped; empty families left out', async (t) => {
  t.equal(escapeLabel('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
  const text = render([
    { name: 'x_total', type: 'counter', help: 'back\\slash\nnewline', samples: [{ value: 3 }] },
    { name: 'y', type: 'gauge', help: 'h', samples: [{ labels: { a: '1', b: 'q"q' }, value: 1.5 }, { labels: { a: '2', b: '' }, value: NaN }] },
    { name: 'z', type: 'gauge', help: 'none', samples: [] },
  ]);
  t.equal(text, '# HELP x_total back\\\\slash\\nnewline\n# TYPE x_total counter\nx_total 3\n# HELP y h\n# TYPE y gauge\ny{a="1",b="q\\"q"} 1.5\ny{a="2",b=""} NaN\n');
  t.equal(render([]), '');
});

t.test('certificates: name (empty for CERTFILE), key type, notAfter in seconds', async (t) => {
  t.same(['1.2.840.113549.1.1.1', '1.2.840.10045.2.1', '1.3.101.112', '1.3.101.113', '1.2.840.113549.1.1.10', '1.2.3.4'].map(keyType), ['rsa', 'ec', 'ed25519', 'ed448', 'rsa-pss', '1.2.3.4']);
  t.same(certificateRows(creds([{ oid: '1.2.840.113549.1.1.1', notAfterMs: 1_800_000_000_999 }, { name: '*.example.test', oid: '1.2.840.10045.2.1', notAfterMs: 1_700_000_000_000 }])), [
    { name: '', keyType: 'rsa', notAfterSeconds: 1_800_000_000 },
    { name: '*.example.test', keyType: 'ec', notAfterSeconds: 1_700_000_000 },
  ]);
});

function snapshot(c: Counters, workers: Snapshot['workers']): Snapshot {
  return { counters: c, now: 1, limit: 40, uptimeMs: 5000, acceptor: { pid: 10, rss: 1000, private: 500 }, spawner: { pid: 9, rss: 800, private: 300 }, workers };
}

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

t.test('a scrape: refusals by reason, failures by bucket, totals of ended and running sessions, reloads, certificates', async (t) => {
  const c = new Counters();
  c.accepted = 7;
  c.refusedFor('rules');
  c.refusedFor('per-address');
  c.refusedFor('per-address');
  c.refusedFor('proxy');
  c.ended({ tls: true, toClient: 100, toApp: 10 });
  c.ended({ tls: false, toClient: 0, toApp: 0, failed: 'protocol' });
  const m = new MetricsState(certificateRows(creds([{ oid: '1.2.840.113549.1.1.1', notAfterMs: 2_000_000_000_000 }])), 1_700_000_000);
  const text = m.scrape(snapshot(c, [{ index: 1, pid: 20, conns: 1, rss: 3000, private: 700, tls: 1, toClient: 5, toApp: 6 }]));
  const expect: Array<[string, number]> = [
    ['ucspi_tls_connections', 1],
    ['ucspi_tls_connections_limit', 40],
    ['ucspi_tls_connections_accepted_total', 7],
    ['ucspi_tls_connections_refused_total{reason="rules"}', 1],
    ['ucspi_tls_connections_refused_total{reason="per-address"}', 2],
    ['ucspi_tls_connections_refused_total{reason="proxy"}', 1],
    ['ucspi_tls_connections_refused_total{reason="limit"}', 0],
    ['ucspi_tls_tls_started_total', 2],
    ['ucspi_tls_handshake_failures_total{bucket="protocol"}', 1],
    ['ucspi_tls_handshake_failures_total{bucket="timeout"}', 0],
    ['ucspi_tls_to_clients_bytes_total', 105],
    ['ucspi_tls_to_apps_bytes_total', 16],
    ['ucspi_tls_worker_connections{process="worker 1"}', 1],
    ['ucspi_tls_resident_memory_bytes{process="acceptor"}', 1000],
    ['ucspi_tls_resident_memory_bytes{process="spawner"}', 800],
    ['ucspi_tls_resident_memory_bytes{process="worker 1"}', 3000],
    ['ucspi_tls_private_memory_bytes{process="worker 1"}', 700],
    ['ucspi_tls_start_time_seconds', 1_700_000_000],
    ['ucspi_tls_reloads_total{outcome="done"}', 0],
    ['ucspi_tls_last_reload_successful', 1],
    ['ucspi_tls_certificate_not_after_seconds{name="",key_type="rsa"}', 2_000_000_000],
  ];
  for (const [series, v] of expect) t.equal(value(text, series), v, series);

  // A refused reload, then one taken with a new certificate.
  m.reloaded(undefined);
  let after = m.scrape(snapshot(c, []));
  t.equal(value(after, 'ucspi_tls_reloads_total{outcome="refused"}'), 1);
  t.equal(value(after, 'ucspi_tls_last_reload_successful'), 0);
  m.reloaded(certificateRows(creds([{ name: 'mail.example.test', oid: '1.3.101.112', notAfterMs: 2_100_000_000_000 }])));
  after = m.scrape(snapshot(c, []));
  t.equal(value(after, 'ucspi_tls_reloads_total{outcome="done"}'), 1);
  t.equal(value(after, 'ucspi_tls_last_reload_successful'), 1);
  t.equal(value(after, 'ucspi_tls_certificate_not_after_seconds{name="mail.example.test",key_type="ed25519"}'), 2_100_000_000);
  t.equal(value(after, 'ucspi_tls_certificate_not_after_seconds{name="",key_type="rsa"}'), undefined, 'the old certificate is gone');
});

t.test('a worker that does not answer: shown as it last answered; the byte counters never go back', async (t) => {
  const c = new Counters();
  const m = new MetricsState(certificateRows(creds([])), 0);
  m.scrape(snapshot(c, [{ index: 1, pid: 20, conns: 1, rss: 3000, private: 700, tls: 1, toClient: 50, toApp: 60 }]));
  // No answer this time: its memory and its running session's bytes as before.
  let text = m.scrape(snapshot(c, [{ index: 1, pid: 20, conns: 2 }]));
  t.equal(value(text, 'ucspi_tls_resident_memory_bytes{process="worker 1"}'), 3000);
  t.equal(value(text, 'ucspi_tls_worker_connections{process="worker 1"}'), 2, 'its connections: the spawner knows them');
  t.equal(value(text, 'ucspi_tls_to_clients_bytes_total'), 50);
  // The session ended with fewer bytes counted than shown (a stale answer): the total holds.
  c.ended({ tls: true, toClient: 40, toApp: 60 });
  text = m.scrape(snapshot(c, [{ index: 1, pid: 20, conns: 0, rss: 3000, tls: 0, toClient: 0, toApp: 0 }]));
  t.equal(value(text, 'ucspi_tls_to_clients_bytes_total'), 50);
  t.equal(value(text, 'ucspi_tls_tls_started_total'), 1);
  t.equal(value(text, 'ucspi_tls_resident_memory_bytes{process="worker 1"}'), 3000);
  // A worker replaced: the dead one's last answer is not shown for it.
  text = m.scrape(snapshot(c, [{ index: 1, pid: 21, conns: 0 }]));
  t.equal(value(text, 'ucspi_tls_resident_memory_bytes{process="worker 1"}'), undefined);
});

t.test('expiry warnings: within 14 days or expired, one line each, naming the file', async (t) => {
  const now = 1_800_000_000_000;
  const tls = {
    identities: [
      { pairs: [{ certFile: '/etc/tls/default.pem', keyFile: 'k' }] },
      { name: 'mail.example.test', pairs: [{ certFile: '/etc/tls/mail.pem', keyFile: 'k' }, { certFile: '/etc/tls/mail-ec.pem', keyFile: 'k' }] },
    ],
  };
  const c = creds([]);
  c.identities = [
    creds([{ oid: '1.2.840.113549.1.1.1', notAfterMs: now + 3 * DAY - 1000, serial: 'AA' }]).identities[0]!,
    {
      name: 'mail.example.test',
      pairs: [...creds([{ oid: 'x', notAfterMs: now + 60 * DAY }]).identities[0]!.pairs, ...creds([{ oid: 'x', notAfterMs: now - 1, serial: 'BB' }]).identities[0]!.pairs],
    },
  ];
  t.same(expiryWarnings(tls, c, now), [
    'warning: the certificate in CERTFILE /etc/tls/default.pem (serial AA) expires in 3 days: notAfter Dec 10 15:00:00 2026 GMT',
    'warning: the certificate in CERTFILE:mail.example.test /etc/tls/mail-ec.pem (serial BB) has expired: notAfter Dec 10 15:00:00 2026 GMT',
  ]);
  t.same(expiryWarnings(tls, creds([{ oid: 'x', notAfterMs: now + 14 * DAY }]), now), [], '14 days and more: none');
  t.match(expiryWarnings(tls, creds([{ oid: 'x', notAfterMs: now + 14 * DAY - 1 }]), now), [/expires in 14 days/]);
  t.match(expiryWarnings(tls, creds([{ oid: 'x', notAfterMs: now + 3_600_000 * 5 }]), now), [/expires in 5 hours/]);
});
