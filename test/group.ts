// A command started in a process group of its own, as a shell runs a job: stopping it
// signals the whole group (make, sh, tcpserver, the helpers), and tells whether any is left.
import { spawn, type ChildProcess } from 'node:child_process';
import { sleep } from './helpers';

export class Job {
  out = '';
  err = '';
  readonly proc: ChildProcess;
  private readonly exited: Promise<number | null>;
  constructor(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string) {
    this.proc = spawn(cmd, args, { env, cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    this.proc.stderr!.on('data', (d: Buffer) => (this.err += d.toString()));
    this.exited = new Promise((r) => this.proc.once('exit', (code) => r(code)));
  }
  /** Wait until the output (stdout and stderr) matches; what it is then. */
  async output(re: RegExp, ms = 60000): Promise<string> {
    for (let i = 0; i < ms / 50; i++) {
      if (re.test(this.out + this.err)) return this.out + this.err;
      if (this.proc.exitCode !== null) break;
      await sleep(50);
    }
    throw new Error(`no ${re} in the output: ${this.out}${this.err}`);
  }
  /** Whether any process of the group is still there. */
  groupAlive(): boolean {
    try {
      process.kill(-this.proc.pid!, 0);
      return true;
    } catch {
      return false;
    }
  }
  /** SIGTERM to the group, as Ctrl-C would go to a foreground job; true if all are gone within ms. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', ms = 5000): Promise<boolean> {
    if (this.groupAlive()) process.kill(-this.proc.pid!, signal);
    await Promise.race([this.exited, sleep(ms)]);
    for (let i = 0; i < ms / 50 && this.groupAlive(); i++) await sleep(50);
    const clean = !this.groupAlive();
    if (!clean) process.kill(-this.proc.pid!, 'SIGKILL');
    return clean;
  }
  exitCode(): Promise<number | null> {
    return this.exited;
  }
}

/** Wait until something listens on 127.0.0.1:port (state 0A in /proc/net/tcp). */
export async function listening(port: number, ms = 60000): Promise<void> {
  const { readFileSync } = await import('node:fs');
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (let i = 0; i < ms / 50; i++) {
    if (new RegExp(`^\\s*\\d+: 0100007F:${hex} 00000000:0000 0A`, 'm').test(readFileSync('/proc/net/tcp', 'utf8'))) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}
