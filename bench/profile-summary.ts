// A V8 CPU profile (.cpuprofile, as node --cpu-prof writes it) summed up: self time per
// function, each put in one of four kinds. Pure.

export type Kind = 'ours' | "Node's JS" | 'V8/GC' | 'OpenSSL/native' | 'JS, unnamed';

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
      // Node's modules by their whole name (node:internal/tls/wrap), our scripts by their file's.
      const file = f.url.startsWith('node:') ? f.url : f.url.replace(/^file:\/\//, '').replace(/^.*\//, '');
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
  const out: Record<Kind, number> = { ours: 0, "Node's JS": 0, 'V8/GC': 0, 'OpenSSL/native': 0, 'JS, unnamed': 0 };
  for (const e of entries) out[e.kind] += total > 0 ? (100 * e.selfUs) / total : 0;
  return out;
}

export interface PerfSample {
  comm: string;
  pid: number;
  sym: string;
  dso: string;
}

/** One line of `perf script -F comm,pid,ip,sym,dso -G`: "node 42 7f0012 SSL_read (/usr/bin/node)". Pure. */
export function parsePerfSample(line: string): PerfSample | undefined {
  const m = /^\s*(.*?)\s+(\d+)\s+[0-9a-f]+\s+(.*?)\s*\(([^()]*)\)\s*$/.exec(line);
  if (m === null) return undefined;
  return { comm: m[1]!, pid: Number(m[2]), sym: m[3]! === '' ? '[unknown]' : m[3]!, dso: m[4]!.replace(/^.*\//, '') };
}

/** Samples counted per symbol and file, most first (selfUs: the count). Pure. */
export function perfEntries(samples: readonly PerfSample[]): Entry[] {
  const by = new Map<string, Entry>();
  for (const x of samples) {
    // JS frames name their script by its whole path: the file name is enough.
    const name = x.sym.replace(/(file:\/\/)?\/\S*\//g, '');
    const file = /^perf-\d+\.map$/.test(x.dso) ? 'JIT' : x.dso;
    const key = `${name}\0${file}`;
    const e = by.get(key) ?? { name, file, kind: perfKindOf(x.dso, x.sym), selfUs: 0 };
    e.selfUs++;
    by.set(key, e);
  }
  return [...by.values()].sort((a, b) => b.selfUs - a.selfUs);
}

const OPENSSL = /^_*(SSL|ssl\d*|tls\d*|dtls|EVP|evp|BN|bn|RSA|rsa|rsaz|ossl|OSSL|OPENSSL|CRYPTO|EC|ec|ecp|x25519|ERR|OBJ|ASN1|asn1|X509|x509|PEM|BIO|bio|HMAC|DH|lh|sk|md)_|^_*(sha\d+|aesni|gcm|ChaCha20|Poly1305|mul_mont|x86_64_AES)/;
const GC = /(Heap|Scaveng|MarkCompact|Marking|Marker|Sweep|Evacuat|GarbageCollect|Mark|GCTracer|MemoryAllocator|PagedSpace|NewSpace|Semi|LocalHeap|Compactor|Remembered|SlotSet|Worklist)/;

/**
 * Where a perf sample goes (perf --no-children: the frame it was taken in). JS frames come from /tmp/perf-PID.map (node
 * --perf-basic-prof): Node's built-in modules, or ours (any other script); V8's builtins,
 * bytecode handlers and stubs, and V8's C++ (the collector most of all) are V8/GC; OpenSSL
 * (inside the node executable, or libssl/libcrypto), Node's C++, libuv, libc and the kernel
 * are OpenSSL/native.
 */
export function perfKindOf(dso: string, sym: string): Kind {
  if (/^perf-\d+\.map$/.test(dso) || dso.startsWith('[JIT]')) {
    if (/^(Builtin|BytecodeHandler|Stub|RegExp|Handler):/.test(sym)) return 'V8/GC';
    // Code V8 made without naming it in the map (the launcher's, mostly: code from its cache).
    if (!sym.startsWith('JS:') && !sym.startsWith('LazyCompile:') && !sym.startsWith('Function:')) return 'JS, unnamed';
    if (/ node:| internal\//.test(sym)) return "Node's JS";
    return 'ours';
  }
  if (dso.startsWith('libssl') || dso.startsWith('libcrypto')) return 'OpenSSL/native';
  if (sym.startsWith('v8::') || sym.startsWith('Builtins_')) return 'V8/GC';
  return 'OpenSSL/native';
}

/** Of the native part, which is OpenSSL and which the kernel (for the summary line). Pure. */
export function nativePart(dso: string, sym: string): 'OpenSSL' | 'kernel' | 'other' {
  if (dso.startsWith('[kernel')) return 'kernel';
  if (dso.startsWith('libssl') || dso.startsWith('libcrypto') || OPENSSL.test(sym)) return 'OpenSSL';
  return 'other';
}

/** Whether a V8 frame is the collector's (for the summary line). Pure. */
export const isGc = (sym: string): boolean => sym.startsWith('v8::') && GC.test(sym);
