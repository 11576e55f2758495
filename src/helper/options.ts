// Command line and environment -> configuration. Pure: no I/O, so every rule is
// tested directly.
import minimist from 'minimist';
import { isTlsVariable, nonEmpty, readTlsConfig, type ClientCertMode, type TlsConfig } from '../tls/config';
import { idsFrom, type Ids } from '../process/ids';

export const PROGRAM = 'ucspi-tls-wrap';

/** Exit statuses of the helper itself (the app's status is passed on otherwise). */
export const EXIT_USAGE = 100;
export const EXIT_CONFIG = 111;

/** Variables the helper reads for itself; they are removed from the app's environment. */
export function isHelperVariable(name: string): boolean {
  return isTlsVariable(name) || name === 'TLS_UID' || name === 'TLS_GID';
}

export type { Ids } from '../process/ids';

export type Verbosity = 0 | 1 | 2;

export interface Config {
  app: string[];
  verbosity: Verbosity;
  /** 0 means no limit. */
  handshakeTimeoutMs: number;
  logFile?: string;
  keepEnv: boolean;
  /** Implicit TLS: the handshake first, then the app with the decrypted stream on fds 0/1. */
  implicit: boolean;
  tls: TlsConfig;
  /** Who the app runs as, when the helper starts as root ($UID/$GID or -u/-g). */
  appIds?: Ids;
  /** Who the helper becomes before it touches the network ($TLS_UID/$TLS_GID). */
  helperIds?: Ids;
}

export type Parsed =
  | { kind: 'run'; config: Config }
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'error'; status: number; message: string };

export const USAGE = `usage: ${PROGRAM} [-vqeyY] [--implicit] [-t seconds] [-l logfile] [-u uid -g gid] app [arg ...]
      --implicit             TLS from the first byte (ports 465, 993, 995): the handshake,
                             then the app with the plaintext on fds 0/1 and SSL_* in its environment
  -v, --verbose              log every event, not only failures
  -q, --quiet                log nothing
  -t, --timeout SECONDS      handshake time limit (default 30, 0 = none)
  -l, --log-file FILE        log here when fd 2 is the client connection
  -e, --keep-env             leave the TLS configuration variables in the app's environment
  -Y, --request-client-cert  ask the client for a certificate (optional)
  -y, --require-client-cert  ask for a certificate and refuse clients without a valid one
      --strict-sni           refuse clients whose server name matches no CERTFILE:name
      --cert-pem             add SSL_CLIENT_CERT and SSL_CLIENT_CERT_CHAIN_n to the reply
      --s6-vars              add s6-ucspitlsd's SSL_TLS_SNI_SERVERNAME, SSL_PEER_CERT_* to the reply
  -u, --uid UID, -g, --gid GID
                             run the app as UID:GID (root only; default $UID and $GID)
  -h, --help                 print this and exit
  -V, --version              print the version and exit
environment: CERTFILE KEYFILE CERTCHAINFILE OCSPFILE (each also as VAR:servername), CAFILE CADIR
  CCAFILE VERIFYDEPTH CIPHERS CIPHERSUITES TLS_GROUPS TLS_MIN_VERSION TLS_MAX_VERSION DHFILE
  TICKETKEYFILE ALPN TLS_UID TLS_GID; see ${PROGRAM}(1)`;

const DEFAULT_TIMEOUT_S = 30;

type Env = Readonly<Record<string, string | undefined>>;

export function parseArgs(argv: readonly string[], env: Env): Parsed {
  let unknown: string | undefined;
  const a = minimist([...argv], {
    boolean: [
      'verbose',
      'quiet',
      'keep-env',
      'help',
      'version',
      'request-client-cert',
      'require-client-cert',
      'strict-sni',
      'cert-pem',
      's6-vars',
      'implicit',
    ],
    string: ['timeout', 'log-file', 'uid', 'gid'],
    alias: {
      v: 'verbose',
      q: 'quiet',
      t: 'timeout',
      l: 'log-file',
      e: 'keep-env',
      h: 'help',
      V: 'version',
      Y: 'request-client-cert',
      y: 'require-client-cert',
      u: 'uid',
      g: 'gid',
    },
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

  for (const name of ['timeout', 'log-file', 'uid', 'gid']) {
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

  const cliIds = idsFrom('-u/-g', a.uid, a.gid);
  if (typeof cliIds === 'string') return usageError(cliIds);
  const ids = cliIds ?? idsFrom('$UID/$GID', nonEmpty(env, 'UID'), nonEmpty(env, 'GID'));
  if (typeof ids === 'string') return configError(ids);
  const helperIds = idsFrom('TLS_UID/TLS_GID', nonEmpty(env, 'TLS_UID'), nonEmpty(env, 'TLS_GID'));
  if (typeof helperIds === 'string') return configError(helperIds);

  if (a['request-client-cert'] && a['require-client-cert']) return usageError('-Y and -y exclude each other');
  const clientCert: ClientCertMode = a['require-client-cert'] ? 'require' : a['request-client-cert'] ? 'request' : 'none';
  const tls = readTlsConfig(env, {
    clientCert,
    strictSni: Boolean(a['strict-sni']),
    certPem: Boolean(a['cert-pem']),
    s6Vars: Boolean(a['s6-vars']),
  });
  if (typeof tls === 'string') return configError(tls);

  const verbosity: Verbosity = a.quiet ? 0 : a.verbose ? 2 : 1;
  const config: Config = { app, verbosity, handshakeTimeoutMs, keepEnv: Boolean(a['keep-env']), implicit: Boolean(a.implicit), tls };
  if (typeof logFile === 'string') config.logFile = logFile;
  if (ids !== undefined) config.appIds = ids;
  if (helperIds !== undefined) config.helperIds = helperIds;
  return { kind: 'run', config };
}

function configError(message: string): Parsed {
  return { kind: 'error', status: EXIT_CONFIG, message };
}

function usageError(message: string): Parsed {
  return { kind: 'error', status: EXIT_USAGE, message };
}
