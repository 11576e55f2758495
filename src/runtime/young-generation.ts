// V8 doubles its young generation (the semi-spaces) after a scavenge that finds much alive:
// a burst of handshakes, or a fast relay, and it stays grown for the life of the process
// (up to 32 MiB on Node 20, 64 MiB on Node 24). In a resident server that is most of what
// a few hundred idle connections seem to cost; in the helper, most of its peak with a fast
// reader. A young generation that never grows costs only more frequent scavenges, each as
// cheap (they copy what is alive, not the garbage).
//
// Paid for by memory: idle KiB per server connection, with the app reader's shared buffers,
// 121 -> 87 on Node 20 and 175 -> 131 on Node 24 (bench/RESULTS.md). V8's flag, set through
// `v8.setFlagsFromString`: test/server-memory.test.ts fails when a Node release stops
// honouring it. Node 20 and 24 keep the size it has when the flag is set; Node 26 (V8 14)
// doubles it once more, to 2 MiB at least, and keeps that (32 MiB without the flag).

/** For a Node process we start ourselves (the server's TLS workers): Node's documented option. */
export const SMALL_YOUNG_GENERATION = ['--max-semi-space-size=1'];

let kept: boolean | undefined;

/**
 * For a process started by its `#!` line: the size limit is read only when V8 sets up its
 * heap, but the growth factor when it grows. Set once everything is loaded, since a flag
 * changed before a built-in module loads makes V8 refuse that module's code cache. Fallback,
 * where this Node refuses the flag: none at run time (V8 sizes its young generation itself,
 * the figures above); false then.
 */
export function keepYoungGenerationSmall(): boolean {
  if (kept !== undefined) return kept;
  kept = false;
  try {
    // Loaded here, not at start: the helper starts once per connection and needs it only later.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    (require('node:v8') as typeof import('node:v8')).setFlagsFromString('--semi-space-growth-factor=1');
    kept = true;
  } catch {
    // a Node without the flag: V8 sizes its young generation itself, as before
  }
  return kept;
}
