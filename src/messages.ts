// How a fatal condition is said to an operator: errno codes in words, a pointer to --help
// after a usage error, and the default behind a file that has no key. Pure.

const ERRNO_WORDS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a directory',
  ENOTDIR: 'a part of the path is not a directory',
  ELOOP: 'too many symbolic links',
  ENOEXEC: 'not an executable format',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EMFILE: 'too many open files',
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available on this host',
};

/** An errno code (ENOENT) as words (no such file); an unknown code as it is. */
export function errnoWords(code: string | undefined): string {
  if (code === undefined) return 'error';
  return ERRNO_WORDS[code] ?? code;
}

/** The code of a Node system error, if it has one. */
export function errnoOf(e: unknown): string | undefined {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Any error from Node: its errno in words when it has one, else its message. */
export function errorWords(e: unknown): string {
  const code = errnoOf(e);
  return code !== undefined ? errnoWords(code) : String((e as Error | undefined)?.message ?? e);
}

/** A usage error, with where the usage is. */
export function usageMessage(message: string, program: string): string {
  return `${message} (see ${program} --help)`;
}

/** The app could not be started: ENOENT for a bare name means it is not in PATH. */
export function cannotRunMessage(app: string, code: string, path: string | undefined): string {
  if (code === 'ENOENT' && !app.includes('/')) return `cannot run ${app}: not found in PATH ${path ?? '(unset)'}`;
  return `cannot run ${app}: ${errnoWords(code)}`;
}

/** The -l file could not be opened; a missing folder is named, since nobody creates it. */
export function logFileMessage(file: string, code: string | undefined, folder: string, folderExists: boolean): string {
  const why = code === 'ENOENT' && !folderExists ? `no such directory ${folder}` : errnoWords(code);
  return `cannot open log file ${file}: ${why}`;
}

/**
 * A key file without a key, read from CERTFILE because KEYFILE is unset: say so, since the
 * line names a file the operator never called KEYFILE. Other messages come back unchanged.
 */
export function keyDefaultMessage(message: string, env: Readonly<Record<string, string | undefined>>): string {
  const m = /^KEYFILE(:\S+)? (.+): no private key in the file$/.exec(message);
  if (m === null) return message;
  const suffix = m[1] ?? '';
  if ((env[`KEYFILE${suffix}`] ?? '') !== '') return message;
  return `CERTFILE${suffix} ${m[2]}: no private key in the file, and KEYFILE${suffix} is not set (KEYFILE defaults to CERTFILE): set KEYFILE${suffix} to the key's file`;
}
