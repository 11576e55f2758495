// The server side's STARTTLS engine: the TLS server for the client on fds 0/1 (or the
// systemd fd), behind the control socket. Loaded after the app is running, so loading
// OpenSSL and building the context happen while the app talks plaintext.
import type { App } from '../process/app';
import type { ClientFds } from '../process/client-fds';
import { openClientStream } from '../process/client-stream';
import { startControl, type Engine, type EngineHooks } from '../session/control-session';
import type { Credentials } from '../tls/credentials';
import type { Logger } from '../log';
import type { Config } from './options';
import { createAcceptor } from '../tls/accept';

export type { Engine, EngineHooks } from '../session/control-session';

export interface EngineInput {
  config: Config;
  creds: Credentials;
  fds: ClientFds;
  app: App;
  log: Logger;
  interfaceVersion: string;
  hooks: EngineHooks;
}

export function startEngine(e: EngineInput): Engine {
  const acceptor = createAcceptor(e.config.tls, e.creds, e.log, e.interfaceVersion);
  if (acceptor.broken !== undefined) e.log.warn(acceptor.broken);
  return startControl({
    app: e.app,
    log: e.log,
    hooks: e.hooks,
    peer: 'client',
    handshake: () => acceptor.accept(openClientStream(e.fds), e.config.handshakeTimeoutMs),
  });
}
