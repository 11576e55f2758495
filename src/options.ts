// Command line and environment -> configuration. Pure: no I/O, so every rule is
// tested directly.
import minimist from 'minimist';

export const PROGRAM = 'ucspi-tls-wrap';

/** Exit statuses of the helper itself (the app's status is passed on otherwise). */
export const EXIT_USAGE = 100;
export const EXIT_CONFIG = 111;

/** Variables the helper reads; they are removed from the app's environment. */
export const HELPER_ENV = ['CERTFILE', 'KEYFILE', 'CERTCHAINFILE', 'CIPHERS', 'DHFILE'] as const;

export type Verbosity = 0 | 1 | 2;

export interface Config {
  app: string[];
  verbosity: Verbosity;
  /** 0 means no limit. */
  handshakeTimeoutMs: number;
  logFile?: string;
  keepEnv: boolean;
  certFile: string;
  keyFile: string;
  chainFile?: string;
  ciphers?: string;
  dhFile?: string;
}

export type Parsed =
  | { kind: 'run'; config: Config }
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'error'; status: number; message: string };

export const USAGE = `usage: ${PROGRAM} [-vq] [-t seconds] [-l logfile] [-e] app [arg ...]
  -v, --verbose          log every event, not only failures
  -q, --quiet            log nothing
  -t, --timeout SECONDS  handshake time limit (default 30, 0 = none)
  -l, --log-file FILE    log here when fd 2 is the client connection
  -e, --keep-env         leave the TLS configuration variables in the app's environment
  -h, --help             print this and exit
  -V, --version          print the version and exit
environment: CERTFILE, KEYFILE, CERTCHAINFILE, CIPHERS, DHFILE`;

const DEFAULT_TIMEOUT_S = 30;

type Env = Readonly<Record<string, string | undefined>>;

function nonEmpty(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

export function parseArgs(argv: readonly string[], env: Env): Parsed {
  let unknown: string | undefined;
  const a = minimist([...argv], {
    boolean: ['verbose', 'quiet', 'keep-env', 'help', 'version'],
    string: ['timeout', 'log-file'],
    alias: { v: 'verbose', q: 'quiet', t: 'timeout', l: 'log-file', e: 'keep-env', h: 'help', V: 'version' },
    stopEarly: true,
    unknown: (arg) => {
      // With stopEarly, the first non-option word is the app: accept it.
      if (unknown === undefined && arg.startsWith('-') && arg !== '-') unknown = arg;
      return arg.startsWith('-') ? false : true;
    },
  });
  if (unknown !== undefined) return usageError(`unknown option ${unknown}`);
  if (a.help) return { kind: 'help' };
  if (a.version) return { kind: 'version' };

  for (const name of ['timeout', 'log-file']) {
    if (Array.isArray(a[name])) return usageError(`--${name} given more than once`);
  }
  let handshakeTimeoutMs = DEFAULT_TIMEOUT_S * 1000;
  if (a.timeout !== undefined) {
    const t = String(a.timeout);
    if (!/^\d+(\.\d+)?$/.test(t)) return usageError(`--timeout needs a number of seconds, not '${t}'`);
    handshakeTimeoutMs = Math.round(Number(t) * 1000);
  }
  const logFile: unknown = a['log-file'];
  if (logFile !== undefined && (typeof logFile !== 'string' || logFile === '')) {
    return usageError('--log-file needs a file name');
  }

  const app = a._.map(String);
  if (app.length === 0) return usageError('no app to run');

  const certFile = nonEmpty(env, 'CERTCHAINFILE') ?? nonEmpty(env, 'CERTFILE');
  if (certFile === undefined) {
    return { kind: 'error', status: EXIT_CONFIG, message: 'CERTFILE is not set' };
  }
  const keyFile = nonEmpty(env, 'KEYFILE') ?? nonEmpty(env, 'CERTFILE') ?? certFile;

  const verbosity: Verbosity = a.quiet ? 0 : a.verbose ? 2 : 1;
  const config: Config = {
    app,
    verbosity,
    handshakeTimeoutMs,
    keepEnv: Boolean(a['keep-env']),
    certFile,
    keyFile,
  };
  if (typeof logFile === 'string') config.logFile = logFile;
  const chainFile = nonEmpty(env, 'CERTCHAINFILE');
  if (chainFile !== undefined) config.chainFile = chainFile;
  const ciphers = nonEmpty(env, 'CIPHERS');
  if (ciphers !== undefined) config.ciphers = ciphers;
  const dhFile = nonEmpty(env, 'DHFILE');
  if (dhFile !== undefined) config.dhFile = dhFile;
  return { kind: 'run', config };
}

function usageError(message: string): Parsed {
  return { kind: 'error', status: EXIT_USAGE, message };
}
