// What the metrics keep between scrapes: the reloads and their outcome, the certificates
// served now, each worker's last answer, and the totals already shown (a counter never
// goes back). No I/O: the launcher hands in the figures, this returns the text.
import { sessionTotals, type Snapshot, type WorkerFigures } from '../lifecycle/figures';
import type { CertificateRow } from './certificates';
import { families, type ReloadCounts } from './families';
import { render } from './text-format';

type Totals = ReturnType<typeof sessionTotals>;

export class MetricsState {
  private readonly reloads: ReloadCounts = { done: 0, refused: 0, lastOk: true };
  private certificates: CertificateRow[];
  /** By pid: a worker that does not answer a scrape in time is shown as it last answered. */
  private readonly lastAnswer = new Map<number, WorkerFigures>();
  private shown: Totals = { tlsStarted: 0, toClients: 0, toApps: 0 };

  constructor(
    certificates: CertificateRow[],
    private readonly startTimeSeconds: number,
  ) {
    this.certificates = certificates;
  }

  /** A reload's outcome; `certificates`: those served from now on, when it was taken. */
  reloaded(certificates: CertificateRow[] | undefined): void {
    if (certificates === undefined) {
      this.reloads.refused++;
      this.reloads.lastOk = false;
      return;
    }
    this.reloads.done++;
    this.reloads.lastOk = true;
    this.certificates = certificates;
  }

  /** The text of one scrape. */
  scrape(s: Snapshot): string {
    const live = new Set(s.workers.map((w) => w.pid));
    for (const pid of this.lastAnswer.keys()) if (!live.has(pid)) this.lastAnswer.delete(pid);
    const workers = s.workers.map((w) => {
      if (w.rss !== undefined) {
        this.lastAnswer.set(w.pid, w);
        return w;
      }
      const last = this.lastAnswer.get(w.pid);
      return last === undefined ? w : { ...last, conns: w.conns };
    });
    const figures = { ...s, workers };
    // A session that ended between a worker's answer and the launcher's count of its end
    // would count twice, then once: the total shown holds until the count passes it.
    const now = sessionTotals(figures);
    this.shown = {
      tlsStarted: Math.max(this.shown.tlsStarted, now.tlsStarted),
      toClients: Math.max(this.shown.toClients, now.toClients),
      toApps: Math.max(this.shown.toApps, now.toApps),
    };
    return render(families({ figures, totals: this.shown, startTimeSeconds: this.startTimeSeconds, reloads: this.reloads, certificates: this.certificates }));
  }
}
