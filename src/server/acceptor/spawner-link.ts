// The acceptor's end of the spawner: started while the acceptor is still root, as root,
// with an IPC channel; JSON on it, the handles riding along (see protocol.ts).
import { fork, type ChildProcess } from 'node:child_process';
import { SMALL_YOUNG_GENERATION } from '../../runtime/young-generation';
import type { FromSpawner, SpawnerSetup, ToSpawner } from '../protocol';

/** For developers (make profile): node options for the workers, which the spawner forks (its own: UCSPI_TLS_SPAWNER_NODE_ARGS). */
function developerArgs(): Record<string, string> {
  const args = process.env.UCSPI_TLS_WORKER_NODE_ARGS;
  return args !== undefined ? { UCSPI_TLS_WORKER_NODE_ARGS: args } : {};
}

/** How long the spawner may take to stop its workers and exit before it is killed. */
const STOP_MS = 5000;

export class SpawnerLink {
  private child: ChildProcess | undefined;
  /** Handles asked back ('dup') and not yet here: one that came after a disconnect would crash Node's IPC. */
  private handlesDue = 0;
  private handlesIn: (() => void) | undefined;

  constructor(
    private readonly file: string,
    private readonly onMessage: (m: FromSpawner, handle: unknown) => void,
    private readonly onExit: (code: number | null, signal: string | null) => void,
  ) {}

  start(setup: SpawnerSetup): void {
    const child = fork(this.file, [], {
      // Its own copy of nothing: what it needs comes in `setup`.
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...developerArgs() },
      // No cwd: it inherits this process's folder (relative paths of the TLS files, and each
      // app's), with no chdir that a user without access to it would fail.
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      execArgv: [...SMALL_YOUNG_GENERATION, '--use-openssl-ca', ...(process.env.UCSPI_TLS_SPAWNER_NODE_ARGS?.split(' ').filter((a) => a !== '') ?? [])],
    });
    this.child = child;
    child.on('error', () => {}); // a send to a spawner gone: its 'exit' tells the rest
    child.on('message', (m: FromSpawner, handle: unknown) => {
      if (m.t === 'dup' && this.handlesDue > 0 && --this.handlesDue === 0) this.handlesIn?.();
      this.onMessage(m, handle);
    });
    child.once('exit', (code, signal) => {
      this.child = undefined;
      this.onExit(code, signal);
    });
    this.send({ t: 'init', setup });
  }

  /** False when it cannot go (the spawner is gone); a handle that cannot go is closed. */
  send(m: ToSpawner, handle?: unknown): boolean {
    const child = this.child;
    if (child === undefined || !child.connected) {
      const h = handle as { destroy?(): void; close?(): void } | undefined;
      if (h?.destroy !== undefined) h.destroy();
      else h?.close?.();
      return false;
    }
    if (m.t === 'dup') this.handlesDue++;
    // Raw handles are what Node's IPC passes; its types know only sockets and servers.
    child.send(m, handle as undefined, {}, () => {});
    return true;
  }

  /** Disconnect: the spawner stops its workers and exits; resolves once it has. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    this.child = undefined;
    // Node acknowledges each handle it receives: not possible once disconnected (an internal
    // assertion ends the process). So the handles on their way come in first.
    if (this.handlesDue > 0) {
      await new Promise<void>((resolve) => {
        this.handlesIn = resolve;
        setTimeout(resolve, 1000).unref();
      });
    }
    return new Promise((resolve) => {
      child.removeAllListeners('exit');
      child.once('exit', () => resolve());
      if (child.connected) child.disconnect();
      // Root, and this process may no longer be: it cannot be killed from here, only left.
      setTimeout(resolve, STOP_MS).unref();
    });
  }
}
