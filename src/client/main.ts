// ucspi-tls-client: UCSPI-TLS for apps that speak STARTTLS as clients, run under tcpclient
// (the connection on fds 6 and 7). The app runs at once; on `y`/`Y` the helper runs the
// client handshake, checks the server's certificate, and relays.
import { existsSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { spawnApp, spawnFailureStatus, SpawnError, type App } from '../process/app';
import { closeInheritedFds, sameSocket } from '../process/client-fds';
import { readClientCredentials } from './credentials';
import { clientAppEnvironment, CLIENT_PROGRAM, CLIENT_USAGE, parseClientArgs } from './options';
import { CredentialsError, type ClientCredentials } from '../tls/credentials';
import { createLogger, fatalLine } from '../log';
import { EXIT_CONFIG, EXIT_USAGE } from '../contract/exit-codes';
import { NET_READ_FD, NET_WRITE_FD } from '../contract/fds';
import { cannotRunMessage, errnoOf, keyDefaultMessage, logFileMessage, usageMessage } from '../messages';
import { supervise } from '../process/supervise';
import { VERSION } from '../version';

function main(): void {
  // Node's default for SIGUSR1 opens the inspector, unauthenticated, in the process that
  // holds the key: a signal sent to every process of a service (systemctl kill) must not.
  process.on('SIGUSR1', () => {});
  const parsed = parseClientArgs(process.argv.slice(2), process.env);
  if (parsed.kind === 'help') {
    writeSync(1, `${CLIENT_USAGE}\n`);
    process.exit(0);
  }
  if (parsed.kind === 'version') {
    writeSync(1, `${CLIENT_PROGRAM} ${VERSION}\n`);
    process.exit(0);
  }
  if (parsed.kind === 'error') {
    fatalLine(parsed.status === EXIT_USAGE ? usageMessage(parsed.message, CLIENT_PROGRAM) : parsed.message, CLIENT_PROGRAM, 2);
    process.exit(parsed.status);
  }
  const config = parsed.config;
  const same = sameSocket(NET_READ_FD, NET_WRITE_FD);
  if (same === undefined) {
    fatalLine(`no connection on fds ${NET_READ_FD} and ${NET_WRITE_FD} (a socket): run me under tcpclient`, CLIENT_PROGRAM, 2);
    process.exit(EXIT_CONFIG);
  }

  let logFd = 2;
  if (config.logFile !== undefined) {
    try {
      logFd = openSync(config.logFile, 'a', 0o640);
    } catch (e) {
      const folder = dirname(config.logFile);
      fatalLine(logFileMessage(config.logFile, errnoOf(e), folder, existsSync(folder)), CLIENT_PROGRAM, 2);
      process.exit(EXIT_CONFIG);
    }
  }
  const log = createLogger(logFd, config.verbosity, CLIENT_PROGRAM);
  const fatal = (message: string, status: number): never => {
    fatalLine(message, CLIENT_PROGRAM, logFd);
    process.exit(status);
  };
  closeInheritedFds(new Set([NET_READ_FD, NET_WRITE_FD, logFd]));

  let creds: ClientCredentials;
  try {
    creds = readClientCredentials(config.tls);
  } catch (e) {
    if (e instanceof CredentialsError) fatal(keyDefaultMessage(e.message, process.env), EXIT_CONFIG);
    throw e;
  }

  const env = clientAppEnvironment(process.env, config.keepEnv);
  let app: App;
  try {
    app = spawnApp(config.app, env, { stdin: 0, stdout: 1, stderr: 2, extra: [NET_READ_FD, NET_WRITE_FD] });
  } catch (e) {
    if (e instanceof SpawnError) fatal(cannotRunMessage(config.app[0]!, e.code, env.PATH), spawnFailureStatus(e.code));
    throw e;
  }
  const life = supervise(app.child, { appName: config.app[0]!, log, fatal });

  /* eslint-disable @typescript-eslint/no-require-imports */
  const { startControl } = require('../session/control-session') as typeof import('../session/control-session');
  const { clientHandshake } = require('../tls/connect') as typeof import('../tls/connect');
  const { openClientStream } = require('../process/client-stream') as typeof import('../process/client-stream');
  /* eslint-enable @typescript-eslint/no-require-imports */
  log.info(`server certificates checked against ${config.verify ? creds.trustSource : 'nothing (--insecure)'}`);
  const engine = startControl({
    app,
    log,
    hooks: life.hooks,
    peer: 'server',
    handshake: () =>
      clientHandshake(openClientStream({ readFd: NET_READ_FD, writeFd: NET_WRITE_FD, sameObject: same }), {
        policy: config.tls,
        creds,
        ...(config.serverName !== undefined ? { serverName: config.serverName } : {}),
        verify: config.verify,
        timeoutMs: config.handshakeTimeoutMs,
        log,
        interfaceVersion: `${CLIENT_PROGRAM}/${VERSION}`,
      }),
  });
  life.setEngine(engine);
}

main();
