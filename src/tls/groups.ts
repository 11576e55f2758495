// The key-exchange groups when TLS_GROUPS is not set: Mozilla's intermediate profile
// (guidelines 5.8), with the hybrid post-quantum X25519MLKEM768 first where the OpenSSL
// Node runs on has it (3.5 and later: Node 22.20+, 24, or a Node linked to such a system
// OpenSSL), and the same list without it elsewhere (OpenSSL 3.0: Node 20 as built upstream).

export const HYBRID_GROUP = 'X25519MLKEM768';
export const CLASSIC_GROUPS = 'X25519:prime256v1:secp384r1';

let known: string | undefined;

/** The default groups for this process's OpenSSL, asked of OpenSSL itself once. */
export function defaultGroups(): string {
  if (known === undefined) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { createSecureContext } = require('node:tls') as typeof import('node:tls');
    try {
      // `ca: []`: without it Node would parse its whole root store into this throwaway context.
      createSecureContext({ ecdhCurve: `${HYBRID_GROUP}:${CLASSIC_GROUPS}`, ca: [] });
      known = `${HYBRID_GROUP}:${CLASSIC_GROUPS}`;
    } catch {
      known = CLASSIC_GROUPS; // "Failed to set ECDH curve": an OpenSSL without the group
    }
  }
  return known;
}
