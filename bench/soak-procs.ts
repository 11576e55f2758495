// `make soak`: what it reads of a server's processes in /proc: its workers, fds, zombies.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { descendants, processes } from './procs';

/** The TLS workers: the launcher's children that run the launcher's own executable. */
export function workersOf(launcher: number): number[] {
  let exe: string;
  try {
    exe = readlinkSync(`/proc/${launcher}/exe`);
  } catch {
    return [];
  }
  return [...processes().values()]
    .filter((p) => p.ppid === launcher)
    .map((p) => p.pid)
    .filter((pid) => {
      try {
        return readlinkSync(`/proc/${pid}/exe`) === exe;
      } catch {
        return false;
      }
    });
}

export function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

/** Everything under the launcher but its workers: apps, the implicit rows' shells, zombies of either. */
export function leftUnder(launcher: number): Array<{ pid: number; comm: string; zombie: boolean }> {
  const workers = new Set(workersOf(launcher));
  return descendants([launcher], processes())
    .filter((p) => p.pid !== launcher && !workers.has(p.pid))
    .map((p) => ({ pid: p.pid, comm: p.comm, zombie: stateOf(p.pid) === 'Z' }));
}

function stateOf(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return '';
  }
}
