// What the acceptor gives the spawner at start, from the configuration. Pure.
import { resolve } from 'node:path';
import { VERSION } from '../../version';
import { SERVER_PROGRAM, type ServerConfig } from '../options';
import type { ServerPlan } from '../privileges';
import type { SpawnerSetup } from '../protocol';
import { PROXY_VARIABLES } from '../proxy/env';
import { TCP_VARIABLE_NAMES } from '../tcp-env';

/**
 * `baseEnv`: every app's environment before the connection's variables; `env`: the
 * server's own, for the spawner's reloads; `cwd`: where relative paths start.
 */
export function spawnerSetup(
  c: ServerConfig,
  plan: ServerPlan,
  baseEnv: Record<string, string>,
  env: Readonly<Record<string, string | undefined>>,
  notify: SpawnerSetup['notify'],
  cwd: string,
): SpawnerSetup {
  return {
    app: c.app,
    ...(plan.app !== undefined ? { appIds: plan.app } : {}),
    ...(plan.worker !== undefined ? { workerIds: plan.worker } : {}),
    workers: c.workers,
    worker: { tls: c.tls, verbosity: c.verbosity, handshakeTimeoutMs: c.handshakeTimeoutMs, implicit: c.implicit, interfaceVersion: `${SERVER_PROGRAM}/${VERSION}` },
    env: { ...env },
    watch: c.watch,
    // What the acceptor sets for a connection: tcpserver's variables, the PROXY header's,
    // and TCPCONNNUM (see access/access.ts); a rules file's come on top.
    baseEnv,
    envNames: [...TCP_VARIABLE_NAMES, ...PROXY_VARIABLES, 'TCPCONNNUM'],
    ...(c.rules !== undefined ? { rules: { path: resolve(cwd, c.rules.path), optional: c.rules.optional } } : {}),
    ...(notify !== undefined ? { notify } : {}),
    // Made as root in a folder the acceptor may no longer write to once it runs as the workers' user.
    ...(c.metrics?.kind === 'unix' ? { removeAtExit: resolve(cwd, c.metrics.path) } : {}),
  };
}
