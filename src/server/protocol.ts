// What the launcher and its TLS workers say to each other over Node's IPC channel (with
// the 'advanced' serialization, so Buffers in the credentials pass as they are). Handles
// ride along with the messages that name them.
import type { Credentials } from '../tls/credentials';
import type { TlsConfig } from '../tls/config';
import type { Verbosity } from '../contract/verbosity';
import type { FailureReason } from '../tls/failure';

/** STARTTLS: the app's fds 3, 4, 5. Implicit: the stub's fds 0, 1, 3. */
export type ChannelName = 'ctl' | 'toApp' | 'fromApp' | 'vars';

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
  /** With the handle: the client connection, sent with the channels; held unread until the app's command. */
  | { t: 'client'; id: number }
  /** The client connection is gone before the worker got it. */
  | { t: 'no-client'; id: number }
  /** The app has exited: answer with 'end' once the session is over. */
  | { t: 'exit'; id: number }
  /** With a listening socket's handle: send it straight back (the launcher's spare copy). */
  | { t: 'dup'; key: number }
  /** Files read again (SIGHUP, --watch): for the handshakes that start from now on. */
  | { t: 'reload'; creds: Credentials }
  /** The live figures: answer with 'status'. */
  | { t: 'status'; key: number };

export type FromWorker =
  | { t: 'ready'; broken?: string }
  /** `failed`: why the handshake failed, when one was tried and failed. */
  | { t: 'end'; id: number; tls: boolean; toClient: number; toApp: number; failed?: FailureReason }
  | { t: 'dup'; key: number }
  /** The worker's memory (bytes), and its sessions running now with TLS up and their bytes so far. */
  | { t: 'status'; key: number; rss: number; private?: number; tls: number; toClient: number; toApp: number };
