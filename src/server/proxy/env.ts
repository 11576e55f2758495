// What a PROXY header changes for one connection: the addresses tcpserver's variables and
// the start line give, the balancer's own address in variables of its own, the log's
// words. Pure.
import { place, type Peer } from '../log-lines';
import type { ProxyHeader } from './header';
import { unmapped } from '../tcp-env';

export interface Ends {
  remote: Peer;
  local: Peer;
}

/** The balancer's side of the connection: set for every connection of a socket that requires the header. */
export const PROXY_VARIABLES = ['PROXYREMOTEIP', 'PROXYREMOTEPORT', 'PROXYLOCALIP', 'PROXYLOCALPORT'];

/** The client as the header names it; a health check (LOCAL) or an unknown family: the socket's own. */
export function clientEnds(h: ProxyHeader, socket: Ends): Ends {
  if (h.command === 'local') return socket;
  return { remote: h.source, local: h.destination };
}

/** The balancer's address and port (PROXYREMOTE*), and ours that it connected to (PROXYLOCAL*). */
export function proxyVariables(socket: Ends): Record<string, string> {
  return {
    PROXYREMOTEIP: unmapped(socket.remote.address),
    PROXYREMOTEPORT: String(socket.remote.port),
    PROXYLOCALIP: unmapped(socket.local.address),
    PROXYLOCALPORT: String(socket.local.port),
  };
}

/** Appended to the start line of a connection that came through a balancer. */
export function viaWords(h: ProxyHeader, balancer: Peer): string {
  return `, via ${place(balancer)} (PROXY v${h.version}${h.command === 'local' ? (h.version === 1 ? ' UNKNOWN' : ' LOCAL') : ''})`;
}

/** A connection refused for its header: no app ran. */
export function refusedLine(from: Peer, why: string): string {
  return `connection from ${place(from)} closed: ${why}`;
}
