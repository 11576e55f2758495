// Who may connect, decided at accept before any app is started: the -x rules, and the -C
// limit of connections at once from one address (s6-tcpserver's -C), which a rule may set
// for its addresses with TCPCONNMAX (as s6-connlimit reads it; 0 = no limit).
import type { RulesFile } from './rules-file';
import type { Rule } from './rule-lookup';

export type Admission =
  | { ok: true; env: Record<string, string>; release: () => void }
  | { ok: false; line: string; reason: 'rules' | 'per-address' };

/** Connections now, per client address. */
export class AddressCounts {
  private readonly n = new Map<string, number>();
  count(ip: string): number {
    return this.n.get(ip) ?? 0;
  }
  add(ip: string): void {
    this.n.set(ip, this.count(ip) + 1);
  }
  remove(ip: string): void {
    const left = this.count(ip) - 1;
    if (left > 0) this.n.set(ip, left);
    else this.n.delete(ip);
  }
  /** Addresses with connections now. */
  size(): number {
    return this.n.size;
  }
}

/** The limit for one address: the rule's TCPCONNMAX (the last one set), else -C; undefined = none. */
export function addressLimit(perAddress: number | undefined, env: ReadonlyArray<readonly [string, string]>): { limit: number | undefined; from: string } | { invalid: string } {
  const set = env.filter(([name]) => name === 'TCPCONNMAX').pop();
  if (set === undefined) return { limit: perAddress, from: `-C ${perAddress}` };
  if (!/^\d{1,6}$/.test(set[1])) return { invalid: set[1] };
  const n = Number(set[1]);
  return { limit: n === 0 ? undefined : n, from: `TCPCONNMAX=${n}` };
}

export function ruleName(key: string): string {
  return key === '' ? 'the default rule' : `rule ${key}`;
}

export class Access {
  private readonly counts = new AddressCounts();

  constructor(
    private readonly rules: RulesFile | undefined,
    private readonly perAddress: number | undefined,
    /** Lines about a connection that is let in all the same. */
    private readonly warn: (line: string) => void,
  ) {}

  /** `ip` as the app's TCPREMOTEIP has it; `who` names the connection in a log line. */
  admit(ip: string, who: string): Admission {
    let rule: Rule = { key: undefined, deny: false, env: [] };
    if (this.rules !== undefined) {
      const found = this.rules.lookup(ip);
      if (!found.ok) return { ok: false, line: `deny: ${who}: ${found.reason}`, reason: 'rules' };
      rule = found.rule;
    }
    if (rule.deny) return { ok: false, line: `deny: ${who} by ${ruleName(rule.key!)}`, reason: 'rules' };

    let limited = addressLimit(this.perAddress, rule.env);
    if ('invalid' in limited) {
      this.warn(`${who}: TCPCONNMAX=${limited.invalid} of ${ruleName(rule.key!)} is not a number: ignored`);
      limited = { limit: this.perAddress, from: `-C ${this.perAddress}` };
    }
    const now = this.counts.count(ip);
    if (limited.limit !== undefined && now >= limited.limit) {
      return { ok: false, line: `deny: ${who}: ${now} connection${now === 1 ? '' : 's'} from ${ip} already (${limited.from})`, reason: 'per-address' };
    }

    const env: Record<string, string> = {};
    // s6-tcpserver's count, this connection included; only where a limit applies, where it means something.
    if (limited.limit !== undefined) env.TCPCONNNUM = String(now + 1);
    // After the TCP variables, as tcpserver sets them: a rule may override any of them.
    for (const [name, value] of rule.env) env[name] = value;
    this.counts.add(ip);
    let released = false;
    return {
      ok: true,
      env,
      release: () => {
        if (released) return;
        released = true;
        this.counts.remove(ip);
      },
    };
  }
}
