// PEM files and private keys, checked in JavaScript before the app starts: loading OpenSSL
// for this would delay every connection's banner. Pure.
import { bytes, children, DerError, expect, oid, readTlv, TAG } from './der';
import type { PublicKeyInfo } from './x509';

export interface PemBlock {
  label: string;
  der: Buffer;
  /** The block as text, headers included, for handing on to OpenSSL unchanged. */
  pem: string;
  encrypted: boolean;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;

/** Every PEM block of a file; an Error for a block that is not base64 of one DER value. */
export function pemBlocks(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK)) {
    const label = m[1]!;
    const lines = m[2]!.split(/\r?\n/);
    let encrypted = false;
    // RFC 1421 headers (Proc-Type, DEK-Info) end at an empty line.
    if (lines.some((l) => /^[A-Za-z-]+:/.test(l))) {
      const blank = lines.indexOf('');
      encrypted = lines.some((l) => /^Proc-Type:.*ENCRYPTED/.test(l));
      lines.splice(0, blank + 1);
    }
    const body = lines.join('');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0 || body.length === 0) {
      throw new DerError(`the ${label} block is not valid base64`);
    }
    const der = Buffer.from(body, 'base64');
    const top = readTlv(der, 0);
    if (top.end !== der.length) throw new DerError(`the ${label} block has bytes after its DER value`);
    out.push({ label, der, pem: m[0], encrypted: encrypted || label === 'ENCRYPTED PRIVATE KEY' });
  }
  return out;
}

export const KEY_LABELS = ['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY', 'ENCRYPTED PRIVATE KEY'];

const RSA = '1.2.840.113549.1.1.1';
const RSA_PSS = '1.2.840.113549.1.1.10';
const EC = '1.2.840.10045.2.1';

/** What can be learnt of a private key without OpenSSL: its public half, where the encoding holds it. */
export type KeyPublic =
  | { kind: 'rsa'; modulus: Buffer; exponent: Buffer }
  | { kind: 'ec'; point: Buffer }
  /** Ed25519 and friends: PKCS#8 v1 carries no public key. */
  | { kind: 'unknown' };

function unsigned(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

function rsaPrivate(der: Buffer, start: number, end: number): KeyPublic {
  const seq = readTlv(der, start, end);
  const [, n, e] = children(der, expect(seq, TAG.SEQUENCE, 'RSAPrivateKey'));
  return {
    kind: 'rsa',
    modulus: unsigned(bytes(der, expect(n, TAG.INTEGER, 'modulus'))),
    exponent: unsigned(bytes(der, expect(e, TAG.INTEGER, 'publicExponent'))),
  };
}

function ecPrivate(der: Buffer, start: number, end: number): KeyPublic {
  const seq = readTlv(der, start, end);
  const pub = children(der, expect(seq, TAG.SEQUENCE, 'ECPrivateKey')).find((t) => t.tag === 0xa1);
  if (pub === undefined) return { kind: 'unknown' };
  const [bits] = children(der, pub);
  return { kind: 'ec', point: bytes(der, expect(bits, TAG.BIT_STRING, 'publicKey')).subarray(1) };
}

export function keyPublic(block: PemBlock): KeyPublic {
  const der = block.der;
  if (block.label === 'RSA PRIVATE KEY') return rsaPrivate(der, 0, der.length);
  if (block.label === 'EC PRIVATE KEY') return ecPrivate(der, 0, der.length);
  const [, alg, key] = children(der, expect(readTlv(der, 0), TAG.SEQUENCE, 'PrivateKeyInfo'));
  const [algOid] = children(der, expect(alg, TAG.SEQUENCE, 'AlgorithmIdentifier'));
  const a = oid(der, expect(algOid, TAG.OID, 'algorithm'));
  const inner = expect(key, TAG.OCTET_STRING, 'privateKey');
  if (a === RSA || a === RSA_PSS) return rsaPrivate(der, inner.start, inner.end);
  if (a === EC) return ecPrivate(der, inner.start, inner.end);
  return { kind: 'unknown' };
}

/** true or false when the key's public half could be compared with the certificate's; undefined when not. */
export function keyMatchesCertificate(key: KeyPublic, cert: PublicKeyInfo): boolean | undefined {
  if (key.kind === 'unknown') return undefined;
  if (key.kind === 'ec') return cert.algorithm === EC && cert.key.equals(key.point);
  if (cert.algorithm !== RSA && cert.algorithm !== RSA_PSS) return false;
  const [n, e] = children(cert.key, expect(readTlv(cert.key, 0), TAG.SEQUENCE, 'RSAPublicKey'));
  return (
    unsigned(bytes(cert.key, expect(n, TAG.INTEGER, 'modulus'))).equals(key.modulus) &&
    unsigned(bytes(cert.key, expect(e, TAG.INTEGER, 'publicExponent'))).equals(key.exponent)
  );
}
