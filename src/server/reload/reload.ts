// SIGHUP (or a change --watch saw): read every file of the TLS policy again, with the very
// checks of the start, and hand the new set to the workers for new handshakes. Sessions
// already running keep the contexts they were made with. A set that fails a check changes
// nothing: the old one stays in use, and one line says why.
//
// Everything here is synchronous: two reloads never overlap, and the last one asked for
// reads the newest files.
import type { Logger } from '../../log';
import { errorWords, keyDefaultMessage } from '../../messages';
import type { TlsConfig } from '../../tls/config';
import type { Credentials } from '../../tls/credentials';
import { CredentialsError, loadCredentials } from '../../tls/load';

export type ReloadResult = { ok: true; creds: Credentials } | { ok: false; why: string };

export interface ReloadDeps {
  tls: TlsConfig;
  env: Readonly<Record<string, string | undefined>>;
  /** The ticket key made at start when TICKETKEYFILE is unset: kept, so tickets still resume. */
  generatedTicketKey: Buffer | undefined;
  /** Builds the TLS contexts as a worker will; returns why OpenSSL refused them, if it did. */
  opensslRefuses(creds: Credentials): string | undefined;
}

/**
 * Read and check the files again; the same checks, and the same words, as at start.
 * `current`: the set in use, whose ticket key becomes the previous one when the file changed.
 */
export function readAgain(d: ReloadDeps, current: Credentials): ReloadResult {
  let creds: Credentials;
  try {
    creds = loadCredentials(d.tls);
  } catch (e) {
    if (e instanceof CredentialsError) return { ok: false, why: keyDefaultMessage(e.message, d.env) };
    // At start this would end the server; while it serves, the old set goes on.
    return { ok: false, why: errorWords(e) };
  }
  if (d.tls.ticketKeyFile === undefined) creds.ticketKeys = d.generatedTicketKey;
  const previous = previousTicketKey(current, creds.ticketKeys);
  if (previous !== undefined) creds.previousTicketKeys = previous;
  const refused = d.opensslRefuses(creds);
  if (refused !== undefined) return { ok: false, why: refused };
  return { ok: true, creds };
}

/** The serial numbers of the leaf certificates, each name's in turn. */
export function serials(creds: Credentials): string[] {
  return creds.identities.flatMap((i) => i.pairs.map((p) => p.leaf.serial));
}

export function reloadedLine(trigger: string, creds: Credentials): string {
  const s = serials(creds);
  return `reloaded (${trigger}): ${s.length} certificate${s.length === 1 ? '' : 's'}, serial ${s.join(' ')}`;
}

export function reloadRefusedLine(trigger: string, why: string): string {
  return `reload (${trigger}) refused: ${why}; still serving the files read before`;
}

/** The key to keep accepting: the one in use if the file brought another, else the one kept before. */
export function previousTicketKey(current: Credentials, next: Buffer | undefined): Buffer | undefined {
  if (next === undefined || current.ticketKeys === undefined) return undefined;
  return next.equals(current.ticketKeys) ? current.previousTicketKeys : current.ticketKeys;
}

export class Reloader {
  /** The log line of the last reload, if it was refused. */
  refused: string | undefined;

  constructor(
    private readonly deps: ReloadDeps,
    /** The set the workers use. */
    private current: Credentials,
    /** Hands the new set to every worker, and to the workers started later. */
    private readonly apply: (creds: Credentials) => void,
    private readonly log: Logger,
  ) {}

  reload(trigger: string): boolean {
    const r = readAgain(this.deps, this.current);
    if (!r.ok) {
      this.refused = reloadRefusedLine(trigger, r.why);
      this.log.warn(this.refused);
      return false;
    }
    this.refused = undefined;
    this.current = r.creds;
    this.apply(r.creds);
    this.log.warn(reloadedLine(trigger, r.creds));
    return true;
  }
}

/**
 * The contexts built as a worker builds them at start, where OpenSSL's own refusals show
 * (a start that fails them is fatal). Loaded only for a reload: the launcher needs no TLS.
 */
export function opensslCheck(tls: TlsConfig, creds: Credentials, log: Logger, interfaceVersion: string): string | undefined {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createAcceptor } = require('../../tls/accept') as typeof import('../../tls/accept');
  return createAcceptor(tls, creds, log, interfaceVersion).broken;
}
