// ucspi-tls-server's launcher: reads and checks everything once, listens, accepts (never
// reading a byte), starts each app with the connection on fds 0/1, hands the app's
// channels and the connection (unread) to a TLS worker, and logs each connection's start
// and end. See ucspi-tls-server(1).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeSync } from 'node:fs';
import type { Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { createLogger, fatalLine } from '../log';
import { cannotRunMessage, errorWords, keyDefaultMessage, usageMessage } from '../messages';
import { IMPLICIT_STUB, spawnFailureStatus } from '../process/app';
import { closeInheritedFds } from '../process/client-fds';
import { commandMissing } from '../process/command-path';
import { appEnvironment } from '../process/environment';
import type { Credentials } from '../tls/credentials';
import { CredentialsError, loadCredentials } from '../tls/load';
import { TICKET_KEY_BYTES } from '../tls/credentials';
import { VERSION } from '../version';
import { EXIT_CONFIG, EXIT_USAGE } from '../contract/exit-codes';
import { Access, type Admission } from './access/access';
import { Drain } from './lifecycle/drain';
import type { FailureReason } from '../tls/failure';
import { Counters, figureLines, type RefusalReason, type Snapshot, type WorkerFigures } from './lifecycle/figures';
import { keepYoungGenerationSmall } from '../runtime/young-generation';
import { isSessionVariable } from '../session/policy-options';
import { stopReading } from '../runtime/stream-handle';
import { Listener, type Target } from './listener';
import { endLine, listeningLine, place, startLine, workerDiedLine, type Ending, type Peer } from './log-lines';
import { parseServerArgs, SERVER_PROGRAM, USAGE, type ServerConfig } from './options';
import { Pool, type WorkerSlot } from './pool';
import { ownMemory } from './lifecycle/memory';
import { planServerPrivileges, type ServerPlan } from './privileges';
import type { ChannelName, FromWorker } from './protocol';
import { clientEnds, PROXY_VARIABLES, proxyVariables, refusedLine, viaWords } from './proxy/env';
import type { ProxyHeader } from './proxy/header';
import { headerTimeoutMs, requiresHeader } from './proxy/options';
import { readProxyHeader } from './proxy/read';
import { opensslCheck, Reloader } from './reload/reload';
import { RulesFile } from './access/rules-file';
import { STALE_TCP_VARIABLES, tcpVariables, unmapped } from './tcp-env';
import { FileWatcher, policyFiles } from './reload/watch';
import { reusePortRefusal } from './lifecycle/reuse-port';
import { Readiness, type Probe } from './notify/readiness';
import { NOTIFY_VARIABLES } from './notify/settings';
import { statusLine } from './notify/status';
import { MetricsServer } from './metrics/serve';
import { MetricsState } from './metrics/state';
import { expiryWarnings } from '../tls/expiry';

/** The worker's entry, built beside this one (build/ucspi-tls-server-worker.js). */
const WORKER_FILE = join(__dirname, '..', '..', 'ucspi-tls-server-worker.js');

interface Conn {
  id: number;
  pid: number;
  worker: WorkerSlot;
  child: ChildProcess;
  /** Held, never read, until it goes to the worker with the app's channels. */
  client: Socket | undefined;
  startedAt: number;
  ending?: Ending;
  workerLost: boolean;
  done: boolean;
  /** Its place in the per-address count. */
  release: () => void;
}

function fatal(message: string, status: number): never {
  fatalLine(status === EXIT_USAGE ? usageMessage(message, SERVER_PROGRAM) : message, SERVER_PROGRAM, 2);
  process.exit(status);
}

async function main(): Promise<void> {
  // Until the figures' handler is in place (see Launcher.run): never Node's default, the inspector.
  process.on('SIGUSR1', () => {});
  const parsed = parseServerArgs(process.argv.slice(2), process.env, availableParallelism(), process.pid);
  if (parsed.kind === 'help') {
    writeSync(1, `${USAGE}\n`);
    process.exit(0);
  }
  if (parsed.kind === 'version') {
    writeSync(1, `${SERVER_PROGRAM} ${VERSION}\n`);
    process.exit(0);
  }
  if (parsed.kind === 'error') fatal(parsed.message, parsed.status);
  const config = parsed.config;
  if (config.reusePort) {
    const refused = reusePortRefusal(process.versions.node);
    if (refused !== undefined) fatal(refused, EXIT_CONFIG);
  }
  keepYoungGenerationSmall();

  // Fds inherited without close-on-exec would leak into every app.
  closeInheritedFds(new Set(config.listen.kind === 'systemd' ? config.listen.fds : []));

  const plan = planServerPrivileges(config.appIds, config.workerIds, { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
  if (typeof plan === 'string') fatal(plan, EXIT_CONFIG);

  const missing = commandMissing(config.app[0]!, process.env.PATH);
  if (missing !== undefined) fatal(cannotRunMessage(config.app[0]!, missing, process.env.PATH), spawnFailureStatus(missing));
  if (!existsSync(WORKER_FILE)) fatal(`the TLS worker ${WORKER_FILE} is missing`, EXIT_CONFIG);

  let creds: Credentials;
  try {
    creds = loadCredentials(config.tls);
  } catch (e) {
    if (e instanceof CredentialsError) fatal(keyDefaultMessage(e.message, process.env), EXIT_CONFIG);
    throw e;
  }
  // Without TICKETKEYFILE, one key for every worker: a client resumes whichever it reaches.
  // Made once: a reload keeps it, so tickets issued before it still resume.
  creds.ticketKeys ??= randomBytes(TICKET_KEY_BYTES);

  const rules = config.rules !== undefined ? new RulesFile(config.rules.path, config.rules.optional) : undefined;
  const unusable = rules?.check();
  if (unusable !== undefined) fatal(unusable, EXIT_CONFIG);

  await new Launcher(config, plan, creds, rules).run();
}

class Launcher {
  private readonly log;
  private readonly note;
  private readonly pool: Pool;
  private readonly access: Access;
  private readonly listeners: Listener[] = [];
  private readonly conns = new Map<number, Conn>();
  /** Accepted while the listeners could not pause yet: started as connections end. */
  private readonly waiting: Socket[] = [];
  private readonly baseEnv: Record<string, string>;
  private readonly spares = new Map<number, { worker: WorkerSlot; got: (spare: unknown) => void }>();
  /** Connections whose PROXY header is being read (--proxy): each one's cancel. */
  private readonly headers = new Map<Socket, () => void>();
  /** Accepted on a socket that requires the PROXY header, and not yet read. */
  private readonly needHeader = new WeakSet<Socket>();
  private nextId = 1;
  private nextKey = 1;
  private active = 0;
  private stopping = false;
  private exiting = false;
  private readonly drain: Drain;
  private readonly counters = new Counters();
  private readonly startedAt = performance.now();
  /** Status requests to the workers, by key, waiting for their answer. */
  private readonly statusWaits = new Map<number, (m: Extract<FromWorker, { t: 'status' }>) => void>();
  /** systemd's readiness protocol (Type=notify); does nothing without NOTIFY_SOCKET. */
  private readonly readiness: Readiness;
  private readonly metrics: MetricsState;
  private metricsServer: MetricsServer | undefined;
  /** The figures a scrape is waiting for: scrapes at once share one round of the workers. */
  private scraping: Promise<string> | undefined;

  constructor(
    private readonly config: ServerConfig,
    private readonly plan: ServerPlan,
    private readonly creds: Credentials,
    rules: RulesFile | undefined,
  ) {
    this.log = createLogger(2, config.verbosity, SERVER_PROGRAM, null);
    this.metrics = new MetricsState(creds, Math.floor(Date.now() / 1000));
    // Lines shown unless -q: failures, and each connection's start and end.
    this.note = this.log.warn;
    this.access = new Access(rules, config.perAddress, this.note);
    this.readiness = Readiness.fromEnv(process.env, process.pid, this.note);
    this.drain = new Drain(config.graceMs, {
      left: () => this.active,
      signalApps: (signal) => {
        let sent = 0;
        for (const conn of this.conns.values()) if (conn.ending === undefined && conn.child.kill(signal)) sent++;
        return sent;
      },
      log: (line) => this.note(line),
      exit: () => void this.exit(),
    });
    const env = appEnvironment(process.env, { keepEnv: config.keepEnv, ours: isSessionVariable, fromListenFd: true, ucspiTls: !config.implicit });
    for (const n of [...STALE_TCP_VARIABLES, ...PROXY_VARIABLES, ...NOTIFY_VARIABLES]) delete env[n];
    this.baseEnv = env;
    this.pool = new Pool(
      WORKER_FILE,
      config.workers,
      {
        tls: config.tls,
        creds,
        verbosity: config.verbosity,
        handshakeTimeoutMs: config.handshakeTimeoutMs,
        implicit: config.implicit,
        interfaceVersion: `${SERVER_PROGRAM}/${VERSION}`,
      },
      plan.worker,
      {
        message: (w, m, h) => this.onWorkerMessage(w, m, h),
        died: (w, code, signal) => this.onWorkerDied(w, code, signal),
        restarted: (w) => this.note(`worker ${w.index} (pid ${w.pid}) started`),
      },
    );
  }

  async run(): Promise<void> {
    // From the start: SIGHUP's default action would end the launcher.
    this.watchForReloads();
    try {
      await this.pool.start();
    } catch (e) {
      await this.pool.stop();
      fatal((e as Error).message, EXIT_CONFIG);
    }
    // Before the listeners: a failure here must not meet a spare fd on its way (listener.ts).
    if (this.config.metrics !== undefined) await this.serveMetrics(this.config.metrics);
    const targets: Target[] =
      this.config.listen.kind === 'systemd'
        ? this.config.listen.fds.map((fd) => ({ fd }))
        : [{ host: this.config.listen.host, port: this.config.listen.port, ...(this.config.reusePort ? { reusePort: true } : {}) }];
    for (const target of targets) {
      const proxy = requiresHeader(this.config.proxy, target);
      const l = new Listener(
        (s) => {
          if (proxy) this.needHeader.add(s);
          this.onConnection(s);
        },
        (handle, got) => this.fetchSpare(handle, got),
      );
      try {
        await l.listen(target, this.config.backlog);
      } catch (e) {
        await this.pool.stop();
        const where = 'fd' in target ? `fd ${target.fd}` : place({ address: target.host, port: target.port });
        fatal(`cannot listen on ${where}: ${errorWords(e)}`, EXIT_CONFIG);
      }
      this.listeners.push(l);
    }
    // Before anything says the server is up (-1's port, the listening line): a signal sent
    // as soon as it is must find its handler, not Node's default.
    process.on('SIGTERM', () => this.stop('SIGTERM'));
    process.on('SIGINT', () => this.stop('SIGINT'));
    process.on('SIGUSR1', () => void this.logFigures('figures'));
    for (const line of expiryWarnings(this.config.tls, this.creds, Date.now())) this.note(line);
    if (this.config.printPort) writeSync(1, `${this.listeners[0]!.address().port}\n`);
    const where = this.listeners.map((l) => place(l.address()));
    this.note(listeningLine(where, this.config.workers, this.config.concurrency));
    // Each worker has just said it is ready: as good as an answer.
    const up = this.pool.live().map((w) => ({ index: w.index, pid: w.pid, conns: 0, rss: 0 }));
    this.readiness.ready(statusLine(this.snapshot(up), this.config.workers), (ms) => this.probe(ms));
  }

  /** SIGHUP, and with --watch a change of the files: read them again (see reload/reload.ts). */
  private watchForReloads(): void {
    const generated = this.config.tls.ticketKeyFile === undefined ? this.creds.ticketKeys : undefined;
    const interfaceVersion = `${SERVER_PROGRAM}/${VERSION}`;
    const reloader = new Reloader(
      { tls: this.config.tls, env: process.env, generatedTicketKey: generated, opensslRefuses: (c) => opensslCheck(this.config.tls, c, this.log, interfaceVersion) },
      this.creds,
      (c) => {
        this.pool.reload(c);
        this.metrics.reloaded(c);
        for (const line of expiryWarnings(this.config.tls, c, Date.now())) this.note(line);
      },
      this.log,
    );
    const reload = (trigger: string): void => {
      if (this.stopping) return;
      this.readiness.reloading();
      if (!reloader.reload(trigger)) this.metrics.reloaded(undefined);
      this.readiness.reloaded(reloader.refused);
    };
    process.on('SIGHUP', () => reload('SIGHUP'));
    if (!this.config.watch) return;
    const watcher = new FileWatcher(policyFiles(this.config.tls), () => reload('files changed'), this.note);
    watcher.start();
  }

  /** A second fd of a listening socket, by way of a worker (see listener.ts). */
  private fetchSpare(handle: unknown, got: (spare: unknown) => void): void {
    const w = this.pool.pick();
    if (w === undefined) return got(undefined); // asked again at the next pause
    const key = this.nextKey++;
    this.spares.set(key, { worker: w, got });
    this.pool.send(w, { t: 'dup', key }, handle);
  }

  private onConnection(sock: Socket): void {
    this.counters.accepted++;
    if (this.stopping) return this.refuse(sock, 'stopping');
    if (this.active >= this.config.concurrency) {
      // The listeners could not pause yet: the connection waits here, unread, as it would
      // in the listen queue; beyond the queue's length it is refused, as the kernel would.
      if (this.waiting.length >= this.config.backlog) return this.refuse(sock, 'limit');
      this.waiting.push(sock);
      return;
    }
    this.startConnection(sock);
  }

  private startConnection(sock: Socket, proxied?: ProxyHeader): void {
    const socketRemote: Peer = { address: sock.remoteAddress ?? '', port: sock.remotePort ?? 0 };
    const socketLocal: Peer = { address: sock.localAddress ?? '', port: sock.localPort ?? 0 };
    if (socketRemote.address === '' || socketLocal.address === '') return this.refuse(sock, 'client gone'); // gone already
    if (this.needHeader.delete(sock)) return this.awaitProxyHeader(sock, socketRemote);
    const { remote, local } = proxied !== undefined ? clientEnds(proxied, { remote: socketRemote, local: socketLocal }) : { remote: socketRemote, local: socketLocal };
    // Before anything is started for it, by the client's address (the header's, behind a
    // balancer): refused, the client sees the connection closed.
    const admitted: Admission = this.access.admit(unmapped(remote.address), place(remote));
    if (!admitted.ok) {
      this.note(admitted.line);
      return this.refuse(sock, admitted.reason);
    }
    const worker = this.pool.pick();
    if (worker === undefined) {
      admitted.release();
      this.note(`no TLS worker running: connection from ${place(remote)} closed`);
      return this.refuse(sock, 'no worker');
    }
    const env = {
      ...this.baseEnv,
      ...tcpVariables({ localAddress: local.address, localPort: local.port, remoteAddress: remote.address, remotePort: remote.port, ...(this.config.localName !== undefined ? { localName: this.config.localName } : {}) }),
      ...(proxied !== undefined ? proxyVariables({ remote: socketRemote, local: socketLocal }) : {}),
      ...admitted.env,
    };
    const ids = this.plan.app !== undefined ? { uid: this.plan.app.uid, gid: this.plan.app.gid } : {};
    const [file, ...args] = this.config.app as [string, ...string[]];
    // fds as the contract has them: STARTTLS 0/1 = the connection, 3/4/5 = control socket
    // and channels; implicit: the stub's 0/1/3 are ours (the worker's), the connection its.
    const child = this.config.implicit
      ? spawn('/bin/sh', ['-c', IMPLICIT_STUB, 'sh', file, ...args], { env, stdio: ['pipe', 'pipe', 'inherit', 'pipe'], ...ids })
      : spawn(file, args, { env, stdio: [sock, sock, 'inherit', 'pipe', 'pipe', 'pipe'], ...ids });
    child.on('error', () => {}); // reported below, from the missing pid
    if (child.pid === undefined) {
      admitted.release();
      this.note(`${cannotRunMessage(file, commandMissing(file, env.PATH) ?? 'cannot start', env.PATH)} (connection from ${place(remote)} closed)`);
      for (const s of child.stdio) (s as Socket | null)?.destroy();
      return this.refuse(sock, 'app not started');
    }
    const channels: Array<[number, ChannelName]> = this.config.implicit
      ? [
          [0, 'toApp'],
          [1, 'fromApp'],
          [3, 'vars'],
        ]
      : [
          [3, 'ctl'],
          [4, 'toApp'],
          [5, 'fromApp'],
        ];
    const pipes = child.stdio as unknown as Array<Socket | null>;
    // Nothing the app writes may be read here: the worker reads it (see runtime/stream-handle.ts).
    for (const [fd] of channels) stopReading(pipes[fd]!);

    const conn: Conn = { id: this.nextId++, pid: child.pid, worker, child, client: sock, startedAt: performance.now(), workerLost: false, done: false, release: admitted.release };
    this.conns.set(conn.id, conn);
    worker.conns.add(conn.id);
    this.active++;
    if (this.active >= this.config.concurrency) this.pauseAccepting();
    createLogger(2, this.config.verbosity, SERVER_PROGRAM, conn.pid).warn(startLine(remote, local, worker.index, this.active, this.config.concurrency) + (proxied !== undefined ? viaWords(proxied, socketRemote) : ''));

    for (const [fd, name] of channels) {
      this.pool.send(worker, { t: 'channel', id: conn.id, pid: conn.pid, name }, pipes[fd]);
      // Gone to the worker: nothing here needs the socket object for the app's lifetime.
      pipes[fd] = null;
    }
    if (this.config.implicit) Object.assign(child, { stdin: null, stdout: null });
    // With the channels: the worker holds it unread until the app's command (worker.ts).
    this.handOver(conn);
    child.once('exit', (code, signal) => {
      conn.ending = signal !== null ? { code: null, signal } : { code: code ?? 0, signal: null };
      if (conn.workerLost) this.finish(conn, { tls: false, toClient: 0, toApp: 0 });
      else this.pool.send(conn.worker, { t: 'exit', id: conn.id });
    });
  }

  /**
   * --proxy: read the header first (it counts against -c meanwhile), then start the
   * connection with the addresses it gives; without a valid one, close it, no app started.
   */
  private awaitProxyHeader(sock: Socket, from: Peer): void {
    this.active++;
    if (this.active >= this.config.concurrency) this.pauseAccepting();
    const cancel = readProxyHeader(sock, headerTimeoutMs(this.config.handshakeTimeoutMs), (r) => {
      this.headers.delete(sock);
      this.active--;
      if ('error' in r) this.note(refusedLine(from, r.error));
      else if (!this.stopping) {
        this.startConnection(sock, r.header);
        // Refused by the rules, or started: either way -c may allow accepting again.
        return this.slotFreed();
      }
      this.refuse(sock, 'error' in r ? 'proxy' : 'stopping');
      this.slotFreed();
    });
    this.headers.set(sock, cancel);
  }

  /** The client connection to the worker; the launcher's copy closes once it is sent. */
  private handOver(conn: Conn): void {
    const client = conn.client;
    conn.client = undefined;
    if (client === undefined || client.destroyed) return this.pool.send(conn.worker, { t: 'no-client', id: conn.id });
    this.pool.send(conn.worker, { t: 'client', id: conn.id }, client);
  }

  private onWorkerMessage(w: WorkerSlot, m: FromWorker, handle: unknown): void {
    if (m.t === 'dup') {
      const asked = this.spares.get(m.key);
      this.spares.delete(m.key);
      if (asked !== undefined) asked.got(handle);
      else (handle as { close(): void }).close();
      return;
    }
    if (m.t === 'ready') return;
    if (m.t === 'status') return this.statusWaits.get(m.key)?.(m);
    const conn = this.conns.get(m.id);
    if (conn === undefined || conn.worker !== w) return;
    if (m.t === 'end') this.finish(conn, m);
  }

  private onWorkerDied(w: WorkerSlot, code: number | null, signal: NodeJS.Signals | null): void {
    this.note(workerDiedLine(w.index, w.pid, code, signal, w.conns.size));
    for (const [key, asked] of this.spares) {
      if (asked.worker !== w) continue;
      this.spares.delete(key);
      asked.got(undefined);
    }
    for (const id of w.conns) {
      const conn = this.conns.get(id);
      if (conn === undefined) continue;
      conn.workerLost = true;
      // Its apps see EOF and EPIPE on their channels; each connection ends with its app.
      if (conn.ending !== undefined) this.finish(conn, { tls: false, toClient: 0, toApp: 0 });
    }
  }

  private finish(conn: Conn, r: { tls: boolean; toClient: number; toApp: number; failed?: FailureReason }): void {
    if (conn.done || conn.ending === undefined) return;
    conn.done = true;
    this.conns.delete(conn.id);
    conn.worker.conns.delete(conn.id);
    conn.release();
    conn.client?.destroy();
    const mode = conn.workerLost ? 'worker lost' : r.tls ? 'tls' : 'plaintext';
    createLogger(2, this.config.verbosity, SERVER_PROGRAM, conn.pid).warn(endLine(conn.ending, mode, r.toClient, r.toApp, performance.now() - conn.startedAt));
    this.active--;
    this.counters.ended(r);
    this.slotFreed();
  }

  /** One connection fewer: start one that waits, accept again, or end the stop. */
  private slotFreed(): void {
    while (this.active < this.config.concurrency && this.waiting.length > 0 && !this.stopping) this.startConnection(this.waiting.shift()!);
    if (this.active < this.config.concurrency && !this.stopping) this.resumeAccepting();
    if (this.stopping) this.drain.ended();
  }

  /** Accepted, closed without an app: counted as refused. */
  private refuse(sock: Socket, reason: RefusalReason): void {
    this.counters.refusedFor(reason);
    sock.destroy();
  }

  private pauseAccepting(): void {
    if (!this.listeners.some((l) => l.accepting())) return;
    this.log.info(`${this.active} connections: accepting paused`);
    for (const l of this.listeners) l.pause();
  }

  private resumeAccepting(): void {
    if (this.listeners.every((l) => l.accepting())) return;
    this.log.info('accepting resumed');
    for (const l of this.listeners) l.resume();
  }

  /** SIGTERM, SIGINT: stop accepting at once, then the sessions drain (see lifecycle/drain.ts). */
  private stop(signal: string): void {
    if (!this.stopping) {
      this.stopping = true;
      this.readiness.stopping(`${signal}: no longer accepting; ${this.active} session(s) left`);
      for (const l of this.listeners) l.close();
      for (const s of this.waiting.splice(0)) this.refuse(s, 'stopping');
      for (const [s, cancel] of this.headers) {
        cancel();
        this.refuse(s, 'stopping');
        this.active--;
      }
      this.headers.clear();
    }
    this.drain.signal(signal);
  }

  /** The live figures, one line each (see lifecycle/figures.ts), the workers asked for theirs. */
  private async logFigures(label: string): Promise<void> {
    const snapshot = this.snapshot(await this.askWorkers());
    for (const line of figureLines(label, snapshot)) this.note(line);
    this.readiness.status(statusLine(snapshot, this.config.workers));
  }

  private snapshot(workers: WorkerFigures[]): Snapshot {
    return {
      counters: this.counters,
      now: this.active,
      limit: this.config.concurrency,
      uptimeMs: performance.now() - this.startedAt,
      launcher: { pid: process.pid, ...ownMemory() },
      workers,
    };
  }

  /** --metrics: bound before the server says it is up; a bad address ends the start. */
  private async serveMetrics(address: NonNullable<ServerConfig['metrics']>): Promise<void> {
    const server = new MetricsServer(address, () => this.scrape(), this.note, this.config.reusePort);
    try {
      await server.listen();
    } catch (e) {
      await this.pool.stop();
      fatal((e as Error).message, EXIT_CONFIG);
    }
    this.metricsServer = server;
  }

  private scrape(): Promise<string> {
    this.scraping ??= this.askWorkers()
      .then((workers) => this.metrics.scrape(this.snapshot(workers)))
      .finally(() => (this.scraping = undefined));
    return this.scraping;
  }

  /** A tick of the readiness protocol: healthy when every worker runs and answers within `ms`. */
  private async probe(ms: number): Promise<Probe> {
    const workers = await this.askWorkers(ms);
    const silent = workers.filter((w) => w.rss === undefined).map((w) => `worker ${w.index} (pid ${w.pid})`);
    const status = statusLine(this.snapshot(workers), this.config.workers);
    if (silent.length > 0) return { healthy: false, status, problem: `${silent.join(', ')} did not answer within ${ms} ms` };
    if (workers.length < this.config.workers) return { healthy: false, status, problem: `${this.config.workers - workers.length} worker(s) not running` };
    return { healthy: true, status };
  }

  /** Every running worker's figures (see askWorker). */
  private askWorkers(ms = 1000): Promise<WorkerFigures[]> {
    return Promise.all(this.pool.live().map((w) => this.askWorker(w, ms)));
  }

  /** A worker's figures; without its memory and live sessions if it does not answer within `ms`. */
  private askWorker(w: WorkerSlot, ms = 1000): Promise<WorkerFigures> {
    const base: WorkerFigures = { index: w.index, pid: w.pid, conns: w.conns.size };
    const key = this.nextKey++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), ms);
      const done = (m: Extract<FromWorker, { t: 'status' }> | undefined): void => {
        clearTimeout(timer);
        this.statusWaits.delete(key);
        if (m === undefined) return resolve(base);
        const { rss, tls, toClient, toApp } = m;
        resolve({ ...base, rss, tls, toClient, toApp, ...(m.private !== undefined ? { private: m.private } : {}) });
      };
      this.statusWaits.set(key, done);
      this.pool.send(w, { t: 'status', key });
    });
  }

  private async exit(): Promise<void> {
    if (this.exiting) return;
    this.exiting = true;
    await this.logFigures('figures at exit');
    await this.metricsServer?.close();
    await this.pool.stop();
    // STOPPING=1 and the status before it, if still on their way.
    await this.readiness.settled(1000);
    this.note('exiting');
    process.exit(0);
  }
}

void main();
