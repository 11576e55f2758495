// tcpserver's access rules (tcprules(1)) for one client address, looked up as tcpserver does.
// Pure: the rules come as a Cdb.
//
// Keys tried, the first found wins: the address itself; then shorter and shorter prefixes
// of it ending with '.' (IPv4: 1.2.3., 1.2., 1.) or, for IPv6, with ':' (as Debian's
// ucspi-tcp-ipv6 does: 2001:db8::, 2001:db8:, 2001:); then the empty key, the default.
// tcpserver also tries `info@ip`, `=host` and `=.domain` keys, which need ident and DNS
// lookups: the server never makes them, so such rules never apply.
//
// A rule's data is a list of NUL-terminated instructions: `D` deny (tcpserver looks only at
// the first byte); `+NAME=value` set NAME for the app. `allow` writes nothing. Others are
// skipped, as tcpserver skips them. tcprules has no instruction that removes a variable.
import type { Cdb } from './cdb';

export interface Rule {
  /** The key that matched ('' the default), or undefined when no rule did. */
  key: string | undefined;
  deny: boolean;
  /** Settings for the app's environment, in the rule's order (a later one wins). */
  env: Array<[string, string]>;
}

/** The keys tcpserver tries for an address, in its order. */
export function ruleKeys(ip: string): string[] {
  const keys = [ip];
  const v6 = ip.includes(':');
  for (let len = ip.length - 1; len > 0; len--) {
    const c = ip[len - 1];
    if (c === '.' || (v6 && c === ':')) keys.push(ip.slice(0, len));
  }
  keys.push('');
  return keys;
}

/** A rule's instructions, as tcpserver's found() reads them. */
export function parseRuleData(data: Buffer): { deny: boolean; env: Array<[string, string]> } {
  let deny = false;
  const env: Array<[string, string]> = [];
  let start = 0;
  for (let end = data.indexOf(0, start); end !== -1; start = end + 1, end = data.indexOf(0, start)) {
    // UTF-8, as the rules file was most likely written and as the app's environment is passed on.
    const item = data.toString('utf8', start, end);
    if (item.startsWith('D')) deny = true;
    else if (item.startsWith('+')) {
      const eq = item.indexOf('=');
      // tcpserver skips `+NAME` without '='; a name of nothing cannot be set in an environment.
      if (eq > 1) env.push([item.slice(1, eq), item.slice(eq + 1)]);
    }
  }
  // A denied connection starts no app: nothing to set (tcprulescheck stops at the D).
  return deny ? { deny, env: [] } : { deny, env };
}

export function findRule(cdb: Cdb, ip: string): Rule {
  for (const key of ruleKeys(ip)) {
    const data = cdb.get(key);
    if (data !== undefined) return { key, ...parseRuleData(data) };
  }
  return { key: undefined, deny: false, env: [] };
}
