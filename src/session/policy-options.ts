// What the helper's and the server's command lines share about each session, beyond the
// flags of every program: who runs the app and who runs TLS, the TLS policy with the client
// certificate mode, and the variables read for them. Pure: the two parsers call these in
// their own order of checks.
import { isTlsVariable, nonEmpty, readTlsConfig, type ClientCertMode, type TlsConfig } from '../tls/config';
import { idsFrom, type Ids } from '../process/ids';
import { parseFlags, type FlagSpec } from '../contract/flags';

type Env = Readonly<Record<string, string | undefined>>;

/** The flags of every session, beside the ones every program has. */
export const SESSION_FLAGS: Required<FlagSpec> = {
  boolean: ['request-client-cert', 'require-client-cert', 'strict-sni', 'cert-pem', 's6-vars', 'implicit'],
  string: ['uid', 'gid'],
  alias: { Y: 'request-client-cert', y: 'require-client-cert', u: 'uid', g: 'gid' },
};

/** The helper's or the server's command line: the shared flags, the session's, and `more`, its own. */
export function parseSessionFlags(argv: readonly string[], more: FlagSpec): ReturnType<typeof parseFlags> {
  return parseFlags(argv, SESSION_FLAGS, more);
}

/** Variables read for the session itself; removed from the app's environment unless -e. */
export function isSessionVariable(name: string): boolean {
  return isTlsVariable(name) || name === 'TLS_UID' || name === 'TLS_GID';
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
