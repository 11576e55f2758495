// Who runs what in the server: the workers never as root, the apps never as the workers.
// Pure.
import type { Ids } from '../process/ids';

/** The workers' user when the server starts as root and TLS_UID/TLS_GID are not set. */
export const NOBODY: Ids = { uid: 65534, gid: 65534 };

export interface ServerPlan {
  /** Spawn the apps with these ids (undefined: as the launcher). */
  app?: Ids;
  /** Fork the workers with these ids (undefined: as the launcher). */
  worker?: Ids;
}

export function planServerPrivileges(app: Ids | undefined, worker: Ids | undefined, current: Ids): ServerPlan | string {
  const same = (a: Ids | undefined): boolean => a === undefined || (a.uid === current.uid && a.gid === current.gid);
  if (current.uid !== 0) {
    if (!same(app)) return `cannot run the apps as ${app!.uid}:${app!.gid}: only root can change user`;
    if (!same(worker)) return `cannot run the workers as ${worker!.uid}:${worker!.gid}: only root can change user`;
    return {};
  }
  const w = worker ?? NOBODY;
  if (w.uid === 0) return 'TLS_UID=0: the TLS workers never run as root';
  // An app with the workers' uid could ptrace them and read their memory, keys included.
  if (app !== undefined && app.uid === w.uid) return `the apps and the TLS workers would both run as uid ${w.uid}: give them different users`;
  const plan: ServerPlan = { worker: w };
  if (!same(app)) plan.app = app!;
  return plan;
}
