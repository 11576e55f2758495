// V8's collector, exposed at run time (`v8.setFlagsFromString('--expose-gc')`, then `gc` from a
// new context through `vm`): both are V8's, not Node's API. Not a node flag: `--expose-gc` on
// the command line, like any V8 flag that changes what V8 compiles, makes V8 refuse Node's
// code cache for its built-in modules (9 ms more per helper start on Node 24, bench/RESULTS.md).
// Paid for by memory: a young-generation collection every MiB relayed holds the helper's peak
// while a slow client reads at 13 MiB instead of 45 MiB (bench/RESULTS.md).
// test/internals.test.ts fails when a Node release changes it.

export type Gc = (options: { type: 'minor' | 'major' }) => void;

/**
 * V8's `gc` function, or null where this Node refuses the flag or gives none: then nothing is
 * collected on demand and V8 collects on its own timing (the peak above). Changes a V8 flag:
 * call it once what the process needs is loaded (flags changed earlier make V8 refuse the code
 * cache of built-in modules loaded afterwards).
 */
export function exposeGc(): Gc | null {
  try {
    /* eslint-disable @typescript-eslint/no-require-imports */
    (require('node:v8') as typeof import('node:v8')).setFlagsFromString('--expose-gc');
    const found: unknown = (require('node:vm') as typeof import('node:vm')).runInNewContext('typeof gc === "function" ? gc : null');
    /* eslint-enable @typescript-eslint/no-require-imports */
    return typeof found === 'function' ? (found as Gc) : null;
  } catch {
    return null;
  }
}
