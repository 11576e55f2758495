// Implicit TLS (ports 465, 993, 995) for the helper's one connection: the shared session
// on the client's fds.
import type { ImplicitApp } from '../process/app';
import type { ClientFds } from '../process/client-fds';
import { openClientStream } from '../process/client-stream';
import type { Credentials } from '../tls/credentials';
import type { Engine, EngineHooks } from '../session/control-session';
import { startImplicitSession } from '../session/implicit-session';
import type { Logger } from '../log';
import type { Config } from './options';
import { createAcceptor } from '../tls/accept';

export interface ImplicitInput {
  config: Config;
  creds: Credentials;
  fds: ClientFds;
  app: ImplicitApp;
  log: Logger;
  interfaceVersion: string;
  hooks: EngineHooks;
}

export function startImplicit(e: ImplicitInput): Engine {
  const acceptor = createAcceptor(e.config.tls, e.creds, e.log, e.interfaceVersion);
  if (acceptor.broken !== undefined) e.log.warn(acceptor.broken);
  return startImplicitSession({
    app: e.app,
    log: e.log,
    hooks: e.hooks,
    handshake: () => acceptor.accept(openClientStream(e.fds), e.config.handshakeTimeoutMs),
  });
}
