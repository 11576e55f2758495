// `make soak`: the tables it prints, from the tallies. Pure.
import { markdown } from './report';
import type { Verdict } from './soak-log';

export interface KindTally {
  kind: string;
  sessions: number;
  starttls: number;
  implicit: number;
  byVerdict: Record<Verdict, number>;
  /** From the server's end lines. */
  toClient: number;
  toApp: number;
}

export function emptyTally(kind: string): KindTally {
  return { kind, sessions: 0, starttls: 0, implicit: 0, byVerdict: { finished: 0, fault: 0, 'worker lost': 0, unexplained: 0 }, toClient: 0, toApp: 0 };
}

export interface Figures {
  seconds: number;
  sessions: number;
  reloads: number;
  /** Distinct serials the sessions saw, of those issued (the first certificate and one per renewal). */
  serialsSeen: number;
  serialsIssued: number;
  /** Sessions that saw the serial current at their handshake, of those checked (outside the grace after each renewal). */
  newestSeen: number;
  newestChecked: number;
  workersKilled: number;
  /** Private KiB of the servers' own processes (launchers and workers, no app). */
  memStart: number;
  memPeak: number;
  memEnd: number;
  memBound: number;
  fdsStart: string;
  fdsEnd: string;
  left: number;
}

const MiB = (bytes: number): string => (bytes / 1048576).toFixed(1);
const kMiB = (kib: number): string => (kib / 1024).toFixed(1);

/** One row per kind of session, and the total. */
export function sessionTable(tallies: readonly KindTally[]): string {
  const total = emptyTally('all');
  for (const t of tallies) {
    total.sessions += t.sessions;
    total.starttls += t.starttls;
    total.implicit += t.implicit;
    total.toClient += t.toClient;
    total.toApp += t.toApp;
    for (const v of Object.keys(t.byVerdict) as Verdict[]) total.byVerdict[v] += t.byVerdict[v];
  }
  const row = (t: KindTally): string[] => [
    t.kind,
    `${t.sessions} (${t.starttls} / ${t.implicit})`,
    String(t.byVerdict.finished),
    String(t.byVerdict.fault),
    String(t.byVerdict['worker lost']),
    String(t.byVerdict.unexplained),
    MiB(t.toClient),
    MiB(t.toApp),
  ];
  return markdown(
    ['session', 'started (STARTTLS / implicit)', 'finished byte-exact', 'ended by its fault', 'lost with a killed worker', 'unexplained', 'MiB to client', 'MiB to app'],
    [...tallies.filter((t) => t.sessions > 0).map(row), row(total)],
  );
}

/** The server's side: the run, the faults, memory and fds. */
export function serverTable(f: Figures): string {
  return markdown(
    ['run', 'sessions a minute', 'reloads (SIGHUP)', 'serials seen / issued', 'saw the serial current at their handshake', 'workers killed', 'private MiB start / peak / end (bound)', 'fds start → end', 'processes left'],
    [
      [
        `${f.seconds.toFixed(0)} s`,
        (f.sessions / (f.seconds / 60)).toFixed(0),
        String(f.reloads),
        `${f.serialsSeen} / ${f.serialsIssued}`,
        `${f.newestSeen} of ${f.newestChecked}`,
        String(f.workersKilled),
        `${kMiB(f.memStart)} / ${kMiB(f.memPeak)} / ${kMiB(f.memEnd)} (≤ ${kMiB(f.memBound)})`,
        `${f.fdsStart} → ${f.fdsEnd}`,
        String(f.left),
      ],
    ],
  );
}

/**
 * How much the mean of the last third of a memory timeline lies above the mean of its middle
 * third: near zero or below once the heaps have grown to their size, positive and growing
 * with the run when memory leaks. NaN with fewer than 9 samples. Pure.
 */
export function lateGrowth(timeline: readonly number[]): number {
  if (timeline.length < 9) return NaN;
  const third = Math.floor(timeline.length / 3);
  const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  return mean(timeline.slice(timeline.length - third)) - mean(timeline.slice(third, timeline.length - third));
}
