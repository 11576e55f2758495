// The acceptor's live figures: its own counters, and what the spawner tells of itself and
// of the workers when asked. For SIGUSR1's lines, the metrics' scrapes and the watchdog's
// probe; each asks the spawner once.
import { Counters, type ProcessMemory, type Snapshot, type WorkerFigures } from '../lifecycle/figures';
import { ownMemory } from '../lifecycle/memory';
import type { CertificateRow } from '../metrics/certificates';
import { MetricsState } from '../metrics/state';
import type { Probe } from '../notify/readiness';
import { statusLine } from '../notify/status';
import type { FromSpawner, ToSpawner } from '../protocol';

type Answer = Extract<FromSpawner, { t: 'figures' }>;

/** What the spawner tells of the processes it started, and of itself. */
export interface Others {
  spawner?: ProcessMemory;
  workers: WorkerFigures[];
}

export class LiveFigures {
  readonly counters = new Counters();
  private readonly startedAt = performance.now();
  private readonly waits = new Map<number, (answer: Answer | undefined) => void>();
  private nextKey = 1;
  private metrics: MetricsState | undefined;
  /** The figures a scrape is waiting for: scrapes at once share one round of the workers. */
  private scraping: Promise<string> | undefined;

  constructor(
    /** Sends to the spawner; false when it is gone. */
    private readonly ask: (m: ToSpawner) => boolean,
    /** Connections now. */
    private readonly active: () => number,
    private readonly limit: number,
    private readonly workers: number,
  ) {}

  /** The certificates served from the start: the metrics begin. */
  started(certificates: CertificateRow[]): void {
    this.metrics = new MetricsState(certificates, Math.floor(Date.now() / 1000));
  }

  /** A reload's outcome: the certificates served from now on, or undefined when refused. */
  reloaded(certificates: CertificateRow[] | undefined): void {
    this.metrics?.reloaded(certificates);
  }

  /** The spawner's answer to a question asked here. */
  answered(m: Answer): void {
    this.waits.get(m.key)?.(m);
  }

  snapshot(others: Others): Snapshot {
    return {
      counters: this.counters,
      now: this.active(),
      limit: this.limit,
      uptimeMs: performance.now() - this.startedAt,
      acceptor: { pid: process.pid, ...ownMemory() },
      ...(others.spawner !== undefined ? { spawner: others.spawner } : {}),
      workers: others.workers,
    };
  }

  /** The readiness protocol's status line from a snapshot. */
  status(s: Snapshot): string {
    return statusLine(s, this.workers);
  }

  /** The text of one scrape of --metrics. */
  scrape(): Promise<string> {
    this.scraping ??= this.others()
      .then((others) => this.metrics!.scrape(this.snapshot(others)))
      .finally(() => (this.scraping = undefined));
    return this.scraping;
  }

  /** A tick of the readiness protocol: healthy when the spawner and every worker run and answer within `ms`. */
  async probe(ms: number): Promise<Probe> {
    const others = await this.others(ms);
    const workers = others.workers;
    const silent = workers.filter((w) => w.rss === undefined).map((w) => `worker ${w.index} (pid ${w.pid})`);
    const status = this.status(this.snapshot(others));
    if (others.spawner === undefined) return { healthy: false, status, problem: `the spawner did not answer within ${ms + 1000} ms` };
    if (silent.length > 0) return { healthy: false, status, problem: `${silent.join(', ')} did not answer within ${ms} ms` };
    if (workers.length < this.workers) return { healthy: false, status, problem: `${this.workers - workers.length} worker(s) not running` };
    return { healthy: true, status };
  }

  /** The spawner's memory and every running worker's figures; a worker silent for `ms` without its memory. */
  others(ms = 1000): Promise<Others> {
    const key = this.nextKey++;
    return new Promise((resolve) => {
      // The spawner answers within `ms` whatever the workers do; past that it is stuck.
      const timer = setTimeout(() => done(undefined), ms + 1000);
      const done = (m: Answer | undefined): void => {
        clearTimeout(timer);
        this.waits.delete(key);
        resolve(m === undefined ? { workers: [] } : { spawner: m.spawner, workers: m.workers });
      };
      this.waits.set(key, done);
      if (!this.ask({ t: 'figures', key, ms })) done(undefined);
    });
  }
}
