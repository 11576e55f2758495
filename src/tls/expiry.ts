// The certificates served that expire soon: one warning line each, so that a failed
// renewal is heard of before the first client refuses the certificate. Pure.
import type { TlsConfig } from './config';
import type { Credentials } from './credentials';

/** How close to its notAfter a certificate is warned of. */
export const EXPIRY_WARNING_DAYS = 14;

const DAY_MS = 86_400_000;

/**
 * One line per leaf certificate that expires within `days` of `nowMs` (or has expired),
 * naming the variable and file it came from. `creds` was read from `tls`: same order.
 */
export function expiryWarnings(tls: Pick<TlsConfig, 'identities'>, creds: Credentials, nowMs: number, days = EXPIRY_WARNING_DAYS): string[] {
  const lines: string[] = [];
  creds.identities.forEach((identity, i) => {
    identity.pairs.forEach((pair, j) => {
      const left = pair.leaf.notAfterMs - nowMs;
      if (left >= days * DAY_MS) return;
      const variable = identity.name === undefined ? 'CERTFILE' : `CERTFILE:${identity.name}`;
      const file = tls.identities[i]?.pairs[j]?.certFile ?? '';
      const when = left <= 0 ? 'has expired' : `expires in ${inWords(left)}`;
      lines.push(`warning: the certificate in ${variable} ${file} (serial ${pair.leaf.serial}) ${when}: notAfter ${pair.leaf.notAfter}`);
    });
  });
  return lines;
}

/** Whole days, rounded up (a certificate made for 3 days "expires in 3 days"); hours below one day. */
function inWords(ms: number): string {
  if (ms >= DAY_MS) {
    const d = Math.ceil(ms / DAY_MS);
    return `${d} day${d === 1 ? '' : 's'}`;
  }
  const h = Math.ceil(ms / 3_600_000);
  return `${h} hour${h === 1 ? '' : 's'}`;
}
