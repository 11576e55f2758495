// Process plumbing: configuration, fds, the app, signals, the exit status. The TLS engine
// is loaded only once the app runs, so the app's banner never waits for OpenSSL.
import { openSync, writeSync } from 'node:fs';
import { exitStatus, FORWARDED_SIGNALS, spawnApp, spawnFailureStatus } from './app';
import { clientSource, closeInheritedFds, locateClient } from './client-fds';
import { CredentialsError, readCredentials, type Credentials } from './credentials';
import { appEnvironment } from './environment';
import { createLogger, fatalLine } from './log';
import { EXIT_CONFIG, parseArgs, PROGRAM, USAGE } from './options';

// Read at build time by the Makefile's version check; kept in step with package.json.
const VERSION = '0.1.0';

function main(): void {
  const parsed = parseArgs(process.argv.slice(2), process.env);
  if (parsed.kind === 'help') {
    writeSync(1, `${USAGE}\n`);
    process.exit(0);
  }
  if (parsed.kind === 'version') {
    writeSync(1, `${PROGRAM} ${VERSION}\n`);
    process.exit(0);
  }
  if (parsed.kind === 'error') {
    fatalLine(parsed.message);
    process.exit(parsed.status);
  }
  const config = parsed.config;

  const source = clientSource(process.env, process.pid);
  if (source.kind === 'error') {
    fatalLine(source.message);
    process.exit(EXIT_CONFIG);
  }
  const fds = locateClient(source);
  if (typeof fds === 'string') {
    fatalLine(fds);
    process.exit(EXIT_CONFIG);
  }

  // Where our log and the app's fd 2 go. Under xinetd fd 2 is the client: never there.
  let logFd: number | undefined = fds.stderrIsClient ? undefined : 2;
  let appStderr = 2;
  if (config.logFile !== undefined) {
    try {
      logFd = openSync(config.logFile, 'a', 0o640);
    } catch (e) {
      if (!fds.stderrIsClient) fatalLine(`cannot open log file ${config.logFile}: ${(e as Error).message}`);
      process.exit(EXIT_CONFIG);
    }
  }
  if (fds.stderrIsClient) appStderr = logFd ?? openSync('/dev/null', 'w');
  const log = createLogger(logFd, config.verbosity);
  const fatal = (message: string, status: number): never => {
    if (logFd !== undefined) createLogger(logFd, 1).warn(`fatal: ${message}`);
    process.exit(status);
  };

  const keep = new Set<number>([appStderr]);
  if (source.kind === 'listen') keep.add(source.fd);
  if (logFd !== undefined) keep.add(logFd);
  closeInheritedFds(keep);

  let creds: Credentials;
  try {
    creds = readCredentials(config);
  } catch (e) {
    if (e instanceof CredentialsError) fatal(e.message, EXIT_CONFIG);
    throw e;
  }

  const env = appEnvironment(process.env, { keepEnv: config.keepEnv, fromListenFd: source.kind === 'listen' });
  const app = spawnApp(config.app, env, { stdin: fds.readFd, stdout: fds.writeFd, stderr: appStderr });

  let status: number | undefined;
  let summary: () => string | undefined = () => undefined;
  let tlsUp = false;
  let outboundDone = false;
  const maybeExit = (): void => {
    if (status === undefined) return;
    if (tlsUp && !outboundDone) return;
    const line = summary();
    if (line !== undefined) log.info(line);
    process.exit(status);
  };
  app.child.once('error', (e: NodeJS.ErrnoException) => {
    fatal(`cannot run ${config.app[0]}: ${e.code ?? e.message}`, spawnFailureStatus(e.code));
  });
  app.child.once('exit', (code, signal) => {
    status = exitStatus(code, signal);
    log.info(`app exited ${signal !== null ? `on ${signal}` : `with ${code}`}`);
    maybeExit();
  });
  for (const sig of FORWARDED_SIGNALS) {
    process.on(sig, () => {
      log.info(`${sig} passed to the app`);
      app.child.kill(sig);
    });
  }
  if (app.child.pid === undefined) return; // the 'error' above ends us

  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { startEngine } = require('./engine') as typeof import('./engine');
  const engine = startEngine({
    config,
    creds,
    fds,
    app,
    log,
    interfaceVersion: `${PROGRAM}/${VERSION}`,
    hooks: {
      tlsStarted: () => {
        tlsUp = true;
      },
      outboundDone: () => {
        outboundDone = true;
        maybeExit();
      },
    },
  });
  summary = engine.summary;
}

main();
