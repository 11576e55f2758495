// ucspi-tls-server's spawner: the one process that may stay root, and the only one that
// starts processes (the TLS workers as TLS_UID, each app as UID:GID). It reads nothing from
// the network: from the acceptor it takes a client connection only to hand it on, unread,
// to an app and a worker. It reads the TLS files (at start and on each reload) and holds
// the keys the workers get; the acceptor never sees them. Every request is checked first
// (see requests.ts). See ucspi-tls-server(1).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstatSync, unlinkSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { createLogger, type Logger } from '../../log';
import { cannotRunMessage, keyDefaultMessage } from '../../messages';
import { commandMissing } from '../../process/command-path';
import { stopReading } from '../../runtime/stream-handle';
import { keepYoungGenerationSmall } from '../../runtime/young-generation';
import type { Credentials } from '../../tls/credentials';
import { TICKET_KEY_BYTES } from '../../tls/credentials';
import { expiryWarnings } from '../../tls/expiry';
import { CredentialsError, loadCredentials } from '../../tls/load';
import { RulesFile } from '../access/rules-file';
import { ownMemory } from '../lifecycle/memory';
import { certificateRows } from '../metrics/certificates';
import { NotifySender } from '../notify/sender';
import { SERVER_PROGRAM } from '../options';
import { Pool, type WorkerSlot } from './pool';
import type { ChannelName, FromSpawner, FromWorker, SpawnerSetup, ToSpawner } from '../protocol';
import type { WorkerFigures } from '../lifecycle/figures';
import type { Ending } from '../log-lines';
import { opensslCheck, Reloader } from '../reload/reload';
import { FileWatcher, policyFiles } from '../reload/watch';
import { workerDiedLine } from '../log-lines';
import { checkRequest, checkSessionVars } from './requests';

/** The worker's entry, built beside this one (build/ucspi-tls-server-worker.js). */
const WORKER_FILE = join(__dirname, '..', '..', '..', 'ucspi-tls-server-worker.js');

interface Conn {
  id: number;
  worker: WorkerSlot;
  /** The app's environment; implicit: kept until TLS is up. */
  env: Record<string, string>;
  child?: ChildProcess;
  pid?: number;
  ending?: Ending;
  workerLost: boolean;
  /** Implicit, the app could not start after the handshake: why. */
  notStarted?: 'refused' | 'app not started';
}

let setup: SpawnerSetup | undefined;
let log: Logger = createLogger(2, 1, SERVER_PROGRAM, null);
let pool: Pool | undefined;
let reloader: Reloader | undefined;
/** The set the workers serve: its certificates go with each reload's outcome. */
let current: Credentials | undefined;
let rules: RulesFile | undefined;
let notify: NotifySender | undefined;
let allowed = new Set<string>();
let nextKey = 1;
let stopping = false;
const conns = new Map<number, Conn>();
const statusWaits = new Map<number, (m: Extract<FromWorker, { t: 'status' }> | undefined) => void>();

function tell(m: FromSpawner, handle?: unknown, done?: () => void): void {
  if (!process.connected) return;
  process.send!(m, handle as undefined, {}, done ?? (() => {}));
}

function closeHandle(handle: unknown): void {
  const h = handle as { destroy?(): void; close?(): void } | undefined;
  if (h?.destroy !== undefined) h.destroy();
  else h?.close?.();
}

async function init(s: SpawnerSetup): Promise<void> {
  setup = s;
  log = createLogger(2, s.worker.verbosity, SERVER_PROGRAM, null);
  allowed = new Set(s.envNames);
  let creds: Credentials;
  try {
    creds = loadCredentials(s.worker.tls);
  } catch (e) {
    const broken = e instanceof CredentialsError ? keyDefaultMessage(e.message, s.env) : (e as Error).message;
    return tell({ t: 'ready', broken, certificates: [], workers: [] });
  }
  // Without TICKETKEYFILE, one key for every worker: a client resumes whichever it reaches.
  // Made once: a reload keeps it, so tickets issued before it still resume.
  const generated = s.worker.tls.ticketKeyFile === undefined ? randomBytes(TICKET_KEY_BYTES) : undefined;
  creds.ticketKeys ??= generated;
  if (s.rules !== undefined) rules = new RulesFile(s.rules.path, s.rules.optional);
  // As root it may send as the acceptor, the main PID; else as itself (NotifyAccess=all).
  if (s.notify !== undefined) notify = new NotifySender(s.notify.command, s.notify.socket, (line) => log.warn(line), process.getuid?.() === 0 ? s.notify.mainPid : undefined);
  pool = new Pool(WORKER_FILE, s.workers, { ...s.worker, creds }, s.workerIds, {
    message: onWorkerMessage,
    died: onWorkerDied,
    restarted: (w) => log.warn(`worker ${w.index} (pid ${w.pid}) started`),
  });
  try {
    await pool.start();
  } catch (e) {
    await pool.stop();
    return tell({ t: 'ready', broken: (e as Error).message, certificates: [], workers: [] });
  }
  reloader = new Reloader(
    { tls: s.worker.tls, env: s.env, generatedTicketKey: generated, opensslRefuses: (c) => opensslCheck(s.worker.tls, c, log, s.worker.interfaceVersion) },
    creds,
    (c) => {
      current = c;
      pool!.reload(c);
      for (const line of expiryWarnings(s.worker.tls, c, Date.now())) log.warn(line);
    },
    log,
  );
  if (s.watch) new FileWatcher(policyFiles(s.worker.tls), () => reload('files changed'), (line) => log.warn(line)).start();
  current = creds;
  for (const line of expiryWarnings(s.worker.tls, creds, Date.now())) log.warn(line);
  tell({ t: 'ready', certificates: certificateRows(creds), workers: pool.live().map((w) => ({ index: w.index, pid: w.pid })) });
}

function reload(trigger: string): void {
  if (reloader === undefined || stopping) return;
  tell({ t: 'reloading' });
  const ok = reloader.reload(trigger);
  tell(ok ? { t: 'reloaded', ok, certificates: certificateRows(current!) } : { t: 'reloaded', ok, refused: reloader.refused ?? '' });
}

/** The names a rule of the rules file sets for this client (by TCPREMOTEIP, as the acceptor looked it up). */
function ruleNames(env: Record<string, string>): Set<string> {
  const ip = env.TCPREMOTEIP;
  if (rules === undefined || ip === undefined) return new Set();
  const found = rules.lookup(ip);
  return new Set(found.ok ? found.rule.env.map(([n]) => n) : []);
}

function startConnection(m: Extract<ToSpawner, { t: 'start' }>, sock: Socket): void {
  const worker = pool!.pick();
  if (worker === undefined) {
    sock.destroy();
    return tell({ t: 'not-started', id: m.id, reason: 'no worker' });
  }
  const conn: Conn = { id: m.id, worker, env: { ...setup!.baseEnv, ...m.env }, workerLost: false };
  conns.set(conn.id, conn);
  worker.conns.add(conn.id);
  if (setup!.worker.implicit) {
    // The handshake first: the app starts once TLS is up (see 'tls-up').
    return pool!.send(worker, { t: 'client', id: conn.id }, sock);
  }
  const child = spawnApp(conn, [sock, sock, 'inherit', 'pipe', 'pipe', 'pipe']);
  if (child === undefined) {
    sock.destroy();
    return;
  }
  sendChannels(conn, child, [
    [3, 'ctl'],
    [4, 'toApp'],
    [5, 'fromApp'],
  ]);
  // With the channels: the worker holds it unread until the app's command (worker.ts).
  pool!.send(worker, sock.destroyed ? { t: 'no-client', id: conn.id } : { t: 'client', id: conn.id }, sock.destroyed ? undefined : sock);
  tell({ t: 'started', id: conn.id, pid: conn.pid!, worker: worker.index });
}

type Stdio = Array<Socket | 'inherit' | 'pipe'>;

/** The app, as UID:GID; undefined (and the acceptor told) when it cannot start. */
function spawnApp(conn: Conn, stdio: Stdio, more: Record<string, string> = {}): ChildProcess | undefined {
  const [file, ...args] = setup!.app as [string, ...string[]];
  const env = { ...conn.env, ...more };
  const ids = setup!.appIds !== undefined ? { uid: setup!.appIds.uid, gid: setup!.appIds.gid } : {};
  const child = spawn(file, args, { env, stdio, ...ids });
  child.on('error', () => {}); // told below, from the missing pid
  if (child.pid === undefined) {
    for (const s of child.stdio) (s as Socket | null)?.destroy();
    const line = cannotRunMessage(file, commandMissing(file, env.PATH) ?? 'cannot start', env.PATH);
    forget(conn);
    tell({ t: 'not-started', id: conn.id, reason: 'app not started', line });
    return undefined;
  }
  conn.child = child;
  conn.pid = child.pid;
  child.once('exit', (code, signal) => {
    conn.ending = signal !== null ? { code: null, signal } : { code: code ?? 0, signal: null };
    if (conn.workerLost) finish(conn, { tls: false, toClient: 0, toApp: 0 });
    else pool!.send(conn.worker, { t: 'exit', id: conn.id });
  });
  return child;
}

/** The app's ends of its channels go to the worker; nothing the app writes is read here. */
function sendChannels(conn: Conn, child: ChildProcess, channels: Array<[number, ChannelName]>): void {
  const pipes = child.stdio as unknown as Array<Socket | null>;
  for (const [fd] of channels) stopReading(pipes[fd]!);
  for (const [fd, name] of channels) {
    pool!.send(conn.worker, { t: 'channel', id: conn.id, pid: conn.pid!, name }, pipes[fd]);
    // Gone to the worker: nothing here needs the socket object for the app's lifetime.
    pipes[fd] = null;
  }
  if (channels.some(([fd]) => fd < 3)) Object.assign(child, { stdin: null, stdout: null });
}

/** Implicit: TLS is up for connection `id`; the app starts now, the session's variables in its environment. */
function tlsUp(w: WorkerSlot, id: number, vars: unknown): void {
  const conn = conns.get(id);
  if (conn === undefined || conn.worker !== w || conn.child !== undefined) return;
  const checked = checkSessionVars(vars);
  if (typeof checked === 'string') {
    log.warn(`spawner: worker ${w.index} (pid ${w.pid}): refused: ${checked}`);
    conn.notStarted = 'refused';
    return pool!.send(w, { t: 'exit', id });
  }
  // A NUL cannot be in the environment; the helper's stub drops it the same way.
  const more = Object.fromEntries(checked.map(([n, v]) => [n, v.replace(/\0/g, '')]));
  const child = spawnApp(conn, ['pipe', 'pipe', 'inherit'], more);
  if (child === undefined) {
    conn.notStarted = 'app not started';
    // The worker still holds the session: it ends it on this.
    return pool!.send(w, { t: 'exit', id });
  }
  sendChannels(conn, child, [
    [0, 'toApp'],
    [1, 'fromApp'],
  ]);
  tell({ t: 'started', id, pid: conn.pid!, worker: w.index });
}

function forget(conn: Conn): void {
  conns.delete(conn.id);
  conn.worker.conns.delete(conn.id);
}

function finish(conn: Conn, r: { tls: boolean; toClient: number; toApp: number; failed?: Extract<FromWorker, { t: 'end' }>['failed'] }): void {
  if (!conns.has(conn.id) || conn.ending === undefined) return;
  forget(conn);
  tell({ t: 'ended', id: conn.id, ending: conn.ending, workerLost: conn.workerLost, tls: r.tls, toClient: r.toClient, toApp: r.toApp, ...(r.failed !== undefined ? { failed: r.failed } : {}) });
}

function onWorkerMessage(w: WorkerSlot, m: FromWorker): void {
  switch (m.t) {
    case 'status':
      return statusWaits.get(m.key)?.(m);
    case 'tls-up':
      return tlsUp(w, m.id, m.vars);
    case 'end': {
      const conn = conns.get(m.id);
      if (conn === undefined || conn.worker !== w) return;
      if (conn.child === undefined) {
        // Implicit, no app ran: a failed handshake, or an app that could not start.
        forget(conn);
        const reason = conn.notStarted ?? 'handshake';
        return tell({ t: 'not-started', id: m.id, reason, ...(m.failed !== undefined ? { failed: m.failed } : {}), ...(m.line !== undefined ? { line: m.line } : {}) });
      }
      return finish(conn, m);
    }
    case 'ready':
      return;
  }
}

function onWorkerDied(w: WorkerSlot, code: number | null, signal: NodeJS.Signals | null): void {
  log.warn(workerDiedLine(w.index, w.pid, code, signal, w.conns.size));
  for (const id of w.conns) {
    const conn = conns.get(id);
    if (conn === undefined) continue;
    conn.workerLost = true;
    if (conn.child === undefined) {
      // Implicit, before TLS was up: the client connection went with the worker.
      forget(conn);
      tell({ t: 'not-started', id, reason: 'worker lost' });
    } else if (conn.ending !== undefined) finish(conn, { tls: false, toClient: 0, toApp: 0 });
    // Else its app sees EOF and EPIPE on its channels; the connection ends with it.
  }
}

function askWorker(w: WorkerSlot, ms: number): Promise<WorkerFigures> {
  const base: WorkerFigures = { index: w.index, pid: w.pid, conns: w.conns.size };
  const key = nextKey++;
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(undefined), ms);
    const done = (m: Extract<FromWorker, { t: 'status' }> | undefined): void => {
      clearTimeout(timer);
      statusWaits.delete(key);
      if (m === undefined) return resolve(base);
      const { rss, tls, toClient, toApp } = m;
      resolve({ ...base, rss, tls, toClient, toApp, ...(m.private !== undefined ? { private: m.private } : {}) });
    };
    statusWaits.set(key, done);
    pool!.send(w, { t: 'status', key });
  });
}

function onRequest(raw: unknown, handle: unknown): void {
  if (setup === undefined) {
    // The first message, sent while the acceptor was still root and had read nothing.
    const m = raw as { t?: unknown; setup?: SpawnerSetup };
    if (m?.t === 'init' && m.setup !== undefined) return void init(m.setup);
    closeHandle(handle);
    return;
  }
  const checked = checkRequest(raw, setup.app, allowed, ruleNames);
  if (!checked.ok) {
    log.warn(`spawner: request refused: ${checked.why}`);
    closeHandle(handle);
    const id = (raw as { t?: unknown; id?: unknown } | null)?.id;
    if ((raw as { t?: unknown } | null)?.t === 'start' && typeof id === 'number') tell({ t: 'not-started', id, reason: 'refused' });
    return;
  }
  const m = checked.m;
  switch (m.t) {
    case 'start': {
      const sock = handle as Socket | undefined;
      if (sock === undefined || typeof (sock as Partial<Socket>).destroy !== 'function') return tell({ t: 'not-started', id: m.id, reason: 'refused' });
      // Node starts reading a socket it receives: stop before the event loop runs. This
      // process never reads a byte of it.
      stopReading(sock);
      if (pool === undefined || stopping) {
        sock.destroy();
        return tell({ t: 'not-started', id: m.id, reason: 'no worker' });
      }
      return startConnection(m, sock);
    }
    case 'reload':
      return reload(m.trigger);
    case 'figures':
      void Promise.all((pool?.live() ?? []).map((w) => askWorker(w, m.ms))).then((workers) => tell({ t: 'figures', key: m.key, spawner: { pid: process.pid, ...ownMemory() }, workers }));
      return;
    case 'signal':
      for (const conn of conns.values()) if (conn.ending === undefined) conn.child?.kill(m.signal);
      return;
    case 'dup': {
      const h = handle as { close(): void } | undefined;
      if (h === undefined) return;
      tell({ t: 'dup', key: m.key }, h, () => h.close());
      return;
    }
    case 'notify': {
      const routine = m.assignments.every((a) => a.startsWith('STATUS=') || a.startsWith('WATCHDOG='));
      notify?.send(m.assignments, routine);
      return;
    }
  }
}

/** A socket file the acceptor made while root: gone with the server (if it is still a socket). */
function removeSocket(path: string | undefined): void {
  if (path === undefined) return;
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // gone already
  }
}

async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await notify?.settled(1000);
  await pool?.stop();
  removeSocket(setup?.removeAtExit);
  process.exit(0);
}

keepYoungGenerationSmall();
// JSON on this channel, not V8's serializer: a smaller parser for what the acceptor sends.
process.on('message', onRequest);
// The acceptor decides when the server ends (see worker/main.ts): signals meant for the process
// group must not stop the apps' sessions; without the acceptor, there is nothing left to do.
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1'] as const) process.on(sig, () => {});
process.on('disconnect', () => void stop());
// And should the channel outlive the acceptor (it never should): a spawner whose parent is
// gone has nothing left to serve, and ignores the signals that would end it.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) void stop();
}, 1000).unref();
