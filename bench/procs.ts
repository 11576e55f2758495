// What the bench reads from /proc: process trees, private memory, CPU time.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface Proc {
  pid: number;
  ppid: number;
  comm: string;
  /** utime + stime, clock ticks */
  ticks: number;
  /** cutime + cstime: the children this process has reaped, clock ticks */
  childTicks: number;
}

/** One /proc/PID/stat line. Pure. The command name may hold spaces and parentheses. */
export function parseStat(text: string): Proc | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  // Fields from the state on: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
  const f = text.slice(close + 2).split(' ');
  const n = (i: number): number => Number(f[i]);
  return { pid: Number(text.slice(0, open)), ppid: n(1), comm: text.slice(open + 1, close), ticks: n(11) + n(12), childTicks: n(13) + n(14) };
}

/** Private_Clean + Private_Dirty from /proc/PID/smaps_rollup, KiB. Pure. */
export function parsePrivateKiB(text: string): number {
  const get = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return get('Private_Clean') + get('Private_Dirty');
}

/** Private_Dirty from /proc/PID/smaps_rollup, KiB. Pure. */
export function parsePrivateDirtyKiB(text: string): number {
  return Number(/^Private_Dirty:\s+(\d+) kB/m.exec(text)?.[1] ?? NaN);
}

/** Every process now, by pid (those that vanish while read are left out). */
export function processes(): Map<number, Proc> {
  const all = new Map<number, Proc>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const p = parseStat(readFileSync(`/proc/${name}/stat`, 'latin1'));
      if (p !== undefined) all.set(p.pid, p);
    } catch {
      // exited meanwhile
    }
  }
  return all;
}

/** The roots and all their descendants. Pure. */
export function descendants(roots: readonly number[], all: ReadonlyMap<number, Proc>): Proc[] {
  const children = new Map<number, Proc[]>();
  for (const p of all.values()) {
    const list = children.get(p.ppid);
    if (list === undefined) children.set(p.ppid, [p]);
    else list.push(p);
  }
  const out: Proc[] = [];
  const todo = roots.map((r) => all.get(r)).filter((p): p is Proc => p !== undefined);
  while (todo.length > 0) {
    const p = todo.pop()!;
    out.push(p);
    todo.push(...(children.get(p.pid) ?? []));
  }
  return out;
}

/** Private KiB of one process; 0 once it is gone (a zombie has none). */
export function privateKiB(pid: number): number {
  try {
    const kib = parsePrivateKiB(readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1'));
    return Number.isFinite(kib) ? kib : 0;
  } catch {
    return 0;
  }
}

export function sumPrivateKiB(pids: readonly number[]): number {
  return pids.reduce((s, pid) => s + privateKiB(pid), 0);
}

let tickMs: number | undefined;
/** One clock tick in ms (USER_HZ, 100 on Linux as a rule). */
export function msPerTick(): number {
  if (tickMs === undefined) {
    const hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    tickMs = 1000 / (Number.isFinite(hz) && hz > 0 ? hz : 100);
  }
  return tickMs;
}

/** The pids whose environment holds `marker` (a whole NAME=VALUE entry). */
export function pidsWithEnv(marker: string): number[] {
  const out: number[] = [];
  const entry = Buffer.from(`\0${marker}\0`);
  const first = Buffer.from(`${marker}\0`);
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${name}/environ`);
      if (env.includes(entry) || env.subarray(0, first.length).equals(first)) out.push(Number(name));
    } catch {
      // gone, or a kernel thread
    }
  }
  return out;
}
