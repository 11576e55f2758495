// --watch: reload when a file the TLS policy names changes. Renewals replace files by
// rename (certbot: new files in archive/, then the links in live/ renamed over the old
// ones), often several one after the other: the folders are watched, not the files (a
// watch on a file follows the replaced inode), and the reload waits until the folders have
// been quiet for a while. Each file's identity and times are compared first, so a change
// next to our files (a log, another site's certificate) reloads nothing.
import { lstatSync, readdirSync, realpathSync, statSync, watch, type FSWatcher } from 'node:fs';
import { dirname, join } from 'node:path';
import { errorWords } from '../../messages';
import type { TlsConfig } from '../../tls/config';

/** How long the folders must be quiet before the reload: a renewal writes its files in turn. */
export const SETTLE_MS = 1000;
/** A folder that is never quiet (a log beside the files) delays the check no longer than this many settles. */
const MOST_SETTLES = 10;

/** Every file and folder the policy reads, as loadCredentials reads them. */
export function policyFiles(tls: TlsConfig): string[] {
  const out = new Set<string>();
  for (const id of tls.identities) {
    for (const p of id.pairs) {
      out.add(p.certFile);
      out.add(p.keyFile);
      if (p.ocspFile !== undefined) out.add(p.ocspFile);
    }
  }
  if (tls.clientCert !== 'none') {
    for (const f of [tls.caFile, tls.caDir, tls.clientCaFile]) if (f !== undefined) out.add(f);
  }
  for (const f of [tls.dhFile, tls.ticketKeyFile]) if (f !== undefined) out.add(f);
  return [...out];
}

/**
 * The folders whose entries name the files: each file's own, and the one its links lead
 * to (live/ and archive/ for certbot); a folder the policy names (CADIR) itself.
 * `real` resolves links, undefined when it cannot.
 */
export function foldersOf(files: readonly string[], real: (p: string) => string | undefined, isDir: (p: string) => boolean): string[] {
  const out = new Set<string>();
  for (const f of files) {
    if (isDir(f)) out.add(f);
    out.add(dirname(f));
    const r = real(f);
    if (r !== undefined) {
      if (isDir(r)) out.add(r);
      out.add(dirname(r));
    }
  }
  return [...out].sort();
}

/** What tells a replaced, rewritten or relinked file from the one read before. */
export function fingerprint(files: readonly string[]): string {
  const one = (p: string): string => {
    try {
      const l = lstatSync(p);
      const s = statSync(p);
      const own = `${l.ino}:${l.mtimeMs}:${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
      if (!s.isDirectory()) return own;
      return `${own}[${readdirSync(p).sort().map((n) => one(join(p, n))).join(',')}]`;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code ?? 'error';
    }
  };
  return files.map(one).join('\n');
}

function realOrUndefined(p: string): string | undefined {
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

export class FileWatcher {
  private readonly watchers = new Map<string, FSWatcher>();
  private timer: NodeJS.Timeout | undefined;
  /** When the first change not yet checked came. */
  private since: number | undefined;
  private seen: string;

  constructor(
    private readonly files: readonly string[],
    /** Called once the files have changed and settled. */
    private readonly changed: () => void,
    private readonly warn: (line: string) => void,
    private readonly settleMs = SETTLE_MS,
  ) {
    this.seen = fingerprint(files);
  }

  start(): void {
    this.rewatch();
  }

  close(): void {
    clearTimeout(this.timer);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  /** Watch the folders the files are in now: a renewal may have linked them elsewhere. */
  private rewatch(): void {
    const want = new Set(foldersOf(this.files, realOrUndefined, isDirectory));
    for (const [dir, w] of this.watchers) {
      if (want.has(dir)) continue;
      w.close();
      this.watchers.delete(dir);
    }
    for (const dir of want) {
      if (this.watchers.has(dir)) continue;
      try {
        // Not persistent: the listeners keep the launcher running, not this.
        const w = watch(dir, { persistent: false }, () => this.poke());
        w.on('error', (e) => {
          this.warn(`--watch: ${dir}: ${errorWords(e)}; watching it again`);
          w.close();
          this.watchers.delete(dir);
          // Watched again once things settle (and a reload then if a file changed meanwhile).
          this.poke();
        });
        this.watchers.set(dir, w);
      } catch (e) {
        this.warn(`--watch: cannot watch ${dir}: ${errorWords(e)}`);
      }
    }
  }

  private poke(): void {
    const now = Date.now();
    this.since ??= now;
    clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.settleMs, this.since + MOST_SETTLES * this.settleMs - now));
    this.timer = setTimeout(() => this.settled(), wait);
    this.timer.unref();
  }

  private settled(): void {
    this.timer = undefined;
    this.since = undefined;
    const now = fingerprint(this.files);
    this.rewatch();
    if (now === this.seen) return;
    // Even a reload that fails: the next change (the rest of a half-written set) tries again.
    this.seen = now;
    this.changed();
  }
}
