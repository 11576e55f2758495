// What a scrape shows: the live figures (see ../lifecycle/figures.ts), the reloads and the
// certificates served, as metric families. Pure.
import { FAILURE_REASONS } from '../../tls/failure';
import { REFUSAL_REASONS, type Snapshot } from '../lifecycle/figures';
import type { CertificateRow } from './certificates';
import type { Family, Sample } from './text-format';

export interface ReloadCounts {
  done: number;
  refused: number;
  /** Whether the last reload (or the start, before any) was taken. */
  lastOk: boolean;
}

export interface MetricsSnapshot {
  figures: Snapshot;
  /** TLS sessions started and bytes each way, ended sessions and running ones: never less than the scrape before. */
  totals: { tlsStarted: number; toClients: number; toApps: number };
  startTimeSeconds: number;
  reloads: ReloadCounts;
  certificates: readonly CertificateRow[];
}

const P = 'ucspi_tls_';

function one(name: string, type: Family['type'], help: string, value: number): Family {
  return { name: P + name, type, help, samples: [{ value }] };
}

/** Each resident process's memory: `process` is "acceptor", "spawner" or "worker N". */
function memory(s: Snapshot, pick: (m: { rss?: number; private?: number }) => number | undefined): Sample[] {
  const out: Sample[] = [];
  const add = (process: string, v: number | undefined): void => {
    if (v !== undefined) out.push({ labels: { process }, value: v });
  };
  add('acceptor', pick(s.acceptor));
  if (s.spawner !== undefined) add('spawner', pick(s.spawner));
  for (const w of s.workers) add(`worker ${w.index}`, pick(w));
  return out;
}

export function families(m: MetricsSnapshot): Family[] {
  const s = m.figures;
  const c = s.counters;
  return [
    one('connections', 'gauge', 'Connections now: apps running or sessions ending, and PROXY headers being read.', s.now),
    one('connections_limit', 'gauge', 'Connections at once at most (-c).', s.limit),
    one('connections_accepted_total', 'counter', 'Connections accepted.', c.accepted),
    {
      name: `${P}connections_refused_total`,
      type: 'counter',
      help: 'Connections accepted and closed without an app, by reason.',
      samples: REFUSAL_REASONS.map((reason) => ({ labels: { reason }, value: c.refusals[reason] })),
    },
    one('tls_started_total', 'counter', 'Sessions in which TLS started, ended or running.', m.totals.tlsStarted),
    {
      name: `${P}handshake_failures_total`,
      type: 'counter',
      help: 'Handshakes that failed, by bucket.',
      samples: FAILURE_REASONS.map((bucket) => ({ labels: { bucket }, value: c.failures[bucket] })),
    },
    one('to_clients_bytes_total', 'counter', 'Bytes of the apps sent to the clients (decrypted), ended sessions and running ones.', m.totals.toClients),
    one('to_apps_bytes_total', 'counter', 'Bytes of the clients sent to the apps (decrypted), ended sessions and running ones.', m.totals.toApps),
    {
      name: `${P}worker_connections`,
      type: 'gauge',
      help: 'Connections each TLS worker serves now.',
      samples: s.workers.map((w) => ({ labels: { process: `worker ${w.index}` }, value: w.conns })),
    },
    { name: `${P}resident_memory_bytes`, type: 'gauge', help: 'Resident memory of each process.', samples: memory(s, (x) => x.rss) },
    { name: `${P}private_memory_bytes`, type: 'gauge', help: 'Memory each process alone holds (Private_Clean + Private_Dirty of smaps_rollup).', samples: memory(s, (x) => x.private) },
    one('start_time_seconds', 'gauge', 'When the server started, in seconds since the epoch.', m.startTimeSeconds),
    {
      name: `${P}reloads_total`,
      type: 'counter',
      help: 'Reloads of the TLS files (SIGHUP, --watch), by outcome: done, or refused (the files read before still served).',
      samples: [
        { labels: { outcome: 'done' }, value: m.reloads.done },
        { labels: { outcome: 'refused' }, value: m.reloads.refused },
      ],
    },
    one('last_reload_successful', 'gauge', '1 when the last reload was done (or none was tried), 0 when it was refused.', m.reloads.lastOk ? 1 : 0),
    {
      name: `${P}certificate_not_after_seconds`,
      type: 'gauge',
      help: 'When each certificate served expires (notAfter), in seconds since the epoch; name empty for CERTFILE.',
      samples: m.certificates.map((r) => ({ labels: { name: r.name, key_type: r.keyType }, value: r.notAfterSeconds })),
    },
  ];
}
