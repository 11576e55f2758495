// What the helper's and the server's command lines share about each session: the handshake's
// time limit, who runs the app and who runs TLS, and the TLS policy with the client
// certificate mode. Pure: the two parsers call these in their own order of checks.
import { nonEmpty, readTlsConfig, type ClientCertMode, type TlsConfig } from '../tls/config';
import { idsFrom, type Ids } from '../process/ids';

import minimist from 'minimist';

type Env = Readonly<Record<string, string | undefined>>;

/** The flags of every session, each program adding its own (`-l` means a log file to one, a name to the other). */
const SESSION_BOOLEANS = ['verbose', 'quiet', 'keep-env', 'help', 'version', 'request-client-cert', 'require-client-cert', 'strict-sni', 'cert-pem', 's6-vars', 'implicit'];
const SESSION_STRINGS = ['timeout', 'uid', 'gid'];
const SESSION_ALIASES: Record<string, string> = {
  v: 'verbose', q: 'quiet', t: 'timeout', e: 'keep-env', h: 'help', V: 'version', Y: 'request-client-cert', y: 'require-client-cert', u: 'uid', g: 'gid',
};

/**
 * The command line up to the first word that is not an option (the app, or the host): the
 * flags, or the first unknown option. `more` are the program's own flags.
 */
export function parseFlags(
  argv: readonly string[],
  more: { boolean?: string[]; string?: string[]; alias?: Record<string, string> },
): minimist.ParsedArgs | { unknown: string } {
  let unknown: string | undefined;
  const a = minimist([...argv], {
    boolean: [...SESSION_BOOLEANS, ...(more.boolean ?? [])],
    string: [...SESSION_STRINGS, ...(more.string ?? [])],
    alias: { ...SESSION_ALIASES, ...more.alias },
    stopEarly: true,
    unknown: (arg) => {
      // With stopEarly, the first non-option word is the app (or the host): accept it.
      if (unknown === undefined && arg.startsWith('-') && arg !== '-') unknown = arg;
      return !arg.startsWith('-');
    },
  });
  return unknown !== undefined ? { unknown } : a;
}

export const DEFAULT_TIMEOUT_S = 30;

/** `-t S` in milliseconds (30 s when absent), or the usage error. */
export function handshakeTimeout(value: unknown): number | { usage: string } {
  if (value === undefined) return DEFAULT_TIMEOUT_S * 1000;
  const t = String(value);
  if (!/^\d+(\.\d+)?$/.test(t)) return { usage: `--timeout needs a number of seconds, not '${t}'` };
  return Math.round(Number(t) * 1000);
}

export interface SessionPolicy {
  /** -u/-g, else $UID/$GID. */
  appIds: Ids | undefined;
  /** $TLS_UID/$TLS_GID: the helper after its start, the server's workers. */
  tlsIds: Ids | undefined;
  tls: TlsConfig;
}

/** The ids and the TLS policy; a usage error (the command line) or a config error (the environment). */
/** `a`: the parsed command line; read are -u, -g, -Y, -y, --strict-sni, --cert-pem, --s6-vars. */
export function sessionPolicy(a: Readonly<Record<string, unknown>>, env: Env): SessionPolicy | { usage: string } | { config: string } {
  const cliIds = idsFrom('-u/-g', a.uid, a.gid);
  if (typeof cliIds === 'string') return { usage: cliIds };
  const appIds = cliIds ?? idsFrom('$UID/$GID', nonEmpty(env, 'UID'), nonEmpty(env, 'GID'));
  if (typeof appIds === 'string') return { config: appIds };
  const tlsIds = idsFrom('TLS_UID/TLS_GID', nonEmpty(env, 'TLS_UID'), nonEmpty(env, 'TLS_GID'));
  if (typeof tlsIds === 'string') return { config: tlsIds };

  if (a['request-client-cert'] && a['require-client-cert']) return { usage: '-Y and -y exclude each other' };
  const clientCert: ClientCertMode = a['require-client-cert'] ? 'require' : a['request-client-cert'] ? 'request' : 'none';
  const tls = readTlsConfig(env, {
    clientCert,
    strictSni: Boolean(a['strict-sni']),
    certPem: Boolean(a['cert-pem']),
    s6Vars: Boolean(a['s6-vars']),
  });
  if (typeof tls === 'string') return { config: tls };
  return { appIds, tlsIds, tls };
}
