// The rules file of -x, as tcpserver uses it: consulted at each connection, so that an
// operator's tcprules (which writes a new file and renames it into place) takes effect at
// the next connection. A stat per connection tells whether the file changed; it is read and
// checked again only then.
import { readFileSync, statSync } from 'node:fs';
import { errnoOf, errorWords } from '../../messages';
import { Cdb, CdbError } from './cdb';
import { findRule, type Rule } from './rule-lookup';

export type Lookup = { ok: true; rule: Rule } | { ok: false; reason: string };

/** What the file held when it was last read: rules, nothing (missing, with -X), or why it is unusable. */
type State = { cdb: Cdb } | { missing: true } | { failure: string };

const NO_RULE: Rule = { key: undefined, deny: false, env: [] };

export class RulesFile {
  private stamp: string | undefined;
  private state: State = { failure: 'not read yet' };

  /** `optional`: -X, a missing file allows every connection. */
  constructor(
    readonly path: string,
    private readonly optional: boolean,
  ) {}

  /** At start: why the file cannot serve, or undefined when it can. */
  check(): string | undefined {
    this.refresh();
    return 'failure' in this.state ? this.state.failure : undefined;
  }

  /** The rule for a client address, or why none can be told (the connection is then refused). */
  lookup(ip: string): Lookup {
    this.refresh();
    if ('failure' in this.state) return { ok: false, reason: this.state.failure };
    if ('missing' in this.state) return { ok: true, rule: NO_RULE };
    return { ok: true, rule: findRule(this.state.cdb, ip) };
  }

  private refresh(): void {
    let stamp: string;
    let isFile: boolean;
    try {
      const st = statSync(this.path, { bigint: true });
      isFile = st.isFile();
      // A rename brings a new inode; an edit in place a new size or time.
      stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    } catch (e) {
      this.stamp = undefined;
      this.state = this.optional && errnoOf(e) === 'ENOENT' ? { missing: true } : { failure: `rules ${this.path}: ${errorWords(e)}` };
      return;
    }
    if (stamp === this.stamp) return;
    this.stamp = stamp;
    if (!isFile) {
      // A device or a folder given by mistake: reading /dev/zero would never end.
      this.state = { failure: `rules ${this.path}: not a regular file` };
      return;
    }
    try {
      this.state = { cdb: Cdb.from(readFileSync(this.path)) };
    } catch (e) {
      if (e instanceof CdbError) this.state = { failure: `rules ${this.path}: not a cdb file: ${e.message}` };
      else {
        // Unreadable now (permissions, a race with a rename): read again at the next connection.
        this.stamp = undefined;
        this.state = { failure: `rules ${this.path}: ${errorWords(e)}` };
      }
    }
  }
}
