// What the spawner accepts from the acceptor, checked before anything is done with it. The
// acceptor reads the network; the spawner is root: a message that is not exactly one of
// these is refused with one line and changes nothing. Pure.
import type { Vars } from '../../contract/reply';
import type { ToSpawner } from '../protocol';

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** What systemd's readiness protocol may carry from the acceptor (see notify/readiness.ts). */
const NOTIFY_NAMES = new Set(['READY', 'RELOADING', 'STOPPING', 'STATUS', 'WATCHDOG', 'MONOTONIC_USEC']);

export type Checked = { ok: true; m: ToSpawner } | { ok: false; why: string };

function isRecordOfStrings(v: unknown): v is Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  return Object.values(v).every((x) => typeof x === 'string');
}

function sameArgv(a: unknown, fixed: readonly string[]): boolean {
  return Array.isArray(a) && a.length === fixed.length && a.every((x, i) => x === fixed[i]);
}

/**
 * The shape of a message, and for a start its argv (the one fixed at start) and its
 * variable names (`allowed`: the fixed list; `ruleNames`: the names the rules file sets for
 * this client, asked only when a name is outside the list).
 */
export function checkRequest(m: unknown, fixedArgv: readonly string[], allowed: ReadonlySet<string>, ruleNames: (env: Record<string, string>) => ReadonlySet<string>): Checked {
  if (typeof m !== 'object' || m === null) return { ok: false, why: 'not a message' };
  const r = m as Record<string, unknown>;
  switch (r.t) {
    case 'start': {
      if (typeof r.id !== 'number' || !Number.isSafeInteger(r.id)) return { ok: false, why: 'start: no connection id' };
      if (!sameArgv(r.argv, fixedArgv)) return { ok: false, why: `start: an argv other than the one given at start (${JSON.stringify(r.argv)})` };
      if (!isRecordOfStrings(r.env)) return { ok: false, why: 'start: the environment is not a list of strings' };
      const env = r.env;
      const outside = Object.keys(env).filter((n) => !allowed.has(n));
      if (outside.length > 0) {
        const fromRules = ruleNames(env);
        const bad = outside.filter((n) => !NAME.test(n) || !fromRules.has(n));
        if (bad.length > 0) return { ok: false, why: `start: variable ${bad.map((n) => JSON.stringify(n)).join(', ')} is not one the acceptor may set` };
      }
      return { ok: true, m: { t: 'start', id: r.id, argv: [...fixedArgv], env } };
    }
    case 'reload':
      return typeof r.trigger === 'string' && r.trigger.length < 64 ? { ok: true, m: { t: 'reload', trigger: r.trigger } } : { ok: false, why: 'reload: no trigger' };
    case 'figures':
      return typeof r.key === 'number' && typeof r.ms === 'number' ? { ok: true, m: { t: 'figures', key: r.key, ms: Math.min(Math.max(r.ms, 0), 10000) } } : { ok: false, why: 'figures: no key' };
    case 'signal':
      return r.signal === 'SIGTERM' || r.signal === 'SIGKILL' ? { ok: true, m: { t: 'signal', signal: r.signal } } : { ok: false, why: `signal: ${JSON.stringify(r.signal)} is not SIGTERM or SIGKILL` };
    case 'dup':
      return typeof r.key === 'number' ? { ok: true, m: { t: 'dup', key: r.key } } : { ok: false, why: 'dup: no key' };
    case 'notify': {
      const a = r.assignments;
      if (!Array.isArray(a) || a.length === 0 || a.length > 8) return { ok: false, why: 'notify: no assignments' };
      for (const x of a) {
        if (typeof x !== 'string' || x.includes('\n') || x.length > 4096) return { ok: false, why: 'notify: an assignment is not one line' };
        const name = x.slice(0, x.indexOf('='));
        if (!NOTIFY_NAMES.has(name)) return { ok: false, why: `notify: ${JSON.stringify(name)} is not a readiness assignment` };
      }
      return { ok: true, m: { t: 'notify', assignments: a as string[] } };
    }
    case 'init':
      return { ok: false, why: 'init, once more' };
    default:
      return { ok: false, why: `unknown request ${JSON.stringify(r.t)}` };
  }
}

/** Implicit: the session's variables from a worker, before they go into an app's environment. */
export function checkSessionVars(vars: unknown): Vars | string {
  if (!Array.isArray(vars)) return 'the variables are not a list';
  for (const v of vars) {
    if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== 'string' || typeof v[1] !== 'string') return 'a variable is not a name and a value';
    if (!/^SSL_[A-Z0-9_]+$/.test(v[0])) return `${JSON.stringify(v[0])} is not a session variable`;
  }
  return vars as Vars;
}
