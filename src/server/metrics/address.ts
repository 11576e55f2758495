// --metrics ADDRESS: where the metrics are served, host:port or a Unix socket path. Pure.
import { isIP } from 'node:net';

export type MetricsAddress = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/** The address, or why it is not one (for the usage line). Names are not looked up, as for the server's host. */
export function parseMetricsAddress(value: string): MetricsAddress | { error: string } {
  const bad = { error: `--metrics needs host:port (an IP address) or the path of a Unix socket, not '${value}'` };
  // A path: anything with a slash. A relative one is relative to where the server started.
  if (value.includes('/')) {
    // sun_path holds 108 bytes with its final NUL.
    return Buffer.byteLength(value) <= 107 ? { kind: 'unix', path: value } : { error: `--metrics: a Unix socket path has at most 107 bytes, not '${value}'` };
  }
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  if (m === null) return bad;
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  // IPv6 only in brackets, IPv4 only without: 'host:port' stays unambiguous.
  if ((m[1] !== undefined ? isIP(host) !== 6 : isIP(host) !== 4) || port < 1 || port > 65535) return bad;
  return { kind: 'tcp', host, port };
}

/** The address as the log lines name it. */
export function metricsPlace(a: MetricsAddress): string {
  return a.kind === 'unix' ? a.path : a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
