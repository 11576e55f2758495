// ucspi-tls-server's acceptor, the main process once started (see main.ts): listens, then
// runs as the workers' user. It accepts, reads the PROXY header, applies -x, -C and -c, builds
// each connection's variables, asks the spawner to start the app for it, and logs each
// connection's start and end. It starts no process and never holds a key.
import { writeSync } from 'node:fs';
import type { Socket } from 'node:net';
import { createLogger } from '../../log';
import { errorWords } from '../../messages';
import { appEnvironment } from '../../process/environment';
import { EXIT_CONFIG } from '../../contract/exit-codes';
import type { FailureReason } from '../../tls/failure';
import { isSessionVariable } from '../../session/policy-options';
import { Access, type Admission } from '../access/access';
import { RulesFile } from '../access/rules-file';
import { Drain } from '../lifecycle/drain';
import { dropPrivileges } from '../lifecycle/drop-privileges';
import { figureLines, type RefusalReason } from '../lifecycle/figures';
import { LiveFigures } from './figures';
import { Listener, type Target } from './listener';
import { endLine, listeningLine, place, startLine, type Peer } from '../log-lines';
import { MetricsServer } from '../metrics/serve';
import { Readiness } from '../notify/readiness';
import { NOTIFY_VARIABLES } from '../notify/settings';
import { SERVER_PROGRAM, type ServerConfig } from '../options';
import { type ServerPlan } from '../privileges';
import type { FromSpawner } from '../protocol';
import { clientEnds, PROXY_VARIABLES, proxyVariables, refusedLine, viaWords } from '../proxy/env';
import type { ProxyHeader } from '../proxy/header';
import { headerTimeoutMs, requiresHeader } from '../proxy/options';
import { readProxyHeader } from '../proxy/read';
import { spawnerSetup } from '../spawner/setup';
import { SpawnerLink } from './spawner-link';
import { STALE_TCP_VARIABLES, tcpVariables, unmapped } from '../tcp-env';
import { fatal } from './fatal';

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

export class Acceptor {
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
  private readonly figures: LiveFigures;
  /** Until the spawner says its workers are up (or why they are not). */
  private readyWait: ((m: Extract<FromSpawner, { t: 'ready' }>) => void) | undefined;
  /** A reload asked for during the start, and the start waiting for it. */
  private reloadDue: string | undefined;
  private reloadedWait: (() => void) | undefined;
  /** systemd's readiness protocol (Type=notify); does nothing without NOTIFY_SOCKET. */
  private readonly readiness: Readiness;
  /** NOTIFY_SOCKET and systemd-notify: the spawner sends for this process, which starts none. */
  private notifyVia: { command: string; socket: string; mainPid: number } | undefined;
  private metricsServer: MetricsServer | undefined;

  constructor(
    private readonly config: ServerConfig,
    private readonly plan: ServerPlan,
    rules: RulesFile | undefined,
    /** The spawner's entry (build/ucspi-tls-server-spawner.js). */
    spawnerFile: string,
  ) {
    this.log = createLogger(2, config.verbosity, SERVER_PROGRAM, null);
    // Lines shown unless -q: failures, and each connection's start and end.
    this.note = this.log.warn;
    this.access = new Access(rules, config.perAddress, this.note);
    this.spawner = new SpawnerLink(spawnerFile, (m, h) => this.onSpawnerMessage(m, h), (code, signal) => this.spawnerGone(code, signal));
    this.figures = new LiveFigures((m) => this.spawner.send(m), () => this.active, config.concurrency, config.workers);
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
    this.figures.started(ready.certificates);
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
    this.readiness.ready(this.figures.status(this.figures.snapshot({ workers: up })), (ms) => this.figures.probe(ms));
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
    this.figures.counters.accepted++;
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
        return this.figures.answered(m);
      case 'reloading':
        return this.readiness.reloading();
      case 'reloaded': {
        this.figures.reloaded(m.ok ? m.certificates : undefined);
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
        this.figures.counters.ended({ tls: false, toClient: 0, toApp: 0, ...(failed !== undefined ? { failed } : {}) });
        this.note(`${who}: ${line ?? 'no TLS'}; no app started (${((performance.now() - conn.startedAt) / 1000).toFixed(3)} s)`);
        break;
      case 'no worker':
        this.note(`no TLS worker running: ${who} closed`);
        this.figures.counters.refusedFor('no worker');
        break;
      case 'worker lost':
        this.note(`its TLS worker died: ${who} closed, no app started`);
        this.figures.counters.ended({ tls: false, toClient: 0, toApp: 0 });
        break;
      case 'app not started':
        this.note(`${line ?? 'the app could not start'} (${who} closed)`);
        this.figures.counters.refusedFor('app not started');
        break;
      case 'refused':
        this.note(`the spawner refused to start the app: ${who} closed`);
        this.figures.counters.refusedFor('app not started');
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
    this.figures.counters.ended(r);
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
    this.figures.counters.refusedFor(reason);
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
    const snapshot = this.figures.snapshot(await this.figures.others());
    for (const line of figureLines(label, snapshot)) this.note(line);
    this.readiness.status(this.figures.status(snapshot));
  }

  /** --metrics: bound before the server says it is up; a bad address ends the start. */
  private async serveMetrics(address: NonNullable<ServerConfig['metrics']>): Promise<void> {
    const server = new MetricsServer(address, () => this.figures.scrape(), this.note, this.config.reusePort);
    try {
      await server.listen();
    } catch (e) {
      await this.spawner.stop();
      fatal((e as Error).message, EXIT_CONFIG);
    }
    this.metricsServer = server;
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

