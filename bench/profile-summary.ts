// A V8 CPU profile (.cpuprofile, as node --cpu-prof writes it) summed up: self time per
// function, each put in one of four kinds. Pure.

export type Kind = 'ours' | "Node's JS" | 'V8/GC' | 'OpenSSL/native';

export interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

export interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame }[];
  samples: number[];
  timeDeltas: number[];
}

export interface Entry {
  name: string;
  file: string;
  kind: Kind;
  /** self time, µs */
  selfUs: number;
}

/**
 * Where a frame's time goes. Ours: our bundles (any script not Node's). Node's JS: its
 * built-in modules. V8/GC: the collector, and V8's own frames. The rest has no script: a
 * native function called from JS (Node's C++ bindings, OpenSSL under them), or "(program)",
 * native code with no JS below it (libuv's callbacks, TLSWrap reading and writing, OpenSSL).
 */
export function kindOf(f: CallFrame): Kind {
  if (f.functionName === '(garbage collector)') return 'V8/GC';
  if (f.url.startsWith('node:') || f.url.startsWith('internal/')) return "Node's JS";
  // Any other script is ours (our bundles, and minimist in them).
  return f.url === '' ? 'OpenSSL/native' : 'ours';
}

/** Self time per function (name and file), most first; "(idle)" left out. */
export function selfTimes(profiles: readonly CpuProfile[]): Entry[] {
  const by = new Map<string, Entry>();
  for (const p of profiles) {
    const frame = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
    p.samples.forEach((id, i) => {
      const f = frame.get(id);
      if (f === undefined || f.functionName === '(idle)') return;
      const file = f.url.replace(/^file:\/\//, '').replace(/^.*\//, '');
      const key = `${f.functionName}\0${file}`;
      const e = by.get(key) ?? { name: f.functionName || '(anonymous)', file, kind: kindOf(f), selfUs: 0 };
      // A sample's time is the delta to the next one; the first sample's own delta stands in for the last.
      e.selfUs += Math.max(0, p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0);
      by.set(key, e);
    });
  }
  return [...by.values()].sort((a, b) => b.selfUs - a.selfUs);
}

/** Each kind's share of all the self time, %. */
export function shares(entries: readonly Entry[]): Record<Kind, number> {
  const total = entries.reduce((s, e) => s + e.selfUs, 0);
  const out: Record<Kind, number> = { ours: 0, "Node's JS": 0, 'V8/GC': 0, 'OpenSSL/native': 0 };
  for (const e of entries) out[e.kind] += total > 0 ? (100 * e.selfUs) / total : 0;
  return out;
}
