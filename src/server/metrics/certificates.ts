// Each certificate served, for the metrics: its server name, its key type and its notAfter
// (the alert before expiry is the operator's rule on it). Pure.
import type { Credentials } from '../../tls/credentials';

export interface CertificateRow {
  /** CERTFILE:name's name; empty for CERTFILE, the default certificate. */
  name: string;
  keyType: string;
  notAfterSeconds: number;
}

/** Short names of the key algorithms, as operators write them (one certificate per type and name). */
const KEY_TYPES: Record<string, string> = {
  '1.2.840.113549.1.1.1': 'rsa',
  '1.2.840.113549.1.1.10': 'rsa-pss',
  '1.2.840.10045.2.1': 'ec',
  '1.2.840.10040.4.1': 'dsa',
  '1.3.101.112': 'ed25519',
  '1.3.101.113': 'ed448',
};

export function keyType(algorithmOid: string): string {
  return KEY_TYPES[algorithmOid] ?? algorithmOid;
}

export function certificateRows(creds: Credentials): CertificateRow[] {
  return creds.identities.flatMap((identity) =>
    identity.pairs.map((p) => ({ name: identity.name ?? '', keyType: keyType(p.leaf.publicKey.algorithm), notAfterSeconds: Math.floor(p.leaf.notAfterMs / 1000) })),
  );
}
