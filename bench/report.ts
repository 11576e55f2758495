// The benchmark's table and its verdicts (pure): figures in, text out.

export interface Row {
  name: string;
  /** Why the row has no figures at all (a program not built). */
  missing?: string;
  /** Steps that failed for this row: their cells print "fail". */
  failed: string[];
  /** ms from connect to the app's first byte (through TLS for the implicit rows) */
  bannerMs: number;
  /** ms for a whole session */
  sessionMs: number;
  /** MiB/s, app to client and client to app */
  toClient: number;
  toApp: number;
  /** private KiB per idle connection: the server's processes with N idle connections, less without, / N */
  idleKiB: number;
  /** private KiB at the highest while slow readers read: of one process per connection, or of all resident ones */
  peakKiB: number;
  /** growth of the server's private KiB per connection beyond idle while the app writes as fast as it can */
  slowGrowthKiB: number;
  stalledGrowthKiB: number;
  /** as peakKiB, with readers that read nothing */
  stalledPeakKiB: number;
  /** server CPU (user + system) per session, ms */
  cpuMs: number;
  /** sessions per second with 16 clients at once */
  perSecond: number;
}

export function emptyRow(name: string, missing?: string): Row {
  const n = NaN;
  return { name, missing, failed: [], bannerMs: n, sessionMs: n, toClient: n, toApp: n, idleKiB: n, peakKiB: n, slowGrowthKiB: n, stalledGrowthKiB: n, stalledPeakKiB: n, cpuMs: n, perSecond: n };
}

const f = (n: number, digits = 1): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const int = (n: number): string => (Number.isFinite(n) ? String(Math.round(n)) : 'n/a');
const signed = (n: number, digits: number): string => (Number.isFinite(n) ? `${n < 0 ? '−' : '+'} ${Math.abs(n).toFixed(digits)}` : 'n/a');

/** The columns, each with the step that measures it (a failed step prints "fail"). */
interface Column {
  head: string;
  step: string;
  cell: (r: Row) => string;
}

export interface Labels {
  /** the slow reader's pace, e.g. "1 MiB/s" */
  pace: string;
  concurrent: number;
}

function columns(l: Labels): Column[] {
  return [
    { head: 'banner ms', step: 'banner', cell: (r) => f(r.bannerMs, 2) },
    { head: 'session ms', step: 'session', cell: (r) => f(r.sessionMs, 2) },
    { head: 'app→client MiB/s', step: 'app→client', cell: (r) => int(r.toClient) },
    { head: 'client→app MiB/s', step: 'client→app', cell: (r) => int(r.toApp) },
    { head: 'idle KiB/conn', step: 'idle', cell: (r) => int(r.idleKiB) },
    { head: `peak KiB (reader ${l.pace})`, step: 'slow reader', cell: (r) => int(r.peakKiB) },
    { head: `growth KiB/conn (${l.pace})`, step: 'slow reader', cell: (r) => int(r.slowGrowthKiB) },
    { head: 'growth KiB/conn (stalled)', step: 'stalled reader', cell: (r) => int(r.stalledGrowthKiB) },
    { head: 'CPU ms/session', step: 'sessions/s', cell: (r) => f(r.cpuMs, 2) },
    { head: `sessions/s (${l.concurrent} at once)`, step: 'sessions/s', cell: (r) => f(r.perSecond) },
  ];
}

export function table(rows: readonly Row[], l: Labels): string {
  const cols = columns(l);
  const body = rows.map((r) => [
    r.name,
    ...cols.map((c, i) => {
      if (r.missing !== undefined) return i === 0 ? r.missing : '–';
      return r.failed.includes(c.step) ? 'fail' : c.cell(r);
    }),
  ]);
  return markdown(['', ...cols.map((c) => c.head)], body);
}

/** One target: how a subject's figure is measured against what, and the limit. */
export interface Goal {
  what: string;
  limit: string;
  /** The figure as printed and whether it meets the limit; undefined where the goal does not apply. */
  judge: (subject: Row) => { text: string; met: boolean } | undefined;
}

/** Targets down, one column pair (measured, verdict) per subject. "no figure" where one is missing. */
export function targetTable(goals: readonly Goal[], subjects: readonly Row[]): string {
  const head = ['target', 'limit', ...subjects.flatMap((s) => [s.name, ''])];
  const body = goals.map((g) => [
    g.what,
    g.limit,
    ...subjects.flatMap((s) => {
      if (s.missing !== undefined) return [s.missing, ''];
      const j = g.judge(s);
      if (j === undefined) return ['–', ''];
      return j.text.includes('n/a') ? [j.text, 'no figure'] : [j.text, j.met ? 'met' : 'NOT met'];
    }),
  ]);
  return markdown(head, body);
}

const atMost = (value: number, limit: number): boolean => Number.isFinite(value) && value <= limit;
const atLeast = (value: number, limit: number): boolean => Number.isFinite(value) && value >= limit;

/**
 * The resident server's targets against the tcpserver floor and stunnel in inetd mode. The
 * banner and STARTTLS session targets apply to STARTTLS subjects only (`starttls`).
 */
export function serverGoals(floor: Row, stunnel: Row, starttls: (r: Row) => boolean): Goal[] {
  const banner = (r: Row): number => r.bannerMs - floor.bannerMs;
  const session = (r: Row): number => r.sessionMs - floor.sessionMs;
  return [
    { what: 'banner − tcpserver floor', limit: '≤ + 0.5 ms', judge: (r) => (starttls(r) ? { text: `${signed(banner(r), 2)} ms`, met: atMost(banner(r), 0.5) } : undefined) },
    { what: 'STARTTLS session − tcpserver floor', limit: '≤ + 4 ms', judge: (r) => (starttls(r) ? { text: `${signed(session(r), 2)} ms`, met: atMost(session(r), 4) } : undefined) },
    ratio('sessions/s / tcpserver floor', 0.3, 3, (r) => r.perSecond, floor.perSecond),
    ratio('sessions/s / stunnel (inetd)', 3, 2, (r) => r.perSecond, stunnel.perSecond),
    { what: 'idle private memory per TLS connection', limit: '≤ 48 KiB', judge: (r) => ({ text: `${int(r.idleKiB)} KiB`, met: atMost(r.idleKiB, 48) }) },
    { what: 'growth per connection, slow reader', limit: '≤ 256 KiB', judge: (r) => ({ text: `${int(r.slowGrowthKiB)} KiB`, met: atMost(r.slowGrowthKiB, 256) }) },
    { what: 'growth per connection, stalled reader', limit: '≤ 256 KiB', judge: (r) => ({ text: `${int(r.stalledGrowthKiB)} KiB`, met: atMost(r.stalledGrowthKiB, 256) }) },
    ratio('app→client throughput / stunnel (inetd)', 1.3, 2, (r) => r.toClient, stunnel.toClient),
    ratio('client→app throughput / stunnel (inetd)', 1.3, 2, (r) => r.toApp, stunnel.toApp),
  ];
}

/** The per-connection helper's targets against the Node floor and stunnel in inetd mode. */
export function helperGoals(floor: Row, stunnel: Row): Goal[] {
  const plus = (what: string, limitKiB: number, get: (r: Row) => number, base: number): Goal => ({
    what,
    limit: `≤ + ${limitKiB} KiB`,
    judge: (r) => ({ text: `${signed(get(r) - base, 0)} KiB`, met: atMost(get(r) - base, limitKiB) }),
  });
  return [
    ratioAtMost('banner / Node floor', 1.03, 3, (r) => r.bannerMs, floor.bannerMs),
    { what: 'STARTTLS session − Node floor', limit: '≤ + 4 ms', judge: (r) => ({ text: `${signed(r.sessionMs - floor.sessionMs, 2)} ms`, met: atMost(r.sessionMs - floor.sessionMs, 4) }) },
    ratio('app→client throughput / stunnel (inetd)', 1.1, 2, (r) => r.toClient, stunnel.toClient),
    ratio('client→app throughput / stunnel (inetd)', 1.1, 2, (r) => r.toApp, stunnel.toApp),
    plus('idle private memory − Node floor', 512, (r) => r.idleKiB, floor.idleKiB),
    plus('peak private memory, slow reader − Node floor', 8192, (r) => r.peakKiB, floor.idleKiB),
    plus('peak private memory, stalled reader − Node floor', 8192, (r) => r.stalledPeakKiB, floor.idleKiB),
    ratio('sessions/s / Node floor', 0.95, 3, (r) => r.perSecond, floor.perSecond),
  ];
}

function ratio(what: string, limit: number, digits: number, get: (r: Row) => number, base: number): Goal {
  return { what, limit: `≥ × ${limit}`, judge: (r) => ({ text: `× ${f(get(r) / base, digits)}`, met: atLeast(get(r) / base, limit) }) };
}

function ratioAtMost(what: string, limit: number, digits: number, get: (r: Row) => number, base: number): Goal {
  return { what, limit: `≤ × ${limit}`, judge: (r) => ({ text: `× ${f(get(r) / base, digits)}`, met: atMost(get(r) / base, limit) }) };
}

/** One row against another, figure by figure, for information (a/b; memory as a difference). */
export function versus(a: Row, b: Row): string {
  if (a.missing !== undefined || b.missing !== undefined) return `${a.name} / ${b.name}: ${a.missing ?? b.missing}`;
  return (
    `${a.name} / ${b.name}: first byte × ${f(a.bannerMs / b.bannerMs, 2)}, session × ${f(a.sessionMs / b.sessionMs, 2)}, ` +
    `app→client × ${f(a.toClient / b.toClient, 2)}, client→app × ${f(a.toApp / b.toApp, 2)}, ` +
    `idle/conn × ${f(a.idleKiB / b.idleKiB, 2)}, CPU/session × ${f(a.cpuMs / b.cpuMs, 2)}, sessions/s × ${f(a.perSecond / b.perSecond, 2)}`
  );
}

export function markdown(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(head), rule, ...body.map(line)].join('\n');
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
