// The live figures (SIGUSR1, and at exit): the acceptor's counters and the lines they are
// logged as. Counting is a few integer additions per connection; the lines are pure.
import { FAILURE_REASONS, type FailureReason } from '../../tls/failure';

/**
 * Why an accepted connection was closed without an app: -c reached with the waiting queue
 * full, -C, the -x rules, no valid PROXY header, the server stopping, no TLS worker, the app
 * not started, or the client gone before it could start.
 */
export const REFUSAL_REASONS = ['limit', 'per-address', 'rules', 'proxy', 'stopping', 'no worker', 'app not started', 'client gone'] as const;

export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** What the acceptor counts over its lifetime, from its own events and the workers' `end` messages. */
export class Counters {
  accepted = 0;
  /** Accepted and closed without an app: waiting queue full, no worker, app not started, stopping. */
  refused = 0;
  readonly refusals: Record<RefusalReason, number> = Object.fromEntries(REFUSAL_REASONS.map((r) => [r, 0])) as Record<RefusalReason, number>;
  /** Ended sessions in which TLS started. */
  tlsStarted = 0;
  readonly failures: Record<FailureReason, number> = Object.fromEntries(FAILURE_REASONS.map((r) => [r, 0])) as Record<FailureReason, number>;
  /** Decrypted bytes of ended sessions. */
  toClients = 0;
  toApps = 0;

  refusedFor(reason: RefusalReason): void {
    this.refused++;
    this.refusals[reason]++;
  }

  ended(r: { tls: boolean; toClient: number; toApp: number; failed?: FailureReason }): void {
    if (r.tls) this.tlsStarted++;
    if (r.failed !== undefined) this.failures[r.failed]++;
    this.toClients += r.toClient;
    this.toApps += r.toApp;
  }
}

/** One worker's answer to a status request: its process and the sessions it runs now. */
export interface WorkerFigures {
  index: number;
  pid: number;
  /** Connections it serves now (the spawner's count). */
  conns: number;
  /** Bytes; undefined when the worker did not answer in time. */
  rss?: number;
  /** Private (unshared) memory, from /proc/PID/smaps_rollup; undefined where unknown. */
  private?: number;
  /** Sessions running now with TLS up, and their bytes so far. */
  tls?: number;
  toClient?: number;
  toApp?: number;
}

/** A resident process of the server and its memory (bytes). */
export interface ProcessMemory {
  pid: number;
  rss: number;
  private?: number;
}

export interface Snapshot {
  counters: Counters;
  /** Connections now (apps running or sessions ending). */
  now: number;
  limit: number;
  uptimeMs: number;
  acceptor: ProcessMemory;
  /** Undefined when it did not answer. */
  spawner?: ProcessMemory;
  workers: WorkerFigures[];
}

function mb(bytes: number | undefined): string {
  return bytes === undefined ? '?' : `${(bytes / 1048576).toFixed(1)} MB`;
}

/** Ended sessions' figures and the running ones' (as far as the workers told them). */
export function sessionTotals(s: Pick<Snapshot, 'counters' | 'workers'>): { tlsStarted: number; toClients: number; toApps: number } {
  const c = s.counters;
  let tlsStarted = c.tlsStarted;
  let toClients = c.toClients;
  let toApps = c.toApps;
  for (const w of s.workers) {
    tlsStarted += w.tls ?? 0;
    toClients += w.toClient ?? 0;
    toApps += w.toApp ?? 0;
  }
  return { tlsStarted, toClients, toApps };
}

/**
 * The lines, in this order: connections, TLS, bytes, the acceptor, the spawner, then one per worker.
 * `label` starts each: "figures" on SIGUSR1, "figures at exit" at exit.
 */
export function figureLines(label: string, s: Snapshot): string[] {
  const c = s.counters;
  const { tlsStarted: tls, toClients, toApps } = sessionTotals(s);
  const failed = FAILURE_REASONS.reduce((n, r) => n + c.failures[r], 0);
  const reasons = FAILURE_REASONS.map((r) => `${r} ${c.failures[r]}`).join(', ');
  return [
    `${label}: connections: ${s.now} now (limit ${s.limit}), ${c.accepted} accepted, ${c.refused} refused, up ${Math.floor(s.uptimeMs / 1000)} s`,
    `${label}: tls: ${tls} started, ${failed} handshakes failed (${reasons})`,
    `${label}: bytes: ${toClients} to clients, ${toApps} to apps`,
    `${label}: acceptor pid ${s.acceptor.pid}: rss ${mb(s.acceptor.rss)}, private ${mb(s.acceptor.private)}`,
    ...(s.spawner !== undefined ? [`${label}: spawner pid ${s.spawner.pid}: rss ${mb(s.spawner.rss)}, private ${mb(s.spawner.private)}`] : []),
    ...s.workers.map((w) => `${label}: worker ${w.index} pid ${w.pid}: ${w.conns} connections, rss ${mb(w.rss)}, private ${mb(w.private)}`),
  ];
}
