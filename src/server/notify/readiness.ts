// systemd's readiness protocol for the launcher (Type=notify, see sd_notify(3)): READY=1 once
// it listens with its workers up; RELOADING=1 and READY=1 around each reload, refused or not;
// STOPPING=1 when it stops accepting; STATUS= with the live figures; WATCHDOG=1 every half
// WATCHDOG_USEC while the event loop runs (the ticks are timers) and every worker answers.
// Without NOTIFY_SOCKET, nothing at all.
import { notifySettings, type NotifySettings } from './settings';
import { commandPath, NOTIFY_COMMAND, NotifySender, type Sender } from './sender';
import { monotonicUsec, oneLine } from './status';

/** Without a watchdog, the status is sent this often (when it changed). */
export const STATUS_EVERY_MS = 30000;
/** How long a worker may take to answer a tick's status request at most. */
const ANSWER_MS = 1000;

export interface Probe {
  /** The event loop ran this tick; true if every worker answered too. */
  healthy: boolean;
  /** The live figures (see status.ts). */
  status: string;
  /** Why not healthy: logged once, until healthy again. */
  problem?: string;
}

export class Readiness {
  private timer: NodeJS.Timeout | undefined;
  private probing = false;
  /** The line of the last reload, while it was refused: shown before the figures. */
  private refused: string | undefined;
  private figures = '';
  private sentStatus = '';
  private unhealthy = false;
  /** READY=1 sent: a reload before it (SIGHUP during the start) must not say READY=1 early. */
  private started = false;

  private constructor(
    private readonly sender: Sender | undefined,
    private readonly settings: NotifySettings | undefined,
    private readonly warn: (line: string) => void,
  ) {}

  /** From the launcher's environment; a missing systemd-notify is one log line, not a failure. */
  static fromEnv(env: Readonly<Record<string, string | undefined>>, pid: number, warn: (line: string) => void, via?: (command: string, socket: string) => Sender): Readiness {
    const settings = notifySettings(env, pid);
    if (settings === undefined) return new Readiness(undefined, undefined, warn);
    if (settings.problem !== undefined) warn(settings.problem);
    const command = commandPath(NOTIFY_COMMAND, env.PATH);
    if (command === undefined) {
      warn(`NOTIFY_SOCKET is set, but ${NOTIFY_COMMAND} is not in PATH (${env.PATH ?? ''}): systemd is not told when the server is ready, reloads or stops (install systemd, or use Type=simple)`);
      return new Readiness(undefined, settings, warn);
    }
    return new Readiness(via !== undefined ? via(command, settings.socket) : new NotifySender(command, settings.socket, warn), settings, warn);
  }

  /** Every socket listens and the workers are up. `probe` is asked at each tick from now on. */
  ready(figures: string, probe: (answerMs: number) => Promise<Probe>): void {
    if (this.sender === undefined) return;
    this.figures = figures;
    this.started = true;
    this.send(['READY=1'], true);
    const every = this.settings?.pingEveryMs ?? STATUS_EVERY_MS;
    const answerMs = Math.max(1, Math.min(ANSWER_MS, Math.floor(every / 2)));
    this.timer = setInterval(() => void this.tick(probe, answerMs), every);
    // The listeners keep the launcher running, not this.
    this.timer.unref();
  }

  /** A reload begins (SIGHUP, --watch); synchronous, it ends before the next event. */
  reloading(): void {
    if (this.started) this.sender?.send(['RELOADING=1', `MONOTONIC_USEC=${monotonicUsec()}`]);
  }

  /** The reload is over: `refusedLine` is the log line that said why it was refused, if it was. */
  reloaded(refusedLine: string | undefined): void {
    this.refused = refusedLine;
    if (this.started) this.send(['READY=1'], true);
  }

  /** No longer accepting: the watchdog and the figures stop here, the last status says why. */
  stopping(line: string): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.sender?.send(['STOPPING=1', `STATUS=${oneLine(line)}`]);
  }

  /** The live figures changed (SIGUSR1): sent if they differ from the last ones sent. */
  status(figures: string): void {
    if (this.sender === undefined || this.timer === undefined) return;
    this.figures = figures;
    this.send([], false);
  }

  /** Before the launcher exits: what is queued goes first, for at most `ms`. */
  settled(ms: number): Promise<void> {
    return this.sender?.settled(ms) ?? Promise.resolve();
  }

  /**
   * `assignments` and the status: the status always with a state change (`always`), else
   * only if it differs from the last one sent. Nothing to send, nothing sent.
   */
  private send(assignments: string[], always: boolean): void {
    if (this.sender === undefined) return;
    const status = `STATUS=${oneLine(this.refused !== undefined ? `${this.refused} | ${this.figures}` : this.figures)}`;
    const out = always || status !== this.sentStatus ? [...assignments, status] : assignments;
    if (out.length === 0) return;
    this.sentStatus = status;
    // A state change never merges with another message: systemd must see each in turn.
    this.sender.send(out, !always);
  }

  private async tick(probe: (answerMs: number) => Promise<Probe>, answerMs: number): Promise<void> {
    // A tick still waiting for the workers: this one is not due twice.
    if (this.probing) return;
    this.probing = true;
    const p = await probe(answerMs);
    this.probing = false;
    if (this.timer === undefined || this.sender === undefined) return;
    if (!p.healthy && !this.unhealthy && p.problem !== undefined && this.settings?.pingEveryMs !== undefined) this.warn(`watchdog: ${p.problem}: WATCHDOG=1 not sent`);
    this.unhealthy = !p.healthy;
    this.figures = p.status;
    this.send(p.healthy && this.settings?.pingEveryMs !== undefined ? ['WATCHDOG=1'] : [], false);
  }
}
