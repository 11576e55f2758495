// Which server name's certificates a client gets, by the name it sent. Among that name's
// certificates (one per key type) OpenSSL picks. Pure.

/** `*.example.com` matches exactly one more label, as s6-networking and RFC 6125 have it. */
export function nameMatches(pattern: string, host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  if (!pattern.startsWith('*.')) return pattern === h;
  const dot = h.indexOf('.');
  return dot > 0 && h.slice(dot + 1) === pattern.slice(2);
}

export type Choice<T> = { kind: 'chosen'; identity: T } | { kind: 'refused'; why: string };

/** Exact names first, then wildcards, then the default (the identity without a name). */
export function chooseIdentity<T extends { name?: string }>(
  identities: readonly T[],
  serverName: string | undefined,
  strict: boolean,
): Choice<T> {
  if (serverName !== undefined && serverName !== '') {
    const exact = identities.find((i) => i.name !== undefined && !i.name.startsWith('*.') && nameMatches(i.name, serverName));
    const wild = exact ?? identities.find((i) => i.name?.startsWith('*.') === true && nameMatches(i.name, serverName));
    if (wild !== undefined) return { kind: 'chosen', identity: wild };
    if (strict) return { kind: 'refused', why: `client asked for unknown server name ${JSON.stringify(serverName)}` };
  }
  const fallback = identities.find((i) => i.name === undefined);
  if (fallback !== undefined) return { kind: 'chosen', identity: fallback };
  if (serverName === undefined || serverName === '') {
    return { kind: 'refused', why: 'client sent no server name and there is no default CERTFILE' };
  }
  return { kind: 'refused', why: `client asked for unknown server name ${JSON.stringify(serverName)} and there is no default CERTFILE` };
}
