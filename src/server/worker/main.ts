// A TLS worker: runs the UCSPI-TLS session of each connection the spawner hands it, with
// the same session code as the per-connection helper. It never opens a key file (the
// spawner sends the credentials) and never sees a client byte before the app's command.
import type { Socket } from 'node:net';
import { createLogger, type Logger } from '../../log';
import { startControl, type Engine } from '../../session/control-session';
import { startImplicitSession, type AppStreams } from '../../session/implicit-session';
import { createAcceptor, type Acceptor } from '../../tls/accept';
import { failureOf, HandshakeError, type FailureReason } from '../../tls/failure';
import { resumeReading, setNonBlocking, stopReading } from '../../runtime/stream-handle';
import { ownMemory } from '../lifecycle/memory';
import { SERVER_PROGRAM } from '../options';
import type { ChannelName, FromWorker, ToWorker, WorkerSetup } from '../protocol';

interface Conn {
  id: number;
  log: Logger;
  channels: Partial<Record<ChannelName, Socket>>;
  engine?: Engine;
  /** The client connection, once the spawner sent it; or why it will not come. */
  client?: Promise<Socket>;
  /** The client connection as it came: unread, and blocking as the app has it, until the handshake. */
  socket?: Socket;
  deliver?: (s: Socket | Error) => void;
  exited: boolean;
  handshaking: boolean;
  tlsUp: boolean;
  outDone: boolean;
  /** The app has exited with its control socket unread to the end: waiting for that. */
  drainingCtl?: boolean;
  /** Why the handshake failed, for the acceptor's figures. */
  failed?: FailureReason;
  /** Implicit: TLS is up and the app is being started; resolved with its streams, or undefined. */
  appStarting?: (streams: AppStreams | undefined) => void;
  /** Implicit: why the handshake failed, for the acceptor's line. */
  failLine?: string;
  /** Implicit: write the lines held until the app's pid was known (see heldLog). */
  release?: (pid: number | null) => void;
}

/** How long an exited app's control socket may take to show its last bytes and EOF. */
const CTL_DRAIN_MS = 1000;

let setup: WorkerSetup | undefined;
let acceptor: Acceptor | undefined;
const conns = new Map<number, Conn>();

function send(m: FromWorker): void {
  // The spawner gone: the 'disconnect' handler ends this process.
  if (!process.connected) return;
  // Always a callback: without one, a write the spawner no longer reads (it is exiting,
  // EPIPE) would be an 'error' event on the process, and a crash with a stack in the log.
  process.send!(m, undefined, {}, () => {});
}

/**
 * Implicit: the lines of a connection whose app has no pid yet (TLS started, say), held
 * until it has one, so that they carry it as every line of a connection does; written
 * without it if no app comes.
 */
function heldLog(c: Conn): Logger {
  const held: Array<[keyof Logger, string]> = [];
  let to: Logger | undefined;
  c.release = (pid) => {
    to = createLogger(2, setup!.verbosity, SERVER_PROGRAM, pid);
    for (const [level, m] of held.splice(0)) to[level](m);
    c.log = to;
    delete c.release;
  };
  return {
    warn: (m) => (to !== undefined ? to.warn(m) : void held.push(['warn', m])),
    info: (m) => (to !== undefined ? to.info(m) : void held.push(['info', m])),
  };
}

function connOf(id: number, pid: number | null): Conn {
  let c = conns.get(id);
  if (c === undefined) {
    c = { id, log: createLogger(2, setup!.verbosity, SERVER_PROGRAM, pid), channels: {}, exited: false, handshaking: false, tlsUp: false, outDone: false };
    conns.set(id, c);
  }
  return c;
}

/** The client connection, which the spawner sends with the app's channels. */
function client(c: Conn): Promise<Socket> {
  c.client ??= new Promise<Socket | Error>((resolve) => (c.deliver = resolve)).then((s) => (s instanceof Error ? Promise.reject(s) : s));
  return c.client;
}

/** The client connection, made ready for TLS: only now may this worker read it. */
function forTls(s: Socket): Socket {
  // The app is done with it: non-blocking again (see runtime/stream-handle.ts); half-close as the contract has it.
  setNonBlocking(s);
  s.allowHalfOpen = true;
  s.setNoDelay(true);
  resumeReading(s);
  return s;
}

function handshake(c: Conn): ReturnType<Acceptor['accept']> {
  c.handshaking = true;
  const run = async (): ReturnType<Acceptor['accept']> => acceptor!.accept(forTls(await client(c)), setup!.handshakeTimeoutMs, c.log);
  return run()
    .catch((e: Error) => {
      c.failed = failureOf(e);
      throw e;
    })
    .finally(() => {
      c.handshaking = false;
      // A failed handshake may be the last thing the connection waited for; a good one is
      // followed at once by tlsStarted.
      setImmediate(() => maybeEnd(c));
    });
}

function hooksOf(c: Conn) {
  return {
    tlsStarted: () => {
      c.tlsUp = true;
    },
    outboundDone: () => {
      c.outDone = true;
      maybeEnd(c);
    },
  };
}

/** STARTTLS: the session starts once the app's three channels are here. */
function start(c: Conn): void {
  const ch = c.channels;
  if (ch.ctl === undefined || ch.toApp === undefined || ch.fromApp === undefined) return;
  // Closed once TLS is up (or refused): an idle session keeps only what it relays with.
  ch.ctl.once('close', () => delete ch.ctl);
  c.engine = startControl({ app: { ctl: ch.ctl, toApp: ch.toApp, fromApp: ch.fromApp }, log: c.log, hooks: hooksOf(c), peer: 'client', handshake: () => handshake(c) });
}

/**
 * Implicit: the handshake at once; only then does the spawner start the app, with the
 * session's variables in its environment ('tls-up'), and send its streams here.
 */
function startImplicit(c: Conn): void {
  c.engine = startImplicitSession({
    log: c.log,
    hooks: hooksOf(c),
    handshake: () => handshake(c),
    app: {
      withVars: (vars) => {
        if (c.exited) return Promise.resolve(undefined);
        send({ t: 'tls-up', id: c.id, vars: vars.map(([n, v]) => [n, v]) });
        return new Promise((resolve) => (c.appStarting = resolve));
      },
      none: (why) => {
        // Nothing was started: the connection ends with its handshake, and the acceptor's
        // line, which names the client, says why.
        c.exited = true;
        c.failLine = why;
        return true;
      },
    },
  });
}

/** Implicit: the app's streams, once both are here. */
function appStreams(c: Conn): void {
  const { toApp, fromApp } = c.channels;
  if (toApp === undefined || fromApp === undefined || c.appStarting === undefined) return;
  const resolve = c.appStarting;
  delete c.appStarting;
  resolve({ toApp, fromApp });
}

/** The session is over once the app has exited, no handshake runs, and TLS (if it ran) has sent its last byte. */
function maybeEnd(c: Conn): void {
  if (!conns.has(c.id) || !c.exited || c.handshaking || (c.tlsUp && !c.outDone)) return;
  // The app's exit can reach this worker before the EOF (or the command) it left on the
  // control socket does, when both arrive in one turn: read that first, so that a decline
  // is logged and a command is answered as the helper would.
  const ctl = c.channels.ctl;
  if (ctl !== undefined && !ctl.destroyed && !ctl.readableEnded) {
    if (c.drainingCtl) return;
    c.drainingCtl = true;
    const again = (): void => {
      setImmediate(() => maybeEnd(c));
    };
    ctl.once('end', again).once('close', again);
    setTimeout(() => ctl.destroy(), CTL_DRAIN_MS).unref();
    return;
  }
  conns.delete(c.id);
  c.release?.(null);
  const line = c.engine?.summary();
  if (line !== undefined) c.log.info(line);
  const counts = c.engine?.counts();
  for (const s of Object.values(c.channels)) s.destroy();
  // Without TLS nobody took it over: the app's copy is what the client talks to now.
  if (!c.tlsUp) c.socket?.destroy();
  send({ t: 'end', id: c.id, tls: c.tlsUp, toClient: counts?.toPeer ?? 0, toApp: counts?.toApp ?? 0, ...(c.failed !== undefined ? { failed: c.failed } : {}), ...(c.failLine !== undefined ? { line: c.failLine } : {}) });
}

function onMessage(m: ToWorker, handle: unknown): void {
  switch (m.t) {
    case 'init': {
      setup = m.setup;
      acceptor = createAcceptor(setup.tls, setup.creds, createLogger(2, setup.verbosity, SERVER_PROGRAM, null), setup.interfaceVersion);
      send(acceptor.broken !== undefined ? { t: 'ready', broken: acceptor.broken } : { t: 'ready' });
      return;
    }
    case 'channel': {
      const c = setup!.implicit ? conns.get(m.id) : connOf(m.id, m.pid);
      if (c === undefined) return void (handle as Socket).destroy();
      c.channels[m.name] = handle as Socket;
      if (!setup!.implicit) return start(c);
      c.release?.(m.pid);
      return appStreams(c);
    }
    case 'client': {
      const s = handle as Socket;
      // Node starts reading a socket it receives; STARTTLS: the app reads it in plaintext until
      // its command. So stop before the event loop runs, and hold it, blocking as the app has it.
      stopReading(s);
      const c = setup!.implicit ? connOf(m.id, null) : conns.get(m.id);
      if (c === undefined) return void s.destroy();
      if (setup!.implicit) c.log = heldLog(c);
      c.socket = s;
      client(c);
      c.deliver!(s);
      delete c.deliver;
      if (setup!.implicit) startImplicit(c);
      return;
    }
    case 'no-client': {
      const c = conns.get(m.id);
      if (c === undefined) return;
      client(c);
      c.deliver!(new HandshakeError('handshake not started: the client connection is gone', 'client gone'));
      delete c.deliver;
      return;
    }
    case 'exit': {
      const c = conns.get(m.id);
      if (c === undefined) return send({ t: 'end', id: m.id, tls: false, toClient: 0, toApp: 0 });
      c.exited = true;
      // Implicit: the app could not start, or ended before its streams came.
      if (c.appStarting !== undefined) {
        const resolve = c.appStarting;
        delete c.appStarting;
        resolve(undefined);
      }
      c.engine?.appExited();
      maybeEnd(c);
      return;
    }
    case 'reload': {
      // Handshakes already under way keep the acceptor they started with.
      const log = createLogger(2, setup!.verbosity, SERVER_PROGRAM, null);
      const next = createAcceptor(setup!.tls, m.creds, log, setup!.interfaceVersion);
      if (next.broken !== undefined) {
        log.warn(`worker pid ${process.pid}: reload refused: ${next.broken}; still serving the files read before`);
        return;
      }
      setup = { ...setup!, creds: m.creds };
      acceptor = next;
      return;
    }
    case 'status': {
      let tls = 0;
      let toClient = 0;
      let toApp = 0;
      for (const c of conns.values()) {
        if (!c.tlsUp) continue;
        tls++;
        const n = c.engine?.counts();
        toClient += n?.toPeer ?? 0;
        toApp += n?.toApp ?? 0;
      }
      send({ t: 'status', key: m.key, ...ownMemory(), tls, toClient, toApp });
      return;
    }
  }
}

process.on('message', (m: ToWorker, handle: unknown) => onMessage(m, handle));
// The acceptor, through the spawner, decides when a worker ends: signals meant for the
// process group (a ^C, a supervisor's SIGTERM to every process) must not cut the sessions
// the server still lets finish. Without the spawner, a worker has nothing left to do. SIGUSR1 asks the
// acceptor for its figures; sent to every process (systemctl kill), Node's default would
// open the inspector in a worker, which holds the keys.
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1'] as const) process.on(sig, () => {});
process.on('disconnect', () => process.exit(0));
