// tcpserver's variables for one connection. Pure.

export interface Endpoints {
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  /** TCPLOCALHOST (-l). */
  localName?: string;
}

/** An IPv4 client of a socket listening on `::` shows as ::ffff:a.b.c.d: give it as IPv4. */
export function unmapped(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

/** Variables set by tcpserver that the server never sets: an inherited one would lie. */
export const STALE_TCP_VARIABLES = ['TCPREMOTEHOST', 'TCPREMOTEINFO', 'TCPLOCALHOST', 'TCP6REMOTEHOST', 'TCP6LOCALHOST', 'TCP6LOCALIP', 'TCP6LOCALPORT', 'TCP6REMOTEIP', 'TCP6REMOTEPORT'];

/** Every name tcpVariables may set. */
export const TCP_VARIABLE_NAMES = ['PROTO', 'TCPLOCALIP', 'TCPLOCALPORT', 'TCPREMOTEIP', 'TCPREMOTEPORT', 'TCPLOCALHOST', 'TCP6LOCALIP', 'TCP6LOCALPORT', 'TCP6REMOTEIP', 'TCP6REMOTEPORT', 'TCP6LOCALHOST'];

export function tcpVariables(e: Endpoints): Record<string, string> {
  const local = unmapped(e.localAddress);
  const remote = unmapped(e.remoteAddress);
  const v6 = remote.includes(':');
  const out: Record<string, string> = {
    PROTO: v6 ? 'TCP6' : 'TCP',
    TCPLOCALIP: local,
    TCPLOCALPORT: String(e.localPort),
    TCPREMOTEIP: remote,
    TCPREMOTEPORT: String(e.remotePort),
  };
  if (e.localName !== undefined) out.TCPLOCALHOST = e.localName;
  if (v6) {
    // ucspi-tcp6's names, which some apps read instead.
    out.TCP6LOCALIP = local;
    out.TCP6LOCALPORT = out.TCPLOCALPORT;
    out.TCP6REMOTEIP = remote;
    out.TCP6REMOTEPORT = out.TCPREMOTEPORT;
    if (e.localName !== undefined) out.TCP6LOCALHOST = e.localName;
  }
  return out;
}
