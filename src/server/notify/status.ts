// The words systemd shows as the service's status (`systemctl status`: "Status: ..."), and
// the assignments each event sends. Pure.
import { FAILURE_REASONS } from '../../tls/failure';
import type { Snapshot } from '../lifecycle/figures';

/**
 * The live figures in one line, worded as the SIGUSR1 lines (see lifecycle/figures.ts).
 * `workers`: how many there should be; a worker that did not answer has no rss.
 */
export function statusLine(s: Snapshot, workers: number): string {
  const c = s.counters;
  let tls = c.tlsStarted;
  for (const w of s.workers) tls += w.tls ?? 0;
  const failed = FAILURE_REASONS.reduce((n, r) => n + c.failures[r], 0);
  const answering = s.workers.filter((w) => w.rss !== undefined).length;
  return (
    `connections: ${s.now} now (limit ${s.limit}), ${c.accepted} accepted, ${c.refused} refused; ` +
    `tls: ${tls} started, ${failed} handshakes failed; workers: ${answering} of ${workers} answering`
  );
}

/** One assignment per line in the datagram: a value must not hold a newline. */
export function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}

/**
 * CLOCK_MONOTONIC in microseconds, as systemd compares it with when it sent SIGHUP
 * (Type=notify-reload). Node's hrtime reads that clock.
 */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

/**
 * Routine messages (WATCHDOG=1, STATUS=) waiting behind another are merged into one: the
 * newest value of each name, so a slow systemd never makes a queue of them.
 */
export function mergeAssignments(older: readonly string[], newer: readonly string[]): string[] {
  const byName = new Map<string, string>();
  for (const a of [...older, ...newer]) {
    const name = a.slice(0, a.indexOf('='));
    byName.delete(name);
    byName.set(name, a);
  }
  return [...byName.values()];
}
