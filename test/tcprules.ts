// Rules files as an operator makes them: Debian's tcprules, from rule lines.
import { spawnSync } from 'node:child_process';

/** tcprules FILE FILE.tmp with these lines: it writes the temporary file and renames it over FILE. */
export function tcprules(file: string, lines: string[]): void {
  const r = spawnSync('tcprules', [file, `${file}.tmp`], { input: lines.join('\n') + '\n' });
  if (r.status !== 0) throw new Error(`tcprules: ${r.stderr}`);
}
