// How much each program logs: -q, the default, -v. Pure.

/** 0: fatal errors only (-q); 1: failures and refusals too; 2: every event (-v). */
export type Verbosity = 0 | 1 | 2;

/** From the parsed command line: -q wins over -v. */
export function verbosityOf(flags: Readonly<Record<string, unknown>>): Verbosity {
  return flags.quiet ? 0 : flags.verbose ? 2 : 1;
}
