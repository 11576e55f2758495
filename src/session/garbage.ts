// Node reads each TLS record for the app into a fresh buffer outside V8's heap, held by a
// handle of a few bytes inside it. No option of a TLS socket made by tls.Server lets us
// read into buffers of our own (`onread` is not passed on), so the relayed records are
// garbage that V8 sees as almost nothing: it collects them only once tens of MiB have
// piled up (its external-memory limit), whatever the pace of the app. A young-generation
// collection for every MiB relayed (a fraction of a millisecond) bounds them to that MiB.
//
// The count is the process's, not a connection's: in a process serving many connections
// the garbage of all of them stays within the one MiB.
//
// The collector is exposed only once bulk data flows, not by a node flag (see
// runtime/collector.ts): where a Node gives no `gc`, there is no collection, and the relay
// runs on with V8's own timing.
import { exposeGc, type Gc } from '../runtime/collector';
import { keepYoungGenerationSmall } from '../runtime/young-generation';

const EVERY = 1024 * 1024;

let gc: Gc | null | undefined;
let since = 0;

function collector(): Gc | null {
  if (gc === undefined) {
    // Bulk data flows from now on: the young generation must not grow with it either.
    keepYoungGenerationSmall();
    gc = exposeGc();
  }
  return gc;
}

/** Counts bytes read into fresh buffers; a minor collection once EVERY bytes have passed. */
export function relayed(bytes: number): void {
  since += bytes;
  if (since >= EVERY) {
    since = 0;
    collector()?.({ type: 'minor' });
  }
}
