// The app's environment. Pure.
import { isHelperVariable } from '../helper/options';

/** fd numbers the app is given for the UCSPI-TLS channels. */
export const CTL_FD = 3;
export const READ_FD = 4;
export const WRITE_FD = 5;

const SYSTEMD_ENV = ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES'];

export interface EnvOptions {
  keepEnv: boolean;
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
    if (v === undefined || drop.has(k) || (!opts.keepEnv && isHelperVariable(k))) continue;
    out[k] = v;
  }
  if (opts.ucspiTls) {
    out.SSLCTLFD = String(CTL_FD);
    out.SSLREADFD = String(READ_FD);
    out.SSLWRITEFD = String(WRITE_FD);
  } else {
    // The implicit mode's app must not mistake inherited ones for a helper of its own.
    for (const n of ['SSLCTLFD', 'SSLREADFD', 'SSLWRITEFD']) delete out[n];
    // Only the helper may say what the session is: no SSL_CLIENT_VERIFY from outside.
    for (const n of Object.keys(out)) if (n.startsWith('SSL_')) delete out[n];
  }
  return out;
}
