// Where a command would be found, as execvp(3) looks: checked before the implicit mode's
// shell runs it, so a missing app gets the helper's own log line.
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';

/** undefined when found; otherwise the error code execvp would give. */
export function commandMissing(name: string, path: string | undefined): 'ENOENT' | 'EACCES' | undefined {
  const candidates = name.includes('/') ? [name] : (path ?? '/usr/local/bin:/usr/bin:/bin').split(':').map((d) => join(d || '.', name));
  let denied = false;
  for (const c of candidates) {
    try {
      if (!statSync(c).isFile()) continue;
      accessSync(c, constants.X_OK);
      return undefined;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EACCES') denied = true;
    }
  }
  return denied ? 'EACCES' : 'ENOENT';
}
