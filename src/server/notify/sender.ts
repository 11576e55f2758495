// Sends the messages to systemd's notify socket through systemd-notify(1), one process at a
// time so that they arrive in order. Node has no AF_UNIX datagram socket; the npm packages
// that add one (sd-notify, unix-dgram) are native add-ons, built per Node version and not
// bundled. systemd-notify ships with systemd, wherever NOTIFY_SOCKET can be set, and
// handles what a sender of our own would have to: abstract sockets (`@name`), and the
// attribution of the message to the service. On systemd 252, run as root, it sends as the
// process --pid names (the server's spawner runs it for the acceptor, the service's main
// PID), or else as the process that started it: NotifyAccess=main suffices. Not root, it
// sends as itself, then waits until systemd has read the message (BARRIER=1), so that it is
// not dropped for coming from a process already gone (NotifyAccess=all).
// Never awaited by the server: a message waits in the queue while the previous one goes.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { errorWords } from '../../messages';
import { commandMissing } from '../../process/command-path';
import { mergeAssignments } from './status';

export const NOTIFY_COMMAND = 'systemd-notify';
/** systemd-notify waits up to 5 s for systemd to read its message: beyond this it is killed. */
const GIVE_UP_MS = 10000;

/** Where execvp would find `name` in PATH; undefined when nowhere. */
export function commandPath(name: string, path: string | undefined): string | undefined {
  const dirs = (path ?? '/usr/local/bin:/usr/bin:/bin').split(':');
  return dirs.map((d) => join(d || '.', name)).find((c) => commandMissing(c, undefined) === undefined);
}

interface Queued {
  assignments: string[];
  /** WATCHDOG=1 and STATUS= only: may be merged with the next routine one. */
  routine: boolean;
}

/** Who sends the assignments: NotifySender here, or the spawner for an acceptor that starts no process. */
export interface Sender {
  send(assignments: string[], routine?: boolean): void;
  /** Resolves once every message queued has gone, or after `ms`. */
  settled(ms: number): Promise<void>;
}

export class NotifySender implements Sender {
  private readonly queue: Queued[] = [];
  private busy = false;
  /** A failure was logged: the next ones are not, until one succeeds. */
  private failing = false;
  private readonly idle: Array<() => void> = [];

  constructor(
    private readonly command: string,
    private readonly socket: string,
    private readonly warn: (line: string) => void,
    /** Root sending for another process (the spawner, for the acceptor): as that pid, which systemd then takes as the main PID's. */
    private readonly asPid?: number,
  ) {}

  send(assignments: string[], routine = false): void {
    const last = this.queue[this.queue.length - 1];
    if (routine && last?.routine === true) last.assignments = mergeAssignments(last.assignments, assignments);
    else this.queue.push({ assignments, routine });
    this.next();
  }

  /** Resolves once every message queued has gone, or after `ms`. */
  settled(ms: number): Promise<void> {
    if (!this.busy && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.idle.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private spawn(assignments: string[]) {
    return spawn(this.command, this.asPid !== undefined ? [`--pid=${this.asPid}`, ...assignments] : assignments, { env: { NOTIFY_SOCKET: this.socket }, stdio: ['ignore', 'ignore', 'pipe'], cwd: '/' });
  }

  private next(): void {
    if (this.busy) return;
    const m = this.queue.shift();
    if (m === undefined) {
      for (const f of this.idle.splice(0)) f();
      return;
    }
    this.busy = true;
    let stderr = '';
    let ended = false;
    let timer: NodeJS.Timeout | undefined;
    const done = (failure: string | undefined): void => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      if (failure === undefined) this.failing = false;
      else if (!this.failing) {
        this.failing = true;
        this.warn(`${NOTIFY_COMMAND} ${m.assignments[0]!.slice(0, 40)}: ${failure}; not told to systemd (NOTIFY_SOCKET=${this.socket})`);
      }
      this.busy = false;
      this.next();
    };
    // Most failures come as 'error'; one thrown here must not end the launcher.
    const child = ((): ReturnType<typeof this.spawn> | string => {
      try {
        return this.spawn(m.assignments);
      } catch (e) {
        return errorWords(e);
      }
    })();
    if (typeof child === 'string') return done(child);
    timer = setTimeout(() => child.kill('SIGKILL'), GIVE_UP_MS);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      if (stderr.length < 1000) stderr += d;
    });
    child.on('error', (e) => done(errorWords(e)));
    child.on('close', (code, signal) => {
      if (code === 0) return done(undefined);
      const said = stderr.split('\n').find((l) => l.trim() !== '');
      done(said ?? (signal !== null ? `killed by ${signal}` : `exit ${code}`));
    });
  }
}
