// A fatal line (the usage for a usage error) and the exit status: the acceptor's end at start.
import { fatalLine } from '../../log';
import { usageMessage } from '../../messages';
import { EXIT_USAGE } from '../../contract/exit-codes';
import { SERVER_PROGRAM } from '../options';

export function fatal(message: string, status: number): never {
  fatalLine(status === EXIT_USAGE ? usageMessage(message, SERVER_PROGRAM) : message, SERVER_PROGRAM, 2);
  process.exit(status);
}

