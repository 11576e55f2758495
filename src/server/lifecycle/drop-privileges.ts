// The acceptor, once its sockets are bound: from root to the workers' user, for good (no
// saved set-user-ID left to return with). It reads the network from then on.
import type { Ids } from '../../process/ids';

/** undefined when done (or nothing to do: not root); else the line saying why it could not. */
export function dropPrivileges(to: Ids | undefined): string | undefined {
  if (to === undefined || process.getuid?.() !== 0) return undefined;
  try {
    process.setgroups!([to.gid]);
    process.setgid!(to.gid);
    // setuid as root sets the real, effective and saved IDs alike.
    process.setuid!(to.uid);
  } catch (e) {
    return `cannot run as ${to.uid}:${to.gid} once listening: ${(e as Error).message}`;
  }
  return undefined;
}
