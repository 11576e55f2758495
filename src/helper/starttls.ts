// The server side's STARTTLS engine: the TLS server for the client on fds 0/1 (or the
// systemd fd), behind the control socket. Loaded after the app is running, so loading
// OpenSSL and building the context happen while the app talks plaintext.
import type { App } from '../process/app';
import type { ClientFds } from '../process/client-fds';
import { openClientStream } from '../process/client-stream';
import { startControl, type Engine } from '../session/control-session';
import type { EngineHooks } from '../process/supervise';
import type { Credentials } from '../tls/credentials';
import type { Logger } from '../log';
import type { Config } from './options';
import { createAcceptor, type Accepted } from '../tls/accept';

export type { Engine } from '../session/control-session';
export type { EngineHooks } from '../process/supervise';

/** What the helper's engines start from; `A` is the app as the mode started it. */
export interface EngineInput<A = App> {
  config: Config;
  creds: Credentials;
  fds: ClientFds;
  app: A;
  log: Logger;
  interfaceVersion: string;
  hooks: EngineHooks;
}

/** The handshake on the helper's one client connection, with the context built now. */
export function clientHandshake(e: EngineInput<unknown>): () => Promise<Accepted> {
  const acceptor = createAcceptor(e.config.tls, e.creds, e.log, e.interfaceVersion);
  if (acceptor.broken !== undefined) e.log.warn(acceptor.broken);
  return () => acceptor.accept(openClientStream(e.fds), e.config.handshakeTimeoutMs);
}

export function startEngine(e: EngineInput): Engine {
  return startControl({ app: e.app, log: e.log, hooks: e.hooks, peer: 'client', handshake: clientHandshake(e) });
}
