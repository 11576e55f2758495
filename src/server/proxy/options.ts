// Which listening sockets require the PROXY protocol header: --proxy (every one) or
// --proxy-name NAME (the sockets from systemd that LISTEN_FDNAMES names so, as a socket
// unit's FileDescriptorName= sets it). Pure.

import { DEFAULT_TIMEOUT_S } from '../../contract/flags';

type Env = Readonly<Record<string, string | undefined>>;

/** 'all', or the systemd fds that require it; undefined: none does. */
export type ProxyWhere = 'all' | number[];

/**
 * `all`: --proxy given; `names`: every --proxy-name (each may be a comma-separated list);
 * `fds`: the sockets from systemd, or undefined when listening on host and port.
 */
export function proxySockets(all: boolean, names: readonly string[], fds: readonly number[] | undefined, env: Env): ProxyWhere | undefined | { usage: string } | { config: string } {
  const wanted = names.flatMap((n) => n.split(',')).filter((n) => n !== '');
  if (names.length > 0 && wanted.length === 0) return { usage: '--proxy-name needs a name' };
  if (wanted.length === 0) return all ? 'all' : undefined;
  if (all) return { usage: '--proxy and --proxy-name exclude each other' };
  if (fds === undefined) return { usage: '--proxy-name names sockets from systemd (LISTEN_FDNAMES); with host and port, use --proxy' };
  const given = (env.LISTEN_FDNAMES ?? '').split(':');
  if (env.LISTEN_FDNAMES === undefined || given.length !== fds.length) {
    return { config: `--proxy-name: LISTEN_FDNAMES=${env.LISTEN_FDNAMES ?? ''} does not name the ${fds.length} socket(s) of LISTEN_FDS` };
  }
  const unknown = wanted.filter((n) => !given.includes(n));
  if (unknown.length > 0) return { config: `--proxy-name: no socket named ${unknown.join(', ')} in LISTEN_FDNAMES=${env.LISTEN_FDNAMES}` };
  return fds.filter((_, i) => wanted.includes(given[i]!));
}

/** Whether connections to this listening target must start with the header. */
export function requiresHeader(where: ProxyWhere | undefined, target: { fd: number } | object): boolean {
  if (where === undefined) return false;
  return where === 'all' || ('fd' in target && where.includes(target.fd));
}

/** The header's time limit: the handshake's (-t), and never none: -t 0 gives the default. */
export function headerTimeoutMs(handshakeTimeoutMs: number): number {
  return handshakeTimeoutMs > 0 ? handshakeTimeoutMs : DEFAULT_TIMEOUT_S * 1000;
}
