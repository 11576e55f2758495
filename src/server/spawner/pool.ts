// The TLS workers: forked as TLS_UID, given the setup, restarted when one dies, chosen in turn.
import { fork, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { basename } from 'node:path';
import { errorWords } from '../../messages';
import type { Ids } from '../../process/ids';
import { closeUndeliveredHandles } from '../../runtime/ipc-handles';
import { SMALL_YOUNG_GENERATION } from '../../runtime/young-generation';
import type { FromWorker, ToWorker, WorkerSetup } from '../protocol';

export interface WorkerSlot {
  /** 1..N, kept by the worker that replaces a dead one. */
  index: number;
  pid: number;
  child: ChildProcess;
  ready: boolean;
  /** What is sent to it until it says it is ready (see send); undefined from then on. */
  held: Array<{ m: ToWorker; handle: unknown }> | undefined;
  /** Launcher connection ids served by this worker. */
  conns: Set<number>;
  startedAt: number;
}

export interface PoolEvents {
  message(w: WorkerSlot, m: FromWorker): void;
  /** A worker died on its own (not stopped by the pool); another is being started. */
  died(w: WorkerSlot, code: number | null, signal: NodeJS.Signals | null): void;
  /** A replacement is up. */
  restarted(w: WorkerSlot): void;
}

/** A worker that dies sooner than this after its start is restarted only after this long. */
const RESTART_DELAY_MS = 1000;

/** A handle that will not reach a worker: closed, or it stays open in the spawner. */
function closeHandle(handle: unknown): void {
  const h = handle as { destroy?(): void; close?(): void } | undefined;
  if (h?.destroy !== undefined) h.destroy();
  else h?.close?.();
}

export class Pool {
  private readonly slots: Array<WorkerSlot | undefined>;
  private next = 0;
  private stopping = false;

  constructor(
    private readonly file: string,
    count: number,
    private setup: WorkerSetup,
    private readonly ids: Ids | undefined,
    private readonly events: PoolEvents,
  ) {
    this.slots = new Array<WorkerSlot | undefined>(count).fill(undefined);
  }

  /** Start every worker; rejects with the line to log when one cannot start. */
  start(): Promise<void> {
    return Promise.all(this.slots.map((_, i) => this.fork(i + 1, false))).then(() => undefined);
  }

  /** `replacing`: started in place of one that died, so its own death is one more, not a failed start. */
  private fork(index: number, replacing: boolean): Promise<WorkerSlot> {
    return new Promise((resolve, reject) => {
      let child: ChildProcess;
      let code: number | undefined;
      try {
        // The worker's code comes on its stdin (`node -`), opened here by the spawner: a
        // worker as TLS_UID then needs no right to the install tree's files or folders, and
        // its own file descriptor, since each reader moves the file's offset to the end.
        code = openSync(this.file, 'r');
        // Its one argument names it in ps(1): `node - ucspi-tls-server-worker`.
        child = fork('-', [basename(this.file, '.js')], {
          // Buffers in the credentials pass as Buffers.
          serialization: 'advanced',
          stdio: [code, 'ignore', 'inherit', 'ipc'],
          // Its young generation stays small: see young-generation.ts. And no bundled root
          // store, as for the executables (see bin/ucspi-tls-server).
          // For developers (make profile): UCSPI_TLS_WORKER_NODE_ARGS, node options added.
          execArgv: [...SMALL_YOUNG_GENERATION, '--use-openssl-ca', ...(process.env.UCSPI_TLS_WORKER_NODE_ARGS?.split(' ').filter((a) => a !== '') ?? [])],
          // The worker needs nothing of the spawner's environment or directory.
          env: {},
          cwd: '/',
          ...(this.ids !== undefined ? { uid: this.ids.uid, gid: this.ids.gid } : {}),
        });
      } catch (e) {
        return reject(new Error(`cannot start a TLS worker: ${(e as Error).message}`));
      } finally {
        if (code !== undefined) closeSync(code);
      }
      const slot: WorkerSlot = { index, pid: child.pid ?? 0, child, ready: false, held: [], conns: new Set(), startedAt: Date.now() };
      this.slots[index - 1] = slot;
      child.on('error', (e) => {
        // Before the worker is up: node could not be started (as TLS_UID, say); no 'exit' follows.
        if (!slot.ready) {
          this.dropHeld(slot);
          reject(new Error(`cannot start a TLS worker (${process.execPath} as ${this.ids !== undefined ? `${this.ids.uid}:${this.ids.gid}` : 'this user'}): ${errorWords(e)}`));
        }
        // Afterwards, a send to a worker that is gone; its 'exit' tells the rest.
      });
      child.on('message', (m: FromWorker) => {
        if (m.t === 'ready' && !slot.ready) {
          // What waited for it goes first, in order (a broken one gets it too, as before).
          const held = slot.held ?? [];
          slot.held = undefined;
          for (const waiting of held) this.send(slot, waiting.m, waiting.handle);
          if (m.broken !== undefined) return reject(new Error(m.broken));
          slot.ready = true;
          return resolve(slot);
        }
        this.events.message(slot, m);
      });
      child.once('exit', (code, signal) => {
        // Handles sent to it and not yet taken: Node's IPC holds them open, and nobody else would close them.
        closeUndeliveredHandles(child);
        this.dropHeld(slot);
        if (!slot.ready) {
          reject(new Error(`a TLS worker could not start: it ${signal !== null ? `died on ${signal}` : `exited with ${code}`}`));
          // At the server's start, that ends the server (see Launcher.run). A replacement
          // already has connections handed to it (pick() does not wait for 'ready'): its
          // death is reported and it is replaced as any worker's is, or they never end.
          if (!replacing) return;
        }
        if (this.slots[index - 1] === slot) this.slots[index - 1] = undefined;
        if (this.stopping) return;
        this.events.died(slot, code, signal);
        const delay = Date.now() - slot.startedAt < RESTART_DELAY_MS ? RESTART_DELAY_MS : 0;
        setTimeout(() => {
          if (this.stopping) return;
          this.fork(index, true).then(
            (w) => this.events.restarted(w),
            () => {}, // its own exit is logged as a death, and retried
          );
        }, delay);
      });
      this.send(slot, { t: 'init', setup: this.setup });
    });
  }

  /** New credentials for every worker's next handshakes, and for workers started from now on. */
  reload(creds: WorkerSetup['creds']): void {
    this.setup = { ...this.setup, creds };
    // A worker still starting got the old set with its init: this follows it, in order.
    for (const w of this.slots) if (w !== undefined) this.send(w, { t: 'reload', creds });
  }

  /** The next live worker in turn; undefined when none is running. */
  pick(): WorkerSlot | undefined {
    for (let i = 0; i < this.slots.length; i++) {
      const w = this.slots[(this.next + i) % this.slots.length];
      if (w !== undefined && w.child.connected) {
        this.next = (this.next + i + 1) % this.slots.length;
        return w;
      }
    }
    return undefined;
  }

  /** The workers running now. */
  live(): WorkerSlot[] {
    return this.slots.filter((w): w is WorkerSlot => w !== undefined && w.child.connected);
  }

  /** A handle that cannot go (the worker is gone) is closed here: nobody else would. */
  send(w: WorkerSlot, m: ToWorker, handle?: unknown): void {
    if (!w.child.connected) return closeHandle(handle);
    // Until its 'ready', the worker's code may not be listening yet: Node in the worker
    // takes in the handles that arrive meanwhile and starts reading each socket, so a
    // client's bytes meant for the app, or its EOF, would be read (and the socket closed)
    // before the worker could stop it. They wait here, in order, and go once it is ready.
    if (w.held !== undefined && m.t !== 'init') {
      w.held.push({ m, handle });
      return;
    }
    // Raw handles are what Node's IPC passes; its types know only sockets and servers.
    w.child.send(m, handle as undefined, {}, () => {});
  }

  /** A worker gone before it was ready: what waited for it is closed. */
  private dropHeld(w: WorkerSlot): void {
    for (const { handle } of w.held ?? []) closeHandle(handle);
    w.held = undefined;
  }

  /** Disconnect every worker (each exits then) and wait until all are gone. */
  stop(): Promise<void> {
    this.stopping = true;
    const live = this.slots.filter((w): w is WorkerSlot => w !== undefined && w.child.exitCode === null && w.child.signalCode === null);
    return Promise.all(
      live.map(
        (w) =>
          new Promise<void>((resolve) => {
            w.child.once('exit', () => resolve());
            if (w.child.connected) w.child.disconnect();
            // A worker that does not go: it holds nothing the spawner still needs.
            setTimeout(() => w.child.kill('SIGKILL'), 2000).unref();
          }),
      ),
    ).then(() => undefined);
  }
}
