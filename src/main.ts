// Process plumbing: configuration, fds, the app, signals, the exit status. The TLS engine
// is loaded only once the app runs, so the app's banner never waits for OpenSSL.
import { openSync, writeSync } from 'node:fs';
import { exitStatus, FORWARDED_SIGNALS, spawnApp, spawnFailureStatus } from './app';
import { clientSource, closeInheritedFds, locateClient } from './client-fds';
import { CredentialsError, readCredentials, type Credentials } from './credentials';
import { appEnvironment } from './environment';
import { createLogger, fatalLine } from './log';
import { EXIT_CONFIG, parseArgs, PROGRAM, USAGE } from './options';
import { dropPrivileges, planPrivileges } from './privileges';

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

  const plan = planPrivileges(config.appIds, config.helperIds, { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
  if (typeof plan === 'string') return fatal(plan, EXIT_CONFIG);

  let creds: Credentials;
  try {
    creds = readCredentials(config.tls);
  } catch (e) {
    if (e instanceof CredentialsError) fatal(e.message, EXIT_CONFIG);
    throw e;
  }
  if (config.tls.customAlgorithms) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const refused = (require('./algorithm-check') as typeof import('./algorithm-check')).checkAlgorithms(config.tls, creds);
    if (refused !== undefined) fatal(refused, EXIT_CONFIG);
  }

  const env = appEnvironment(process.env, { keepEnv: config.keepEnv, fromListenFd: source.kind === 'listen' });
  const app = spawnApp(config.app, env, { stdin: fds.readFd, stdout: fds.writeFd, stderr: appStderr }, plan.app);

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
  app.child.on('error', (e: NodeJS.ErrnoException) => {
    if (app.child.pid === undefined) fatal(`cannot run ${config.app[0]}: ${e.code ?? e.message}`, spawnFailureStatus(e.code));
    // A signal the helper may not send: the app runs as another user than TLS_UID.
    log.warn(`cannot signal the app: ${e.code ?? e.message}`);
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
  // Every module is loaded by now: the helper's new user need not read our files.
  if (plan.helper !== undefined) {
    try {
      dropPrivileges(plan.helper);
    } catch (e) {
      app.child.kill('SIGTERM');
      fatal(`cannot become ${plan.helper.uid}:${plan.helper.gid}: ${(e as Error).message}`, EXIT_CONFIG);
    }
    log.info(`helper now runs as ${plan.helper.uid}:${plan.helper.gid}`);
  }

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
