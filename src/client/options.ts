// ucspi-tls-client's command line and environment -> configuration. Pure.
import { isIP } from 'node:net';
import { fdVariables } from '../contract/fds';
import { configError, handshakeTimeout, parseFlags, repeated, usageError, type Parsed } from '../contract/flags';
import { verbosityOf, type Verbosity } from '../contract/verbosity';
import { nonEmpty, normalizeServerName, readPolicy, type ClientTlsConfig, type Env } from '../tls/config';

export const CLIENT_PROGRAM = 'ucspi-tls-client';

export interface ClientConfig {
  app: string[];
  verbosity: Verbosity;
  handshakeTimeoutMs: number;
  logFile?: string;
  keepEnv: boolean;
  /** The name the certificate must carry (a host name or an IP address); SNI too when a host name. */
  serverName?: string;
  /** false only with --insecure: the server's certificate is taken unchecked. */
  verify: boolean;
  tls: ClientTlsConfig;
}

export type ClientParsed = Parsed<ClientConfig>;

/** Variables ucspi-tls-client reads for itself; removed from the app's environment. */
export const CLIENT_ENV = [
  'CERTFILE',
  'KEYFILE',
  'CAFILE',
  'CADIR',
  'CIPHERS',
  'CIPHERSUITES',
  'TLS_GROUPS',
  'TLS_MIN_VERSION',
  'TLS_MAX_VERSION',
  'ALPN',
] as const;

export const CLIENT_USAGE = `usage: ${CLIENT_PROGRAM} [-vqe] [-k servername] [-t seconds] [-l logfile] [--insecure] app [arg ...]
  run under tcpclient: the connection is on fds 6 (read) and 7 (write)
  -k, --servername NAME      the name the server's certificate must carry, sent as SNI
                             (default $TCPREMOTEHOST); an IP address is checked, not sent
  -v, --verbose              log every event, not only failures
  -q, --quiet                log only fatal errors
  -t, --timeout SECONDS      handshake time limit (default 30, 0 = none)
  -l, --log-file FILE        log here instead of fd 2
  -e, --keep-env             leave the TLS configuration variables in the app's environment
      --insecure             do not check the server's certificate (SSL_SERVER_VERIFY says what is wrong)
  -h, --help                 print this and exit
  -V, --version              print the version and exit
environment: CAFILE CADIR (default: the system's trust store), CERTFILE KEYFILE (a client
  certificate), CIPHERS CIPHERSUITES TLS_GROUPS TLS_MIN_VERSION TLS_MAX_VERSION ALPN; see ${CLIENT_PROGRAM}(1)`;

export function parseClientArgs(argv: readonly string[], env: Env): ClientParsed {
  const a = parseFlags(argv, { boolean: ['insecure'], string: ['log-file', 'servername'], alias: { l: 'log-file', k: 'servername' } });
  if ('unknown' in a) return usageError(`unknown option ${a.unknown}`);
  if (a.help) return { kind: 'help' };
  if (a.version) return { kind: 'version' };
  const twice = repeated(a, ['timeout', 'log-file', 'servername']);
  if (twice !== undefined) return usageError(twice);
  const handshakeTimeoutMs = handshakeTimeout(a.timeout);
  if (typeof handshakeTimeoutMs !== 'number') return usageError(handshakeTimeoutMs.usage);
  const logFile: unknown = a['log-file'];
  if (logFile !== undefined && (typeof logFile !== 'string' || logFile === '')) return usageError('--log-file needs a file name');
  const app = a._.map(String);
  if (app.length === 0) return usageError('no app to run');

  const verify = !a.insecure;
  const given: unknown = a.servername;
  if (given !== undefined && (typeof given !== 'string' || given === '')) return usageError('--servername needs a name');
  const raw = typeof given === 'string' ? given : nonEmpty(env, 'TCPREMOTEHOST');
  let serverName: string | undefined;
  if (raw !== undefined) {
    serverName = isIP(raw) !== 0 ? raw : normalizeServerName(raw);
    if (serverName === undefined || serverName.startsWith('*.')) {
      return typeof given === 'string' ? usageError(`--servername: '${raw}' is not a host name or IP address`) : configError(`TCPREMOTEHOST: '${raw}' is not a host name`);
    }
  } else if (verify) {
    return usageError('no server name to check the certificate against: give -k NAME (tcpclient -H leaves TCPREMOTEHOST unset)');
  }

  const policy = readPolicy(env);
  if (typeof policy === 'string') return configError(policy);
  const tls: ClientTlsConfig = { ...policy };
  const caFile = nonEmpty(env, 'CAFILE');
  const caDir = nonEmpty(env, 'CADIR');
  if (caFile !== undefined) tls.caFile = caFile;
  if (caDir !== undefined) tls.caDir = caDir;
  const certFile = nonEmpty(env, 'CERTFILE');
  const keyFile = nonEmpty(env, 'KEYFILE');
  if (keyFile !== undefined && certFile === undefined) return configError('KEYFILE is set but CERTFILE is not');
  if (certFile !== undefined) tls.pair = { certFile, keyFile: keyFile ?? certFile };

  const out: ClientConfig = { app, verbosity: verbosityOf(a), handshakeTimeoutMs, keepEnv: Boolean(a['keep-env']), verify, tls };
  if (typeof logFile === 'string') out.logFile = logFile;
  if (serverName !== undefined) out.serverName = serverName;
  return { kind: 'run', config: out };
}

/** The app's environment: ours removed (unless -e), the UCSPI-TLS fds named. Pure. */
export function clientAppEnvironment(env: Env, keepEnv: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined || (!keepEnv && (CLIENT_ENV as readonly string[]).includes(k))) continue;
    out[k] = v;
  }
  return Object.assign(out, fdVariables());
}
