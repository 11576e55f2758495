// ucspi-tls-server's command line and environment -> configuration. Pure: no I/O.
import { isIP } from 'node:net';
import type { TlsConfig } from '../tls/config';
import type { Ids } from '../process/ids';
import { configError, DEFAULT_TIMEOUT_S, handshakeTimeout, repeated, usageError, type Parsed as ParsedAs } from '../contract/flags';
import { verbosityOf, type Verbosity } from '../contract/verbosity';
import { parseSessionFlags, sessionPolicy } from '../session/policy-options';
import { proxySockets, type ProxyWhere } from './proxy/options';
import { parseMetricsAddress, type MetricsAddress } from './metrics/address';

export const SERVER_PROGRAM = 'ucspi-tls-server';

export type Listen = { kind: 'address'; host: string; port: number } | { kind: 'systemd'; fds: number[] };

export interface ServerConfig {
  listen: Listen;
  app: string[];
  verbosity: Verbosity;
  /** 0 means no limit. */
  handshakeTimeoutMs: number;
  concurrency: number;
  backlog: number;
  workers: number;
  /** TCPLOCALHOST, as tcpserver's -l. */
  localName?: string;
  printPort: boolean;
  keepEnv: boolean;
  implicit: boolean;
  /** Reload when a file of the TLS policy changes (--watch). */
  watch: boolean;
  tls: TlsConfig;
  /** Who the apps run as (-u/-g, or $UID/$GID). */
  appIds?: Ids;
  /** Who the TLS workers run as ($TLS_UID/$TLS_GID). */
  workerIds?: Ids;
  /** -x FILE; optional: -X, a missing file allows all. */
  rules?: { path: string; optional: boolean };
  /** -C: connections at once from one address. */
  perAddress?: number;
  /** The listening sockets whose connections start with a PROXY protocol header. */
  proxy?: ProxyWhere;
  /** After SIGTERM, how long sessions may run before their apps get SIGTERM; 0: at once. */
  graceMs: number;
  /** Listen with SO_REUSEPORT, beside a server already on the port. */
  reusePort: boolean;
  /** --metrics: where the metrics are served; none without it. */
  metrics?: MetricsAddress;
}

export type Parsed = ParsedAs<ServerConfig>;

export const DEFAULT_CONCURRENCY = 40;
export const DEFAULT_BACKLOG = 511;
export const DEFAULT_GRACE_S = 30;

export const USAGE = `usage: ${SERVER_PROGRAM} [-1vqeyY] [--implicit] [-c n] [-b n] [-w n] [-t seconds] [-l name] [-x rules.cdb [-X]] [-C n] [-u uid -g gid] host port app [arg ...]
       ${SERVER_PROGRAM} [options] app [arg ...]     (listening sockets from systemd: LISTEN_FDS)
  -c, --concurrency N        at most N connections at once (default ${DEFAULT_CONCURRENCY}); then stop accepting
  -b, --backlog N            listen queue length (default ${DEFAULT_BACKLOG})
  -w, --workers N            TLS worker processes (default: the number of CPUs)
  -t, --timeout SECONDS      handshake time limit (default ${DEFAULT_TIMEOUT_S}, 0 = none)
  -l, --local-name NAME      TCPLOCALHOST for the app
  -1, --print-port           print the local port on stdout once listening
  -x, --rules FILE           follow the rules tcprules compiled into FILE (read again when it changes)
  -X, --rules-optional       with -x: allow all while FILE does not exist
  -C, --per-address N        at most N connections at once from one address (rules: TCPCONNMAX)
  -u, --uid UID, -g, --gid GID
                             run the apps as UID:GID (root only; default $UID and $GID)
      --implicit             TLS from the first byte (ports 465, 993, 995)
      --watch                reload when a certificate, key or other TLS file changes (as on SIGHUP)
      --proxy                every connection starts with a PROXY protocol header (v1 or v2)
      --proxy-name NAME      only those to the systemd sockets named NAME (LISTEN_FDNAMES)
      --grace SECONDS        on SIGTERM, let sessions end for this long first (default ${DEFAULT_GRACE_S}, 0 = none)
      --reuse-port           listen with SO_REUSEPORT, beside a server still on the port (restart)
      --metrics ADDRESS      serve the figures for Prometheus on ADDRESS (host:port or a socket path)
  -v, --verbose              log every event, not only connections and failures
  -q, --quiet                log only fatal errors
  -e, --keep-env             leave the TLS configuration variables in the app's environment
  -Y, --request-client-cert  ask the client for a certificate (optional)
  -y, --require-client-cert  ask for a certificate and refuse clients without a valid one
      --strict-sni           refuse clients whose server name matches no CERTFILE:name
      --cert-pem             add SSL_CLIENT_CERT and SSL_CLIENT_CERT_CHAIN_n to the reply
      --s6-vars              add s6-ucspitlsd's SSL_TLS_SNI_SERVERNAME, SSL_PEER_CERT_* to the reply
  -h, --help                 print this and exit
  -V, --version              print the version and exit
environment: as ucspi-tls-wrap's (CERTFILE KEYFILE ...), TLS_UID TLS_GID for the workers;
  see ${SERVER_PROGRAM}(1)`;

type Env = Readonly<Record<string, string | undefined>>;

const NUMBERS = { concurrency: 'c', backlog: 'b', workers: 'w' } as const;

/** `cpus`: the default number of workers. `pid`: ours, to tell whether LISTEN_FDS is meant for us. */
export function parseServerArgs(argv: readonly string[], env: Env, cpus: number, pid: number): Parsed {
  const a = parseSessionFlags(argv, {
    boolean: ['print-port', 'rules-optional', 'watch', 'proxy', 'reuse-port'],
    string: ['concurrency', 'backlog', 'workers', 'local-name', 'rules', 'per-address', 'proxy-name', 'grace', 'metrics'],
    alias: { 1: 'print-port', c: 'concurrency', b: 'backlog', w: 'workers', l: 'local-name', x: 'rules', X: 'rules-optional', C: 'per-address' },
  });
  if ('unknown' in a) return usageError(`unknown option ${a.unknown}`);
  if (a.help) return { kind: 'help' };
  if (a.version) return { kind: 'version' };

  const twice = repeated(a, ['concurrency', 'backlog', 'workers', 'timeout', 'local-name', 'uid', 'gid', 'rules', 'per-address', 'grace', 'metrics']);
  if (twice !== undefined) return usageError(twice);
  const numbers: Record<keyof typeof NUMBERS, number> = { concurrency: DEFAULT_CONCURRENCY, backlog: DEFAULT_BACKLOG, workers: Math.max(1, cpus) };
  for (const name of Object.keys(NUMBERS) as Array<keyof typeof NUMBERS>) {
    const v: unknown = a[name];
    if (v === undefined) continue;
    const s = String(v);
    if (!/^\d{1,6}$/.test(s) || Number(s) < 1) return usageError(`-${NUMBERS[name]} needs a whole number from 1, not '${s}'`);
    numbers[name] = Number(s);
  }
  const handshakeTimeoutMs = handshakeTimeout(a.timeout);
  if (typeof handshakeTimeoutMs !== 'number') return usageError(handshakeTimeoutMs.usage);
  const graceMs = gracePeriod(a.grace);
  if (typeof graceMs !== 'number') return usageError(graceMs.usage);
  const localName: unknown = a['local-name'];
  if (localName !== undefined && (typeof localName !== 'string' || localName === '')) return usageError('-l needs a name');
  const access = accessOptions(a);
  if (typeof access === 'string') return usageError(access);
  const metricsValue: unknown = a.metrics;
  const metrics = metricsValue === undefined ? undefined : parseMetricsAddress(String(metricsValue));
  if (metrics !== undefined && 'error' in metrics) return usageError(metrics.error);

  const words = a._.map(String);
  const systemd = systemdFds(env, pid);
  if (typeof systemd === 'string') return configError(systemd);
  let listen: Listen;
  if (systemd !== undefined) {
    listen = { kind: 'systemd', fds: systemd };
  } else {
    const [host, port] = words.splice(0, 2);
    if (host === undefined || port === undefined) return usageError('give host and port (or run from a systemd socket unit)');
    const address = host === '0' ? '0.0.0.0' : host;
    if (isIP(address) === 0) return usageError(`host must be an IP address, not '${host}' (names are not looked up)`);
    if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) return usageError(`port must be a number from 0 to 65535, not '${port}'`);
    listen = { kind: 'address', host: address, port: Number(port) };
  }
  if (words.length === 0) return usageError('no app to run');
  if (a['reuse-port'] && listen.kind === 'systemd') return usageError('--reuse-port is for host and port: sockets from systemd are shared already');

  const proxyNames: unknown = a['proxy-name'];
  const proxy = proxySockets(Boolean(a.proxy), proxyNames === undefined ? [] : ([] as unknown[]).concat(proxyNames).map(String), listen.kind === 'systemd' ? listen.fds : undefined, env);
  if (typeof proxy === 'object' && 'usage' in proxy) return usageError(proxy.usage);
  if (typeof proxy === 'object' && 'config' in proxy) return configError(proxy.config);

  const policy = sessionPolicy(a, env);
  if ('usage' in policy) return usageError(policy.usage);
  if ('config' in policy) return configError(policy.config);
  const { tls, appIds, tlsIds: workerIds } = policy;

  const config: ServerConfig = {
    listen,
    app: words,
    verbosity: verbosityOf(a),
    handshakeTimeoutMs,
    ...numbers,
    printPort: Boolean(a['print-port']),
    keepEnv: Boolean(a['keep-env']),
    implicit: Boolean(a.implicit),
    watch: Boolean(a.watch),
    tls,
    graceMs,
    reusePort: Boolean(a['reuse-port']),
  };
  if (typeof localName === 'string') config.localName = localName;
  Object.assign(config, access);
  if (appIds !== undefined) config.appIds = appIds;
  if (workerIds !== undefined) config.workerIds = workerIds;
  if (proxy !== undefined) config.proxy = proxy;
  if (metrics !== undefined) config.metrics = metrics;
  return { kind: 'run', config };
}

/** -x FILE, -X and -C N, or the usage error. */
function accessOptions(a: Readonly<Record<string, unknown>>): Pick<ServerConfig, 'rules' | 'perAddress'> | string {
  const out: Pick<ServerConfig, 'rules' | 'perAddress'> = {};
  const rules: unknown = a.rules;
  if (rules !== undefined) {
    if (typeof rules !== 'string' || rules === '') return '-x needs a file';
    out.rules = { path: rules, optional: Boolean(a['rules-optional']) };
  } else if (a['rules-optional']) return '-X goes with -x FILE';
  const per: unknown = a['per-address'];
  if (per !== undefined) {
    const s = String(per);
    if (!/^\d{1,6}$/.test(s) || Number(s) < 1) return `-C needs a whole number from 1, not '${s}'`;
    out.perAddress = Number(s);
  }
  return out;
}

/** --grace SECONDS in milliseconds (the default when absent), or the usage error. */
function gracePeriod(value: unknown): number | { usage: string } {
  if (value === undefined) return DEFAULT_GRACE_S * 1000;
  const s = String(value);
  if (!/^\d{1,6}$/.test(s)) return { usage: `--grace needs a whole number of seconds, not '${s}'` };
  return Number(s) * 1000;
}

/** systemd's listening sockets (Accept=no): fds 3 .. 3+LISTEN_FDS-1, when LISTEN_PID is ours. */
export function systemdFds(env: Env, pid: number): number[] | string | undefined {
  const n = env.LISTEN_FDS;
  if (n === undefined || env.LISTEN_PID !== String(pid)) return undefined;
  if (!/^\d{1,3}$/.test(n) || Number(n) < 1) return `LISTEN_FDS=${n}: expected a number of listening sockets`;
  return Array.from({ length: Number(n) }, (_, i) => 3 + i);
}
