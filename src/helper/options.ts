// Command line and environment -> configuration. Pure: no I/O, so every rule is
// tested directly.
import type { TlsConfig } from '../tls/config';
import type { Ids } from '../process/ids';
import { configError, handshakeTimeout, repeated, usageError, type Parsed as ParsedAs } from '../contract/flags';
import { verbosityOf, type Verbosity } from '../contract/verbosity';
import { parseSessionFlags, sessionPolicy } from '../session/policy-options';

export const PROGRAM = 'ucspi-tls-wrap';

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

export type Parsed = ParsedAs<Config>;

export const USAGE = `usage: ${PROGRAM} [-vqeyY] [--implicit] [-t seconds] [-l logfile] [-u uid -g gid] app [arg ...]
      --implicit             TLS from the first byte (ports 465, 993, 995): the handshake,
                             then the app with the plaintext on fds 0/1 and SSL_* in its environment
  -v, --verbose              log every event, not only failures
  -q, --quiet                log only fatal errors
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

type Env = Readonly<Record<string, string | undefined>>;

export function parseArgs(argv: readonly string[], env: Env): Parsed {
  const a = parseSessionFlags(argv, { string: ['log-file'], alias: { l: 'log-file' } });
  if ('unknown' in a) return usageError(`unknown option ${a.unknown}`);
  if (a.help) return { kind: 'help' };
  if (a.version) return { kind: 'version' };

  const twice = repeated(a, ['timeout', 'log-file', 'uid', 'gid']);
  if (twice !== undefined) return usageError(twice);
  const handshakeTimeoutMs = handshakeTimeout(a.timeout);
  if (typeof handshakeTimeoutMs !== 'number') return usageError(handshakeTimeoutMs.usage);
  const logFile: unknown = a['log-file'];
  if (logFile !== undefined && (typeof logFile !== 'string' || logFile === '')) {
    return usageError('--log-file needs a file name');
  }

  const app = a._.map(String);
  if (app.length === 0) return usageError('no app to run');

  const policy = sessionPolicy(a, env);
  if ('usage' in policy) return usageError(policy.usage);
  if ('config' in policy) return configError(policy.config);
  const { tls, appIds: ids, tlsIds: helperIds } = policy;

  const config: Config = { app, verbosity: verbosityOf(a), handshakeTimeoutMs, keepEnv: Boolean(a['keep-env']), implicit: Boolean(a.implicit), tls };
  if (typeof logFile === 'string') config.logFile = logFile;
  if (ids !== undefined) config.appIds = ids;
  if (helperIds !== undefined) config.helperIds = helperIds;
  return { kind: 'run', config };
}
