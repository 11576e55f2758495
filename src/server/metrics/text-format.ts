// Prometheus' text exposition format (version 0.0.4), written by hand: a few families of
// counters and gauges need no client library, its registry or its default collectors. Pure.

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface Sample {
  labels?: Readonly<Record<string, string>>;
  value: number;
}

export interface Family {
  /** With its unit and, for a counter, `_total`: ucspi_tls_..._bytes_total. */
  name: string;
  type: 'counter' | 'gauge';
  help: string;
  samples: readonly Sample[];
}

/** HELP text: backslash and newline escaped. */
function escapeHelp(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** A label value: backslash, double quote and newline escaped. */
export function escapeLabel(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function number(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function labels(l: Readonly<Record<string, string>> | undefined): string {
  const pairs = Object.entries(l ?? {});
  return pairs.length === 0 ? '' : `{${pairs.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
}

/** HELP and TYPE, then each sample, for every family in turn; a family without samples is left out. */
export function render(families: readonly Family[]): string {
  const out: string[] = [];
  for (const f of families) {
    if (f.samples.length === 0) continue;
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) out.push(`${f.name}${labels(s.labels)} ${number(s.value)}`);
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}
