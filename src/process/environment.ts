// The app's environment. Pure.
import { FD_VARIABLES, fdVariables } from '../contract/fds';

const SYSTEMD_ENV = ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES'];

export interface EnvOptions {
  keepEnv: boolean;
  /** The variables the program read for itself: removed, unless keepEnv (-e). */
  ours(name: string): boolean;
  /** The connection came as a systemd fd: the app gets it on 0/1, not as LISTEN_FDS. */
  fromListenFd: boolean;
  /** Name the UCSPI-TLS fds (not in the implicit mode, where the app has only 0, 1, 2). */
  ucspiTls: boolean;
}

export function appEnvironment(
  env: Readonly<Record<string, string | undefined>>,
  opts: EnvOptions,
): Record<string, string> {
  const drop = new Set<string>();
  if (opts.fromListenFd) for (const n of SYSTEMD_ENV) drop.add(n);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined || drop.has(k) || (!opts.keepEnv && opts.ours(k))) continue;
    out[k] = v;
  }
  if (opts.ucspiTls) {
    Object.assign(out, fdVariables());
  } else {
    // The implicit mode's app must not mistake inherited ones for a helper of its own.
    for (const n of FD_VARIABLES) delete out[n];
    // Only the helper may say what the session is: no SSL_CLIENT_VERIFY from outside.
    for (const n of Object.keys(out)) if (n.startsWith('SSL_')) delete out[n];
  }
  return out;
}
