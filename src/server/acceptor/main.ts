// ucspi-tls-server's acceptor, the main process: reads and checks the configuration,
// starts the spawner (see spawner/main.ts) while still root, listens, then runs as the
// workers' user. It accepts, reads the PROXY header, applies -x, -C and -c, builds each
// app's environment, asks the spawner to start the app for the connection, and logs each
// connection's start and end. It starts no process and never holds a key. See
// ucspi-tls-server(1).
import { existsSync, writeSync } from 'node:fs';
import type { Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { createLogger, fatalLine } from '../../log';
import { cannotRunMessage, errorWords, usageMessage } from '../../messages';
import { spawnFailureStatus } from '../../process/app';
import { closeInheritedFds } from '../../process/client-fds';
import { commandMissing } from '../../process/command-path';
import { appEnvironment } from '../../process/environment';
import { VERSION } from '../../version';
import { EXIT_CONFIG, EXIT_USAGE } from '../../contract/exit-codes';
import type { FailureReason } from '../../tls/failure';
import { keepYoungGenerationSmall } from '../../runtime/young-generation';
import { isSessionVariable } from '../../session/policy-options';
import { Access, type Admission } from '../access/access';
import { RulesFile } from '../access/rules-file';
import { Drain } from '../lifecycle/drain';
import { dropPrivileges } from '../lifecycle/drop-privileges';
import { Counters, figureLines, type ProcessMemory, type RefusalReason, type Snapshot, type WorkerFigures } from '../lifecycle/figures';
import { ownMemory } from '../lifecycle/memory';
import { reusePortRefusal } from '../lifecycle/reuse-port';
import { Listener, type Target } from './listener';
import { endLine, listeningLine, place, startLine, type Peer } from '../log-lines';
import { MetricsServer } from '../metrics/serve';
import { MetricsState } from '../metrics/state';
import { Readiness, type Probe } from '../notify/readiness';
import { NOTIFY_VARIABLES } from '../notify/settings';
import { statusLine } from '../notify/status';
import { parseServerArgs, SERVER_PROGRAM, USAGE, type ServerConfig } from '../options';
import { planServerPrivileges, type ServerPlan } from '../privileges';
import type { FromSpawner } from '../protocol';
import { clientEnds, PROXY_VARIABLES, proxyVariables, refusedLine, viaWords } from '../proxy/env';
import type { ProxyHeader } from '../proxy/header';
import { headerTimeoutMs, requiresHeader } from '../proxy/options';
import { readProxyHeader } from '../proxy/read';
import { spawnerSetup } from '../spawner/setup';
import { SpawnerLink } from './spawner-link';
import { STALE_TCP_VARIABLES, tcpVariables, unmapped } from '../tcp-env';

/** The spawner's and the worker's entries, built beside this one (build/ucspi-tls-server-*.js). */
const SPAWNER_FILE = join(__dirname, '..', '..', '..', 'ucspi-tls-server-spawner.js');
const WORKER_FILE = join(__dirname, '..', '..', '..', 'ucspi-tls-server-worker.js');

/** What the spawner tells of the processes it started, and of itself. */
interface Others {
  spawner?: ProcessMemory;
  workers: WorkerFigures[];
}

interface Conn {
  id: number;
  /** The app's pid once the spawner started it. */
  pid?: number;
  remote: Peer;
  local: Peer;
  /** With --proxy: the words of the start line that tell the balancer. */
  via: string;
  startedAt: number;
  /** Its place in the per-address count. */
  release: () => void;
}

function fatal(message: string, status: number): never {
  fatalLine(status === EXIT_USAGE ? usageMessage(message, SERVER_PROGRAM) : message, SERVER_PROGRAM, 2);
  process.exit(status);
}

async function main(): Promise<void> {
  // Until the figures' handler is in place (see Acceptor.run): never Node's default, the inspector.
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
  for (const [what, file] of [['spawner', SPAWNER_FILE], ['TLS worker', WORKER_FILE]] as const) if (!existsSync(file)) fatal(`the ${what} ${file} is missing`, EXIT_CONFIG);

  const rules = config.rules !== undefined ? new RulesFile(config.rules.path, config.rules.optional) : undefined;
  const unusable = rules?.check();
  if (unusable !== undefined) fatal(unusable, EXIT_CONFIG);

  await new Acceptor(config, plan, rules).run();
}

class Acceptor {
  private readonly log;
  private readonly note;
  private readonly spawner: SpawnerLink;
  private readonly access: Access;
  private readonly listeners: Listener[] = [];
  private readonly conns = new Map<number, Conn>();
  /** Accepted while the listeners could not pause yet: started as connections end. */
  private readonly waiting: Socket[] = [];
  private readonly baseEnv: Record<string, string>;
  private readonly spares = new Map<number, (spare: unknown) => void>();
  /** Connections whose PROXY header is being read (--proxy): each one's cancel. */
  private readonly headers = new Map<Socket, () => void>();
  /** Accepted on a socket that requires the PROXY header, and not yet read. */
  private readonly needHeader = new WeakSet<Socket>();
  private nextId = 1;
  private nextKey = 1;
  private active = 0;
  private stopping = false;
  private exiting = false;
  /** Listening on every socket, and no longer root: only then is a connection read. */
  private dropped = false;
  private readonly drain: Drain;
  private readonly counters = new Counters();
  private readonly startedAt = performance.now();
  /** Figures asked of the spawner, by key, waiting for its answer. */
  private readonly figureWaits = new Map<number, (answer: Extract<FromSpawner, { t: 'figures' }> | undefined) => void>();
  /** Until the spawner says its workers are up (or why they are not). */
  private readyWait: ((m: Extract<FromSpawner, { t: 'ready' }>) => void) | undefined;
  /** A reload asked for during the start, and the start waiting for it. */
  private reloadDue: string | undefined;
  private reloadedWait: (() => void) | undefined;
  /** systemd's readiness protocol (Type=notify); does nothing without NOTIFY_SOCKET. */
  private readonly readiness: Readiness;
  /** NOTIFY_SOCKET and systemd-notify: the spawner sends for this process, which starts none. */
  private notifyVia: { command: string; socket: string; mainPid: number } | undefined;
  private metrics: MetricsState | undefined;
  private metricsServer: MetricsServer | undefined;
  /** The figures a scrape is waiting for: scrapes at once share one round of the workers. */
  private scraping: Promise<string> | undefined;

  constructor(
    private readonly config: ServerConfig,
    private readonly plan: ServerPlan,
    rules: RulesFile | undefined,
  ) {
    this.log = createLogger(2, config.verbosity, SERVER_PROGRAM, null);
    // Lines shown unless -q: failures, and each connection's start and end.
    this.note = this.log.warn;
    this.access = new Access(rules, config.perAddress, this.note);
    this.spawner = new SpawnerLink(SPAWNER_FILE, (m, h) => this.onSpawnerMessage(m, h), (code, signal) => this.spawnerGone(code, signal));
    this.readiness = Readiness.fromEnv(process.env, process.pid, this.note, (command, socket) => {
      this.notifyVia = { command, socket, mainPid: process.pid };
      return {
        send: (assignments) => void this.spawner.send({ t: 'notify', assignments }),
        // The spawner sends what is queued before it exits (see exit()).
        settled: () => Promise.resolve(),
      };
    });
    this.drain = new Drain(config.graceMs, {
      left: () => this.active,
      signalApps: (signal) => {
        let running = 0;
        for (const conn of this.conns.values()) if (conn.pid !== undefined) running++;
        if (running > 0) this.spawner.send({ t: 'signal', signal });
        return running;
      },
      log: (line) => this.note(line),
      exit: () => void this.exit(),
    });
    const env = appEnvironment(process.env, { keepEnv: config.keepEnv, ours: isSessionVariable, fromListenFd: true, ucspiTls: !config.implicit });
    for (const n of [...STALE_TCP_VARIABLES, ...PROXY_VARIABLES, ...NOTIFY_VARIABLES]) delete env[n];
    this.baseEnv = env;
  }

  async run(): Promise<void> {
    // From the start: SIGHUP's default action would end the acceptor.
    process.on('SIGHUP', () => this.reload('SIGHUP'));
    const ready = await this.startSpawner();
    this.metrics = new MetricsState(ready.certificates, Math.floor(Date.now() / 1000));
    await this.reloadIfDue();
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
        const where = 'fd' in target ? `fd ${target.fd}` : place({ address: target.host, port: target.port });
        await this.spawner.stop();
        fatal(`cannot listen on ${where}: ${errorWords(e)}`, EXIT_CONFIG);
      }
      this.listeners.push(l);
    }
    // Bound: from now on, the process that reads the network is not root.
    const dropped = dropPrivileges(this.plan.worker) ?? this.rulesReadable();
    if (dropped !== undefined) {
      await this.spawner.stop();
      fatal(dropped, EXIT_CONFIG);
    }
    // Connections accepted while this process was still root: served now, read only now.
    this.dropped = true;
    this.slotFreed();
    // Before anything says the server is up (-1's port, the listening line): a signal sent
    // as soon as it is must find its handler, not Node's default.
    process.on('SIGTERM', () => this.stop('SIGTERM'));
    process.on('SIGINT', () => this.stop('SIGINT'));
    process.on('SIGUSR1', () => void this.logFigures('figures'));
    if (this.config.printPort) writeSync(1, `${this.listeners[0]!.address().port}\n`);
    const where = this.listeners.map((l) => place(l.address()));
    this.note(listeningLine(where, this.config.workers, this.config.concurrency));
    // Each worker has just said it is ready: as good as an answer.
    const up = ready.workers.map((w) => ({ ...w, conns: 0, rss: 0 }));
    this.readiness.ready(statusLine(this.snapshot({ workers: up }), this.config.workers), (ms) => this.probe(ms));
  }

  /** The spawner, given what it needs while this process is still root; it starts the workers. */
  private startSpawner(): Promise<Extract<FromSpawner, { t: 'ready' }>> {
    const setup = spawnerSetup(this.config, this.plan, this.baseEnv, process.env, this.notifyVia, process.cwd());
    return new Promise((done) => {
      this.readyWait = (m) => {
        if (m.broken === undefined) return done(m);
        void this.spawner.stop().then(() => fatal(m.broken!, EXIT_CONFIG));
      };
      try {
        this.spawner.start(setup);
      } catch (e) {
        fatal(`cannot start the spawner: ${errorWords(e)}`, EXIT_CONFIG);
      }
    });
  }

  /** SIGHUP: the spawner reads the files again (it is root; this process need not be). */
  private reload(trigger: string): void {
    if (this.stopping) return;
    // During the start: once the spawner is up, and before the server listens.
    if (this.readyWait !== undefined) this.reloadDue = trigger;
    else this.spawner.send({ t: 'reload', trigger });
  }

  /** A SIGHUP that came during the start, done before listening; resolves once it is. */
  private reloadIfDue(): Promise<void> {
    const trigger = this.reloadDue;
    if (trigger === undefined) return Promise.resolve();
    this.reloadDue = undefined;
    return new Promise((resolve) => {
      this.reloadedWait = resolve;
      if (!this.spawner.send({ t: 'reload', trigger })) resolve();
    });
  }

  /** A second fd of a listening socket, by way of the spawner (see listener.ts). */
  private fetchSpare(handle: unknown, got: (spare: unknown) => void): void {
    const key = this.nextKey++;
    this.spares.set(key, got);
    if (!this.spawner.send({ t: 'dup', key }, handle)) {
      this.spares.delete(key);
      got(undefined);
    }
  }

  /** -x: the file is read at each connection by this process, as the workers' user from now on. */
  private rulesReadable(): string | undefined {
    const rules = this.config.rules;
    if (rules === undefined || this.plan.worker === undefined) return undefined;
    const unusable = new RulesFile(rules.path, rules.optional).check();
    if (unusable === undefined) return undefined;
    return `${unusable} (read as ${this.plan.worker.uid}:${this.plan.worker.gid}, the workers' user, once listening: make it readable by TLS_UID)`;
  }

  private onConnection(sock: Socket): void {
    this.counters.accepted++;
    if (this.stopping) return this.refuse(sock, 'stopping');
    if (this.active >= this.config.concurrency || !this.dropped) {
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
    // The connection's own: the spawner adds them to every app's common environment.
    const env = {
      ...tcpVariables({ localAddress: local.address, localPort: local.port, remoteAddress: remote.address, remotePort: remote.port, ...(this.config.localName !== undefined ? { localName: this.config.localName } : {}) }),
      ...(proxied !== undefined ? proxyVariables({ remote: socketRemote, local: socketLocal }) : {}),
      ...admitted.env,
    };
    const conn: Conn = { id: this.nextId++, remote, local, via: proxied !== undefined ? viaWords(proxied, socketRemote) : '', startedAt: performance.now(), release: admitted.release };
    this.conns.set(conn.id, conn);
    this.active++;
    if (this.active >= this.config.concurrency) this.pauseAccepting();
    // The connection goes to the spawner unread; this process's copy closes once it is sent.
    if (!this.spawner.send({ t: 'start', id: conn.id, argv: this.config.app, env }, sock)) this.notStarted(conn, 'no worker', undefined);
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

  private onSpawnerMessage(m: FromSpawner, handle: unknown): void {
    switch (m.t) {
      case 'ready': {
        const wait = this.readyWait;
        this.readyWait = undefined;
        return wait?.(m);
      }
      case 'dup': {
        const got = this.spares.get(m.key);
        this.spares.delete(m.key);
        if (got !== undefined) got(handle);
        else (handle as { close(): void } | undefined)?.close();
        return;
      }
      case 'figures':
        return this.figureWaits.get(m.key)?.(m);
      case 'reloading':
        return this.readiness.reloading();
      case 'reloaded': {
        this.metrics?.reloaded(m.ok ? m.certificates : undefined);
        this.readiness.reloaded(m.refused);
        const wait = this.reloadedWait;
        this.reloadedWait = undefined;
        return wait?.();
      }
      case 'started': {
        const conn = this.conns.get(m.id);
        if (conn === undefined) return;
        conn.pid = m.pid;
        createLogger(2, this.config.verbosity, SERVER_PROGRAM, m.pid).warn(startLine(conn.remote, conn.local, m.worker, this.active, this.config.concurrency) + conn.via);
        return;
      }
      case 'not-started': {
        const conn = this.conns.get(m.id);
        if (conn !== undefined) this.notStarted(conn, m.reason, m.line, m.failed);
        return;
      }
      case 'ended': {
        const conn = this.conns.get(m.id);
        if (conn !== undefined) this.finish(conn, m);
        return;
      }
    }
  }

  /** Nothing runs for the connection: one line says why, and the slot is free again. */
  private notStarted(conn: Conn, reason: Extract<FromSpawner, { t: 'not-started' }>['reason'], line: string | undefined, failed?: FailureReason): void {
    this.conns.delete(conn.id);
    conn.release();
    this.active--;
    const who = `connection from ${place(conn.remote)}`;
    switch (reason) {
      case 'handshake':
        // Implicit: the worker logged why; no app was started.
        this.counters.ended({ tls: false, toClient: 0, toApp: 0, ...(failed !== undefined ? { failed } : {}) });
        this.note(`${who}: ${line ?? 'no TLS'}; no app started (${((performance.now() - conn.startedAt) / 1000).toFixed(3)} s)`);
        break;
      case 'no worker':
        this.note(`no TLS worker running: ${who} closed`);
        this.counters.refusedFor('no worker');
        break;
      case 'worker lost':
        this.note(`its TLS worker died: ${who} closed, no app started`);
        this.counters.ended({ tls: false, toClient: 0, toApp: 0 });
        break;
      case 'app not started':
        this.note(`${line ?? 'the app could not start'} (${who} closed)`);
        this.counters.refusedFor('app not started');
        break;
      case 'refused':
        this.note(`the spawner refused to start the app: ${who} closed`);
        this.counters.refusedFor('app not started');
        break;
    }
    this.slotFreed();
  }

  private finish(conn: Conn, r: Extract<FromSpawner, { t: 'ended' }>): void {
    this.conns.delete(conn.id);
    conn.release();
    const mode = r.workerLost ? 'worker lost' : r.tls ? 'tls' : 'plaintext';
    createLogger(2, this.config.verbosity, SERVER_PROGRAM, conn.pid ?? null).warn(endLine(r.ending, mode, r.toClient, r.toApp, performance.now() - conn.startedAt));
    this.active--;
    this.counters.ended(r);
    this.slotFreed();
  }

  /** One connection fewer: start one that waits, accept again, or end the stop. */
  private slotFreed(): void {
    while (this.active < this.config.concurrency && this.waiting.length > 0 && !this.stopping && this.dropped) this.startConnection(this.waiting.shift()!);
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

  /** The spawner died: no app and no worker can start any more. */
  private spawnerGone(code: number | null, signal: string | null): void {
    if (this.exiting) return;
    const how = signal !== null ? `died on ${signal}` : `exited with ${code}`;
    if (this.readyWait !== undefined) fatal(`the spawner ${how} before the workers were up`, EXIT_CONFIG);
    this.note(`the spawner ${how}: exiting`);
    process.exit(EXIT_CONFIG);
  }

  /** The live figures, one line each (see lifecycle/figures.ts), the spawner and the workers asked for theirs. */
  private async logFigures(label: string): Promise<void> {
    const snapshot = this.snapshot(await this.askFigures());
    for (const line of figureLines(label, snapshot)) this.note(line);
    this.readiness.status(statusLine(snapshot, this.config.workers));
  }

  private snapshot(others: Others): Snapshot {
    return {
      counters: this.counters,
      now: this.active,
      limit: this.config.concurrency,
      uptimeMs: performance.now() - this.startedAt,
      acceptor: { pid: process.pid, ...ownMemory() },
      ...(others.spawner !== undefined ? { spawner: others.spawner } : {}),
      workers: others.workers,
    };
  }

  /** --metrics: bound before the server says it is up; a bad address ends the start. */
  private async serveMetrics(address: NonNullable<ServerConfig['metrics']>): Promise<void> {
    const server = new MetricsServer(address, () => this.scrape(), this.note, this.config.reusePort);
    try {
      await server.listen();
    } catch (e) {
      await this.spawner.stop();
      fatal((e as Error).message, EXIT_CONFIG);
    }
    this.metricsServer = server;
  }

  private scrape(): Promise<string> {
    this.scraping ??= this.askFigures()
      .then((others) => this.metrics!.scrape(this.snapshot(others)))
      .finally(() => (this.scraping = undefined));
    return this.scraping;
  }

  /** A tick of the readiness protocol: healthy when every worker runs and answers within `ms`. */
  private async probe(ms: number): Promise<Probe> {
    const others = await this.askFigures(ms);
    const workers = others.workers;
    const silent = workers.filter((w) => w.rss === undefined).map((w) => `worker ${w.index} (pid ${w.pid})`);
    const status = statusLine(this.snapshot(others), this.config.workers);
    if (others.spawner === undefined) return { healthy: false, status, problem: `the spawner did not answer within ${ms + 1000} ms` };
    if (silent.length > 0) return { healthy: false, status, problem: `${silent.join(', ')} did not answer within ${ms} ms` };
    if (workers.length < this.config.workers) return { healthy: false, status, problem: `${this.config.workers - workers.length} worker(s) not running` };
    return { healthy: true, status };
  }

  /** The spawner's memory and every running worker's figures; a worker silent for `ms` without its memory. */
  private askFigures(ms = 1000): Promise<Others> {
    const key = this.nextKey++;
    return new Promise((resolve) => {
      // The spawner answers within `ms` whatever the workers do; past that it is stuck.
      const timer = setTimeout(() => done(undefined), ms + 1000);
      const done = (m: Extract<FromSpawner, { t: 'figures' }> | undefined): void => {
        clearTimeout(timer);
        this.figureWaits.delete(key);
        resolve(m === undefined ? { workers: [] } : { spawner: m.spawner, workers: m.workers });
      };
      this.figureWaits.set(key, done);
      if (!this.spawner.send({ t: 'figures', key, ms })) done(undefined);
    });
  }

  private async exit(): Promise<void> {
    if (this.exiting) return;
    this.exiting = true;
    await this.logFigures('figures at exit');
    await this.metricsServer?.close();
    // The spawner sends what systemd must still hear (STOPPING=1), stops the workers, and exits.
    await this.spawner.stop();
    this.note('exiting');
    process.exit(0);
  }
}

void main();
