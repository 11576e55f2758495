// Each chunk read from a socket is a fresh 64 KiB buffer outside V8's heap, held by a
// handle of a few bytes inside it: V8 sees little garbage and collects late, so tens of
// MiB of relayed chunks wait to be freed. A young-generation collection every MiB (a
// fraction of a millisecond) bounds that.
//
// The collector is exposed only once bulk data flows, not by a node flag: any V8 flag on
// the command line makes V8 refuse Node's code cache for its built-in modules, and
// loading child_process, crypto and tls without it costs several milliseconds per
// connection. (Changing flags later only affects what is compiled afterwards.)
const EVERY = 1024 * 1024;

type Gc = (options: { type: 'minor' | 'major' }) => void;

let gc: Gc | null | undefined;

function collector(): Gc | null {
  if (gc === undefined) {
    try {
      /* eslint-disable @typescript-eslint/no-require-imports */
      (require('node:v8') as typeof import('node:v8')).setFlagsFromString('--expose-gc');
      gc = (require('node:vm') as typeof import('node:vm')).runInNewContext('gc') as Gc;
      /* eslint-enable @typescript-eslint/no-require-imports */
    } catch {
      gc = null;
    }
  }
  return gc;
}

/** Counts relayed bytes; a minor collection once EVERY bytes have passed. */
export function byteCollector(): (bytes: number) => void {
  let since = 0;
  return (bytes) => {
    since += bytes;
    if (since >= EVERY) {
      since = 0;
      collector()?.({ type: 'minor' });
    }
  };
}
