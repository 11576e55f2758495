// The command-line flags every program shares (-v -q -t -e -h -V), the parse every program's
// own flags are added to, and the outcome of a parse. Pure.
import minimist from 'minimist';
import { EXIT_CONFIG, EXIT_USAGE } from './exit-codes';

/** What each program's own flags add to the shared ones. */
export interface FlagSpec {
  boolean?: string[];
  string?: string[];
  alias?: Record<string, string>;
}

/** The flags of every program (`-l` is the program's own: a log file to two, a name to the server). */
export const SHARED_FLAGS: Required<FlagSpec> = {
  boolean: ['verbose', 'quiet', 'keep-env', 'help', 'version'],
  string: ['timeout'],
  alias: { v: 'verbose', q: 'quiet', t: 'timeout', e: 'keep-env', h: 'help', V: 'version' },
};

/**
 * The command line up to the first word that is not an option (the app, or the host): the
 * flags, or the first unknown option. `more` are the program's own flags.
 */
export function parseFlags(argv: readonly string[], ...more: FlagSpec[]): minimist.ParsedArgs | { unknown: string } {
  let unknown: string | undefined;
  const specs = [SHARED_FLAGS, ...more];
  const a = minimist([...argv], {
    boolean: specs.flatMap((s) => s.boolean ?? []),
    string: specs.flatMap((s) => s.string ?? []),
    alias: Object.assign({}, ...specs.map((s) => s.alias ?? {})) as Record<string, string>,
    stopEarly: true,
    unknown: (arg) => {
      // With stopEarly, the first non-option word is the app (or the host): accept it.
      if (unknown === undefined && arg.startsWith('-') && arg !== '-') unknown = arg;
      return !arg.startsWith('-');
    },
  });
  return unknown !== undefined ? { unknown } : a;
}

/** The first of `names` given more than once, as its usage error. */
export function repeated(a: Readonly<Record<string, unknown>>, names: readonly string[]): string | undefined {
  const name = names.find((n) => Array.isArray(a[n]));
  return name === undefined ? undefined : `--${name} given more than once`;
}

export const DEFAULT_TIMEOUT_S = 30;

/** `-t S` in milliseconds (30 s when absent), or the usage error. */
export function handshakeTimeout(value: unknown): number | { usage: string } {
  if (value === undefined) return DEFAULT_TIMEOUT_S * 1000;
  const t = String(value);
  if (!/^\d+(\.\d+)?$/.test(t)) return { usage: `--timeout needs a number of seconds, not '${t}'` };
  return Math.round(Number(t) * 1000);
}

/** What a program makes of its command line and environment. */
export type Parsed<C> =
  | { kind: 'run'; config: C }
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'error'; status: number; message: string };

export function usageError(message: string): { kind: 'error'; status: number; message: string } {
  return { kind: 'error', status: EXIT_USAGE, message };
}

export function configError(message: string): { kind: 'error'; status: number; message: string } {
  return { kind: 'error', status: EXIT_CONFIG, message };
}
