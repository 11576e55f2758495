// What systemd tells a service of type notify in its environment, read once. Pure.
// See sd_notify(3) and sd_watchdog_enabled(3).

/** Ours alone: an app given them could speak for the service (READY=1, WATCHDOG=1, STOPPING=1). */
export const NOTIFY_VARIABLES = ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID'] as const;

export interface NotifySettings {
  /** A path, or `@name` for the abstract namespace. */
  socket: string;
  /** How often WATCHDOG=1 is due: half of WATCHDOG_USEC; undefined without a watchdog. */
  pingEveryMs?: number;
  /** Why a watchdog asked for is not served: one line for the log. */
  problem?: string;
}

/** undefined when NOTIFY_SOCKET is unset or empty: not started by systemd as Type=notify. */
export function notifySettings(env: Readonly<Record<string, string | undefined>>, pid: number): NotifySettings | undefined {
  const socket = env.NOTIFY_SOCKET;
  if (socket === undefined || socket === '') return undefined;
  const usec = env.WATCHDOG_USEC;
  if (usec === undefined || usec === '') return { socket };
  // As sd_watchdog_enabled(3): WATCHDOG_PID names the process the watchdog is for.
  const forPid = env.WATCHDOG_PID;
  if (forPid !== undefined && forPid !== '' && forPid !== String(pid)) return { socket };
  if (!/^\d{1,15}$/.test(usec) || Number(usec) === 0) {
    return { socket, problem: `WATCHDOG_USEC=${usec} is not a number of microseconds: no WATCHDOG=1 sent` };
  }
  return { socket, pingEveryMs: Math.max(1, Math.floor(Number(usec) / 2000)) };
}
