// Implicit TLS (ports 465, 993, 995) for the helper's one connection: the shared session
// on the client's fds, the app behind the stub that takes the variables on its fd 3.
import type { ImplicitApp } from '../process/app';
import type { Engine } from '../session/control-session';
import { startImplicitSession, stubStart } from '../session/implicit-session';
import { clientHandshake, type EngineInput } from './starttls';

export function startImplicit(e: EngineInput<ImplicitApp>): Engine {
  return startImplicitSession({ app: stubStart(e.app), log: e.log, hooks: e.hooks, handshake: clientHandshake(e) });
}
