// The benchmark's table and its verdicts (pure): figures in, text out.

export interface Row {
  name: string;
  /** ms from connect to the app's first byte (through TLS for the implicit rows) */
  bannerMs: number;
  /** ms for a whole session */
  sessionMs: number;
  /** MiB/s, app to client and client to app */
  toClient: number;
  toApp: number;
  /** KiB of private memory of the process in front of the app: idle, and peak while 1 GiB flows slowly */
  idleKiB: number;
  peakKiB: number;
  /** sessions per second with 16 clients at once */
  perSecond: number;
}

export interface Target {
  what: string;
  value: string;
  limit: string;
  met: boolean;
}

const f = (n: number, digits = 1): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const int = (n: number): string => (Number.isFinite(n) ? String(Math.round(n)) : 'n/a');

export function table(rows: readonly Row[]): string {
  const head = ['', 'banner ms', 'session ms', 'app→client MiB/s', 'client→app MiB/s', 'idle KiB', 'peak KiB (slow 1 GiB)', 'sessions/s (16 at once)'];
  const body = rows.map((r) => [r.name, f(r.bannerMs, 2), f(r.sessionMs, 2), int(r.toClient), int(r.toApp), int(r.idleKiB), int(r.peakKiB), f(r.perSecond)]);
  return markdown(head, body);
}

export function targetTable(targets: readonly Target[]): string {
  return markdown(
    ['target', 'measured', 'limit', ''],
    targets.map((t) => [t.what, t.value, t.limit, t.met ? 'met' : 'NOT met']),
  );
}

/** The issue's targets for the STARTTLS helper against the Node floor and stunnel. */
export function targets(helper: Row, floor: Row, stunnel: Row): Target[] {
  const ratio = (a: number, b: number): number => a / b;
  const banner = ratio(helper.bannerMs, floor.bannerMs);
  const session = helper.sessionMs - floor.sessionMs;
  const out = ratio(helper.toClient, stunnel.toClient);
  const inb = ratio(helper.toApp, stunnel.toApp);
  const idle = helper.idleKiB - floor.idleKiB;
  const peak = helper.peakKiB - floor.peakKiB;
  const rate = ratio(helper.perSecond, floor.perSecond);
  return [
    { what: 'banner latency / Node floor', value: `× ${f(banner, 3)}`, limit: '≤ × 1.03', met: banner <= 1.03 },
    { what: 'STARTTLS session − Node floor', value: `+ ${f(session, 2)} ms`, limit: '≤ + 4 ms', met: session <= 4 },
    { what: 'app→client throughput / stunnel', value: `× ${f(out, 2)}`, limit: '≥ × 1.1', met: out >= 1.1 },
    { what: 'client→app throughput / stunnel', value: `× ${f(inb, 2)}`, limit: '≥ × 1.1', met: inb >= 1.1 },
    { what: 'idle private memory − Node floor', value: `+ ${int(idle)} KiB`, limit: '≤ + 512 KiB', met: idle <= 512 },
    { what: 'peak private memory (slow 1 GiB) − Node floor', value: `+ ${int(peak)} KiB`, limit: '≤ + 8192 KiB', met: peak <= 8192 },
    { what: 'sessions/s / Node floor', value: `× ${f(rate, 3)}`, limit: '≥ × 0.95', met: rate >= 0.95 },
  ];
}

/** The implicit mode against stunnel, for information: both do the handshake first. */
export function implicitRatios(implicit: Row, stunnel: Row): string {
  return (
    `--implicit / stunnel: first byte × ${f(implicit.bannerMs / stunnel.bannerMs, 2)}, ` +
    `session × ${f(implicit.sessionMs / stunnel.sessionMs, 2)}, ` +
    `app→client × ${f(implicit.toClient / stunnel.toClient, 2)}, client→app × ${f(implicit.toApp / stunnel.toApp, 2)}, ` +
    `sessions/s × ${f(implicit.perSecond / stunnel.perSecond, 2)}`
  );
}

function markdown(head: string[], body: string[][]): string {
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
