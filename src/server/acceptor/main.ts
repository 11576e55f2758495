// ucspi-tls-server's entry: reads and checks the configuration, then runs the acceptor
// (acceptor.ts), which starts the spawner while still root. See ucspi-tls-server(1).
import { existsSync, writeSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { cannotRunMessage } from '../../messages';
import { spawnFailureStatus } from '../../process/app';
import { closeInheritedFds } from '../../process/client-fds';
import { commandMissing } from '../../process/command-path';
import { VERSION } from '../../version';
import { EXIT_CONFIG } from '../../contract/exit-codes';
import { keepYoungGenerationSmall } from '../../runtime/young-generation';
import { RulesFile } from '../access/rules-file';
import { reusePortRefusal } from '../lifecycle/reuse-port';
import { parseServerArgs, SERVER_PROGRAM, USAGE } from '../options';
import { planServerPrivileges } from '../privileges';
import { Acceptor } from './acceptor';
import { fatal } from './fatal';

/** The spawner's and the worker's entries, built beside this one (build/ucspi-tls-server-*.js). */
const SPAWNER_FILE = join(__dirname, '..', '..', '..', 'ucspi-tls-server-spawner.js');
const WORKER_FILE = join(__dirname, '..', '..', '..', 'ucspi-tls-server-worker.js');

async function main(): Promise<void> {
  // Until the figures' handler is in place (see Acceptor.run): never Node's default, the inspector.
  process.on('SIGUSR1', () => {});
  const parsed = parseServerArgs(process.argv.slice(2), process.env, availableParallelism(), process.pid);
  if (parsed.kind === 'help') {
    writeSync(1, `${USAGE}\n`);
    process.exit(0);
  }
  if (parsed.kind === 'version') {
    writeSync(1, `${SERVER_PROGRAM} ${VERSION}\n`);
    process.exit(0);
  }
  if (parsed.kind === 'error') fatal(parsed.message, parsed.status);
  const config = parsed.config;
  if (config.reusePort) {
    const refused = reusePortRefusal(process.versions.node);
    if (refused !== undefined) fatal(refused, EXIT_CONFIG);
  }
  keepYoungGenerationSmall();

  // Fds inherited without close-on-exec would leak into every app.
  closeInheritedFds(new Set(config.listen.kind === 'systemd' ? config.listen.fds : []));

  const plan = planServerPrivileges(config.appIds, config.workerIds, { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
  if (typeof plan === 'string') fatal(plan, EXIT_CONFIG);

  const missing = commandMissing(config.app[0]!, process.env.PATH);
  if (missing !== undefined) fatal(cannotRunMessage(config.app[0]!, missing, process.env.PATH), spawnFailureStatus(missing));
  for (const [what, file] of [['spawner', SPAWNER_FILE], ['TLS worker', WORKER_FILE]] as const) if (!existsSync(file)) fatal(`the ${what} ${file} is missing`, EXIT_CONFIG);

  const rules = config.rules !== undefined ? new RulesFile(config.rules.path, config.rules.optional) : undefined;
  const unusable = rules?.check();
  if (unusable !== undefined) fatal(unusable, EXIT_CONFIG);

  await new Acceptor(config, plan, rules, SPAWNER_FILE).run();
}

void main();
