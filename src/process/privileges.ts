// Who runs what: the app as $UID/$GID, the helper as $TLS_UID/$TLS_GID, both only when the
// helper starts as root. The decision is pure; dropPrivileges does it.
import type { Ids } from './ids';

export interface PrivilegePlan {
  /** Spawn the app with these ids. */
  app?: Ids;
  /** The helper becomes this after the app runs and before it touches the network. */
  helper?: Ids;
}

export function planPrivileges(app: Ids | undefined, helper: Ids | undefined, current: Ids): PrivilegePlan | string {
  const plan: PrivilegePlan = {};
  for (const [who, ids] of [['the app', app], ['the helper', helper]] as const) {
    if (ids === undefined || (ids.uid === current.uid && ids.gid === current.gid)) continue;
    if (current.uid !== 0) return `cannot run ${who} as ${ids.uid}:${ids.gid}: only root can change user`;
    if (who === 'the app') plan.app = ids;
    else plan.helper = ids;
  }
  return plan;
}

/** Supplementary groups first: they would outlive setgid. Then the group, then the user. */
export function dropPrivileges(ids: Ids): void {
  process.setgroups?.([]);
  process.setgid?.(ids.gid);
  process.setuid?.(ids.uid);
}
