// A process's own memory for the live figures: resident, and private (what it alone holds,
// as smaps_rollup sums it; Linux). Read only when asked (SIGUSR1, exit).
import { readFileSync } from 'node:fs';

export function ownMemory(): { rss: number; private?: number } {
  const rss = process.memoryUsage.rss();
  try {
    const text = readFileSync('/proc/self/smaps_rollup', 'latin1');
    return { rss, private: privateBytes(text) };
  } catch {
    return { rss };
  }
}

/** Private_Clean + Private_Dirty of a smaps_rollup text, in bytes. Pure. */
export function privateBytes(smapsRollup: string): number {
  let kb = 0;
  for (const m of smapsRollup.matchAll(/^Private_(?:Clean|Dirty):\s+(\d+) kB$/gm)) kb += Number(m[1]);
  return kb * 1024;
}
