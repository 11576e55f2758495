// systemd's end of sd_notify(3) for the tests: a real AF_UNIX datagram socket, read by
// test/apps/notify-socket, each message with the pid systemd would attribute it to.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Test } from 'tap';
import { ROOT, sleep, within } from './helpers';

const READER = join(ROOT, 'test', 'apps', 'notify-socket');

export interface Message {
  pid: number;
  uid: number;
  /** The datagram: NAME=value assignments, one a line. */
  data: string;
}

/** The service manager's end: a datagram socket bound at `where` (a path or @name). */
export class NotifySocket {
  readonly messages: Message[] = [];
  private readonly proc: ChildProcess;
  private bound: Promise<void>;
  private buffered = '';

  constructor(t: Test, readonly where: string) {
    this.proc = spawn(READER, [where], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => void this.proc.kill());
    this.bound = new Promise((resolve, reject) => {
      this.proc.stdout!.setEncoding('utf8');
      this.proc.stdout!.on('data', (d: string) => {
        this.buffered += d;
        let nl: number;
        while ((nl = this.buffered.indexOf('\n')) >= 0) {
          const line = JSON.parse(this.buffered.slice(0, nl)) as Message | { bound: string };
          this.buffered = this.buffered.slice(nl + 1);
          if ('bound' in line) resolve();
          // systemd-notify --pid (root, sending for the main PID) adds MAINPID= naming the very
          // pid it sends as: no change for systemd, and not the server's own words.
          else this.messages.push({ ...line, data: line.data.replace(new RegExp(`^MAINPID=${line.pid}\n`), '') });
        }
      });
      this.proc.once('exit', (code) => reject(new Error(`the notify socket's reader exited with ${code}`)));
    });
  }

  ready(): Promise<void> {
    return within(this.bound, 10000, 'the notify socket');
  }

  /** What the server sent, without systemd-notify's own BARRIER=1. */
  sent(): Message[] {
    return this.messages.filter((m) => m.data !== 'BARRIER=1');
  }

  /** The messages that change the service's state, each as its assignments. */
  states(): Array<Map<string, string>> {
    return this.sent()
      .map((m) => assignments(m.data))
      .filter((a) => a.has('READY') || a.has('RELOADING') || a.has('STOPPING'));
  }

  /** The first message from index `from` on whose assignments pass `test`. */
  async next(from: number, test: (a: Map<string, string>) => boolean, ms = 15000): Promise<{ at: number; a: Map<string, string>; m: Message }> {
    for (let waited = 0; waited < ms; waited += 20) {
      const sent = this.sent();
      for (let i = from; i < sent.length; i++) {
        const a = assignments(sent[i]!.data);
        if (test(a)) return { at: i, a, m: sent[i]! };
      }
      await sleep(20);
    }
    throw new Error(`no such message after ${ms} ms; got ${JSON.stringify(this.sent())}`);
  }
}

export function assignments(data: string): Map<string, string> {
  return new Map(data.split('\n').filter((l) => l !== '').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

