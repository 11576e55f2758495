// What the launcher and its TLS workers say to each other over Node's IPC channel (with
// the 'advanced' serialization, so Buffers in the credentials pass as they are). Handles
// ride along with the messages that name them.
import type { Credentials } from '../tls/credentials';
import type { TlsConfig } from '../tls/config';
import type { Verbosity } from '../contract/verbosity';
import type { FailureReason } from '../tls/failure';
import type { ProcessMemory, WorkerFigures } from './lifecycle/figures';
import type { Ending } from './log-lines';

/** STARTTLS: the app's fds 3, 4, 5. Implicit: the app's fds 0, 1. */
export type ChannelName = 'ctl' | 'toApp' | 'fromApp';

export interface WorkerSetup {
  tls: TlsConfig;
  creds: Credentials;
  verbosity: Verbosity;
  handshakeTimeoutMs: number;
  implicit: boolean;
  interfaceVersion: string;
}

export type ToWorker =
  | { t: 'init'; setup: WorkerSetup }
  /** With the handle: one of the connection's channels (the app's pid names the connection in the log). */
  | { t: 'channel'; id: number; pid: number; name: ChannelName }
  /** With the handle: the client connection, sent with the channels (STARTTLS: held unread until the app's command; implicit: first, the handshake at once). */
  | { t: 'client'; id: number }
  /** The client connection is gone before the worker got it. */
  | { t: 'no-client'; id: number }
  /** The app has exited: answer with 'end' once the session is over. */
  | { t: 'exit'; id: number }
  /** Files read again (SIGHUP, --watch): for the handshakes that start from now on. */
  | { t: 'reload'; creds: Credentials }
  /** The live figures: answer with 'status'. */
  | { t: 'status'; key: number };

export type FromWorker =
  | { t: 'ready'; broken?: string }
  /** Implicit: TLS is up; start the app with these variables and send its streams. */
  | { t: 'tls-up'; id: number; vars: Array<[string, string]> }
  /** `failed`: why the handshake failed, when one was tried and failed. */
  | { t: 'end'; id: number; tls: boolean; toClient: number; toApp: number; failed?: FailureReason; line?: string }
  /** The worker's memory (bytes), and its sessions running now with TLS up and their bytes so far. */
  | { t: 'status'; key: number; rss: number; private?: number; tls: number; toClient: number; toApp: number };

// The acceptor and the spawner. The spawner runs as root and reads nothing from the
// network: it takes from the acceptor only what is below, checks each message (see
// spawner/requests.ts) and refuses anything else with one log line.

/** What the spawner is given once, by the acceptor while it is still root and has read nothing from the network. */
export interface SpawnerSetup {
  /** The app's command line, fixed for the server's life. */
  app: string[];
  appIds?: { uid: number; gid: number };
  workerIds?: { uid: number; gid: number };
  workers: number;
  /** The workers' setup; the credentials the spawner reads itself. */
  worker: Omit<WorkerSetup, 'creds'>;
  /** For reloads (SIGHUP, --watch): the files and the environment the set was read from. */
  env: Record<string, string | undefined>;
  watch: boolean;
  /** Every app's environment, before its connection's variables. */
  baseEnv: Record<string, string>;
  /** The names of a connection's variables the acceptor may set, besides those the rules file sets for the client. */
  envNames: string[];
  /** -x: the rules file, whose variables the acceptor may also set. */
  rules?: { path: string; optional: boolean };
  /** systemd's readiness protocol: NOTIFY_SOCKET and the systemd-notify to send with. */
  notify?: { socket: string; command: string; mainPid: number };
  /** --metrics' Unix socket, removed when the server exits. */
  removeAtExit?: string;
}

export type ToSpawner =
  | { t: 'init'; setup: SpawnerSetup }
  /** With the client connection's handle: start the app (implicit: once TLS is up) for connection `id`; `env`: its connection's variables. */
  | { t: 'start'; id: number; argv: string[]; env: Record<string, string> }
  /** SIGHUP: read the TLS files again. */
  | { t: 'reload'; trigger: string }
  /** Every worker's figures: answered with 'figures'. */
  | { t: 'figures'; key: number; ms: number }
  /** Stopping: send this signal to every app running. */
  | { t: 'signal'; signal: 'SIGTERM' | 'SIGKILL' }
  /** With a listening socket's handle: send it straight back (the acceptor's spare copy). */
  | { t: 'dup'; key: number }
  /** systemd's readiness protocol: these assignments, as the main PID. */
  | { t: 'notify'; assignments: string[] };

export interface CertificateInfo {
  name: string;
  keyType: string;
  notAfterSeconds: number;
}


export type FromSpawner =
  | { t: 'ready'; broken?: string; certificates: CertificateInfo[]; workers: Array<{ index: number; pid: number }> }
  /** The app of connection `id` runs, served by that worker. */
  | { t: 'started'; id: number; pid: number; worker: number }
  /** Nothing runs for connection `id`: `line` says why (logged as it is), `reason` counts it. */
  | { t: 'not-started'; id: number; line?: string; reason: 'no worker' | 'app not started' | 'refused' | 'handshake' | 'worker lost'; failed?: FailureReason }
  | { t: 'ended'; id: number; ending: Ending; workerLost: boolean; tls: boolean; toClient: number; toApp: number; failed?: FailureReason }
  | { t: 'reloading' }
  | { t: 'reloaded'; ok: boolean; refused?: string; certificates?: CertificateInfo[] }
  | { t: 'figures'; key: number; spawner: ProcessMemory; workers: WorkerFigures[] }
  | { t: 'dup'; key: number };
