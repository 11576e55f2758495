// The stop sequence on SIGTERM/SIGINT: the sessions get a grace period to end on their own,
// then their apps get SIGTERM, then, still there some seconds later, SIGKILL. A second signal
// cuts the grace period short. The launcher has stopped accepting before this starts.

/** How long after SIGTERM an app still running gets SIGKILL. */
export const KILL_AFTER_MS = 5000;
/** How long after SIGKILL the last sessions may take to deliver their bytes before the server exits anyway. */
export const GIVE_UP_AFTER_MS = 5000;

export interface DrainHooks {
  /** Sessions not ended yet. */
  left(): number;
  /** Send the signal to every app still running; returns how many got it. */
  signalApps(signal: 'SIGTERM' | 'SIGKILL'): number;
  log(line: string): void;
  /** Stop the workers and exit: every session ended, or the last step gave up on them. */
  exit(): void;
}

export class Drain {
  private started = false;
  private termSent = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly graceMs: number,
    private readonly hooks: DrainHooks,
  ) {}

  get draining(): boolean {
    return this.started;
  }

  /** SIGTERM or SIGINT: the first starts the grace period, a later one ends it. */
  signal(name: string): void {
    const h = this.hooks;
    if (!this.started) {
      this.started = true;
      if (h.left() === 0) {
        h.log(`${name}: no longer accepting; no session left`);
        return h.exit();
      }
      if (this.graceMs === 0) return this.term(`${name}: no longer accepting;`);
      h.log(`${name}: no longer accepting; ${h.left()} session(s) left, ${this.graceMs / 1000} s to end`);
      this.later(this.graceMs, () => this.term('grace period over:'));
      return;
    }
    if (!this.termSent) this.term(`${name} again:`);
    else h.log(`${name} again: already ending ${h.left()} session(s)`);
  }

  /** A session ended: the last one ends the server. */
  ended(): void {
    if (this.started && this.hooks.left() === 0) {
      clearTimeout(this.timer);
      this.hooks.exit();
    }
  }

  private term(prefix: string): void {
    this.termSent = true;
    const sent = this.hooks.signalApps('SIGTERM');
    this.hooks.log(`${prefix} ${this.hooks.left()} session(s) left, SIGTERM sent to ${sent} app(s)`);
    if (this.hooks.left() === 0) return this.hooks.exit();
    this.later(KILL_AFTER_MS, () => {
      const killed = this.hooks.signalApps('SIGKILL');
      this.hooks.log(`${this.hooks.left()} session(s) left ${KILL_AFTER_MS / 1000} s after SIGTERM: SIGKILL sent to ${killed} app(s)`);
      this.later(GIVE_UP_AFTER_MS, () => {
        this.hooks.log(`${this.hooks.left()} session(s) still delivering their last bytes: closed`);
        this.hooks.exit();
      });
    });
  }

  private later(ms: number, fn: () => void): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(fn, ms);
  }
}
