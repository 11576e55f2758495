// Process plumbing: configuration, fds, the app, signals, the exit status. The TLS engine
// is loaded only once the app runs, so the app's banner never waits for OpenSSL (and, in
// the implicit mode, the app's start overlaps the handshake).
import { existsSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { spawnApp, spawnFailureStatus, spawnImplicitApp, SpawnError, type App, type ImplicitApp } from '../process/app';
import type { AppProcess } from '../process/app-process';
import { commandMissing } from '../process/command-path';
import { clientSource, closeInheritedFds, locateClient } from '../process/client-fds';
import type { Credentials } from '../tls/credentials';
import { CredentialsError, loadCredentials } from '../tls/load';
import { expiryWarnings } from '../tls/expiry';
import { appEnvironment } from '../process/environment';
import { createLogger, fatalLine } from '../log';
import { cannotRunMessage, errnoOf, errorWords, keyDefaultMessage, logFileMessage, usageMessage } from '../messages';
import { parseArgs, PROGRAM, USAGE } from './options';
import { EXIT_CONFIG, EXIT_NO_TLS, EXIT_USAGE } from '../contract/exit-codes';
import { isSessionVariable } from '../session/policy-options';
import { dropPrivileges, planPrivileges } from '../process/privileges';
import { supervise } from '../process/supervise';
import { VERSION } from '../version';


function main(): void {
  // Node's default for SIGUSR1 opens the inspector, unauthenticated, in the process that
  // holds the key: a signal sent to every process of a service (systemctl kill) must not.
  process.on('SIGUSR1', () => {});
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
    fatalLine(parsed.status === EXIT_USAGE ? usageMessage(parsed.message, PROGRAM) : parsed.message, PROGRAM, 2);
    process.exit(parsed.status);
  }
  const config = parsed.config;

  const source = clientSource(process.env, process.pid);
  if (source.kind === 'error') {
    fatalLine(source.message, PROGRAM, 2);
    process.exit(EXIT_CONFIG);
  }
  const fds = locateClient(source);
  if (typeof fds === 'string') {
    fatalLine(fds, PROGRAM, 2);
    process.exit(EXIT_CONFIG);
  }

  // Where our log and the app's fd 2 go. Under xinetd fd 2 is the client: never there.
  let logFd: number | undefined = fds.stderrIsClient ? undefined : 2;
  let appStderr = 2;
  if (config.logFile !== undefined) {
    try {
      logFd = openSync(config.logFile, 'a', 0o640);
    } catch (e) {
      const folder = dirname(config.logFile);
      // Under xinetd fd 2 is the client: then the line goes to syslog.
      fatalLine(logFileMessage(config.logFile, errnoOf(e), folder, existsSync(folder)), PROGRAM, fds.stderrIsClient ? undefined : 2);
      process.exit(EXIT_CONFIG);
    }
  }
  if (fds.stderrIsClient) appStderr = logFd ?? openSync('/dev/null', 'w');
  const log = createLogger(logFd, config.verbosity, PROGRAM);
  const fatal = (message: string, status: number): never => {
    fatalLine(message, PROGRAM, logFd);
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
    creds = loadCredentials(config.tls);
  } catch (e) {
    if (e instanceof CredentialsError) fatal(keyDefaultMessage(e.message, process.env), EXIT_CONFIG);
    throw e;
  }

  const env = appEnvironment(process.env, {
    keepEnv: config.keepEnv,
    ours: isSessionVariable,
    fromListenFd: source.kind === 'listen',
    ucspiTls: !config.implicit,
  });
  let child: AppProcess;
  let implicitApp: ImplicitApp | undefined;
  let app: App | undefined;
  try {
    if (config.implicit) {
      const missing = commandMissing(config.app[0]!, env.PATH);
      if (missing !== undefined) fatal(cannotRunMessage(config.app[0]!, missing, env.PATH), spawnFailureStatus(missing));
      implicitApp = spawnImplicitApp(config.app, env, appStderr, plan.app);
      child = implicitApp.child;
    } else {
      app = spawnApp(config.app, env, { stdin: fds.readFd, stdout: fds.writeFd, stderr: appStderr }, plan.app);
      child = app.child;
    }
  } catch (e) {
    if (e instanceof SpawnError) fatal(cannotRunMessage(config.app[0]!, e.code, env.PATH), spawnFailureStatus(e.code));
    throw e;
  }

  const life = supervise(child, {
    appName: config.app[0]!,
    log,
    fatal,
    describeExit: (status, tlsUp) => (implicitApp !== undefined && !tlsUp && status === EXIT_NO_TLS ? 'app not started: no TLS' : undefined),
  });
  // On the log only, never the client; once, as the helper runs once per connection; after
  // the spawn, so that the app's banner does not wait for it.
  for (const line of expiryWarnings(config.tls, creds, Date.now())) log.warn(line);
  /* eslint-disable @typescript-eslint/no-require-imports */
  const engineModule = implicitApp !== undefined ? (require('./implicit') as typeof import('./implicit')) : undefined;
  const starttlsModule = app !== undefined ? (require('./starttls') as typeof import('./starttls')) : undefined;
  /* eslint-enable @typescript-eslint/no-require-imports */
  // Every module is loaded by now: the helper's new user need not read our files.
  if (plan.helper !== undefined) {
    try {
      dropPrivileges(plan.helper);
    } catch (e) {
      child.kill('SIGTERM');
      fatal(`cannot become ${plan.helper.uid}:${plan.helper.gid}: ${errorWords(e)}`, EXIT_CONFIG);
    }
    log.info(`helper now runs as ${plan.helper.uid}:${plan.helper.gid}`);
  }

  const common = { config, creds, fds, log, interfaceVersion: `${PROGRAM}/${VERSION}`, hooks: life.hooks };
  const engine =
    engineModule !== undefined ? engineModule.startImplicit({ ...common, app: implicitApp! }) : starttlsModule!.startEngine({ ...common, app: app! });
  life.setEngine(engine);
}

main();
