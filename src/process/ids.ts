// A numeric user and group, as the helper and the server take them. Pure.

export interface Ids {
  uid: number;
  gid: number;
}

/** Both ids or neither: a uid without a gid would leave the process in group 0. */
export function idsFrom(what: string, uid: unknown, gid: unknown): Ids | string | undefined {
  if (uid === undefined && gid === undefined) return undefined;
  if (uid === undefined || gid === undefined) return `${what}: give both the uid and the gid`;
  const [u, g] = [String(uid), String(gid)];
  if (!/^\d+$/.test(u) || !/^\d+$/.test(g)) return `${what}: '${u}:${g}' is not a numeric uid and gid`;
  return { uid: Number(u), gid: Number(g) };
}
