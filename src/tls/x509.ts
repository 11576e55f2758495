// The parts of an X.509 certificate that mod_ssl's variables show. Pure.
import { bytes, children, epochMs, expect, oid, readTlv, TAG, text, time, type Tlv } from './der';

export interface NameEntry {
  /** Dotted OID of the attribute type. */
  type: string;
  value: string;
  /** Index of the RDN (SET) the entry belongs to; entries of one RDN share it. */
  rdn: number;
  /** The value's own DER, for attributes that have no name. */
  der: Buffer;
}

export interface CertInfo {
  version: number;
  /** Hex, upper case, as OpenSSL's i2a_ASN1_INTEGER. */
  serial: string;
  subject: NameEntry[];
  issuer: NameEntry[];
  notBefore: string;
  notAfter: string;
  sigAlg: string;
  keyAlg: string;
  /** notAfter as milliseconds since the epoch, for the days that remain. */
  notAfterMs: number;
  publicKey: PublicKeyInfo;
  /** subjectAltName entries of the kinds mod_ssl shows, in certificate order. */
  sanEmail: string[];
  sanDns: string[];
}

export interface PublicKeyInfo {
  /** Dotted OID of the key algorithm. */
  algorithm: string;
  /** Dotted OID of the named curve, for EC keys. */
  curve?: string;
  /** The subjectPublicKey BIT STRING contents, without the unused-bits octet. */
  key: Buffer;
}

/** OpenSSL long names (what mod_ssl prints for A_SIG and A_KEY). */
const ALGORITHMS: Record<string, string> = {
  '1.2.840.113549.1.1.1': 'rsaEncryption',
  '1.2.840.113549.1.1.4': 'md5WithRSAEncryption',
  '1.2.840.113549.1.1.5': 'sha1WithRSAEncryption',
  '1.2.840.113549.1.1.10': 'rsassaPss',
  '1.2.840.113549.1.1.11': 'sha256WithRSAEncryption',
  '1.2.840.113549.1.1.12': 'sha384WithRSAEncryption',
  '1.2.840.113549.1.1.13': 'sha512WithRSAEncryption',
  '1.2.840.113549.1.1.14': 'sha224WithRSAEncryption',
  '1.2.840.10045.2.1': 'id-ecPublicKey',
  '1.2.840.10045.4.1': 'ecdsa-with-SHA1',
  '1.2.840.10045.4.3.1': 'ecdsa-with-SHA224',
  '1.2.840.10045.4.3.2': 'ecdsa-with-SHA256',
  '1.2.840.10045.4.3.3': 'ecdsa-with-SHA384',
  '1.2.840.10045.4.3.4': 'ecdsa-with-SHA512',
  '1.2.840.10040.4.1': 'dsaEncryption',
  '1.2.840.10040.4.3': 'dsaWithSHA1',
  '2.16.840.1.101.3.4.3.2': 'dsa_with_SHA256',
  '1.3.101.112': 'ED25519',
  '1.3.101.113': 'ED448',
};

export function algorithmName(dotted: string): string {
  return ALGORITHMS[dotted] ?? 'UNKNOWN';
}

/** OpenSSL short names, used in RFC 2253 strings. */
const ATTRIBUTE_SHORT: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.4': 'SN',
  '2.5.4.5': 'serialNumber',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.9': 'street',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.12': 'title',
  '2.5.4.13': 'description',
  '2.5.4.15': 'businessCategory',
  '2.5.4.17': 'postalCode',
  '2.5.4.41': 'name',
  '2.5.4.42': 'GN',
  '2.5.4.43': 'initials',
  '2.5.4.46': 'dnQualifier',
  '2.5.4.65': 'pseudonym',
  '0.9.2342.19200300.100.1.1': 'UID',
  '0.9.2342.19200300.100.1.25': 'DC',
  '1.2.840.113549.1.9.1': 'emailAddress',
  '1.3.6.1.4.1.311.60.2.1.1': 'jurisdictionL',
  '1.3.6.1.4.1.311.60.2.1.2': 'jurisdictionST',
  '1.3.6.1.4.1.311.60.2.1.3': 'jurisdictionC',
};

/** mod_ssl's component suffixes (`SSL_*_S_DN_CN`, ...), in its table's terms. */
export const DN_COMPONENTS: Record<string, string> = {
  '2.5.4.6': 'C',
  '2.5.4.8': 'ST',
  '2.5.4.7': 'L',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.3': 'CN',
  '2.5.4.12': 'T',
  '2.5.4.43': 'I',
  '2.5.4.42': 'G',
  '2.5.4.4': 'S',
  '2.5.4.13': 'D',
  '0.9.2342.19200300.100.1.1': 'UID',
  '1.2.840.113549.1.9.1': 'Email',
};

function parseName(buf: Uint8Array, name: Tlv): NameEntry[] {
  const out: NameEntry[] = [];
  children(buf, expect(name, TAG.SEQUENCE, 'Name')).forEach((set, rdn) => {
    for (const atv of children(buf, expect(set, TAG.SET, 'RDN'))) {
      const [type, value] = children(buf, expect(atv, TAG.SEQUENCE, 'AttributeTypeAndValue'));
      if (value === undefined) continue;
      out.push({
        type: oid(buf, expect(type, TAG.OID, 'attribute type')),
        value: text(buf, value),
        rdn,
        der: Buffer.from(buf.subarray(value.pos, value.end)),
      });
    }
  });
  return out;
}

function serialHex(b: Buffer): string {
  // Drop the sign-padding zero DER adds; keep at least one byte, as OpenSSL does.
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i).toString('hex').toUpperCase();
}

function publicKeyInfo(buf: Uint8Array, spki: Tlv): PublicKeyInfo {
  const [algId, bits] = children(buf, expect(spki, TAG.SEQUENCE, 'SubjectPublicKeyInfo'));
  const [o, params] = children(buf, expect(algId, TAG.SEQUENCE, 'AlgorithmIdentifier'));
  const out: PublicKeyInfo = {
    algorithm: oid(buf, expect(o, TAG.OID, 'algorithm')),
    key: bytes(buf, expect(bits, TAG.BIT_STRING, 'subjectPublicKey')).subarray(1),
  };
  if (params?.tag === TAG.OID) out.curve = oid(buf, params);
  return out;
}

const SUBJECT_ALT_NAME = '2.5.29.17';
const GENERAL_NAME_EMAIL = 0x81;
const GENERAL_NAME_DNS = 0x82;

function altNames(buf: Uint8Array, extensions: Tlv | undefined): { sanEmail: string[]; sanDns: string[] } {
  const out = { sanEmail: [] as string[], sanDns: [] as string[] };
  if (extensions === undefined) return out;
  const [list] = children(buf, extensions);
  for (const ext of children(buf, expect(list, TAG.SEQUENCE, 'Extensions'))) {
    const parts = children(buf, expect(ext, TAG.SEQUENCE, 'Extension'));
    if (oid(buf, expect(parts[0], TAG.OID, 'extnID')) !== SUBJECT_ALT_NAME) continue;
    const value = expect(parts[parts.length - 1], TAG.OCTET_STRING, 'extnValue');
    const names = readTlv(buf, value.start, value.end);
    for (const n of children(buf, expect(names, TAG.SEQUENCE, 'GeneralNames'))) {
      if (n.tag === GENERAL_NAME_EMAIL) out.sanEmail.push(bytes(buf, n).toString('latin1'));
      if (n.tag === GENERAL_NAME_DNS) out.sanDns.push(bytes(buf, n).toString('latin1'));
    }
  }
  return out;
}

function algorithm(buf: Uint8Array, t: Tlv | undefined): string {
  const [o] = children(buf, expect(t, TAG.SEQUENCE, 'AlgorithmIdentifier'));
  return algorithmName(oid(buf, expect(o, TAG.OID, 'algorithm')));
}

export function parseCertificate(der: Uint8Array): CertInfo {
  const cert = readTlv(der, 0);
  const [tbs, sigAlg] = children(der, expect(cert, TAG.SEQUENCE, 'Certificate'));
  const fields = children(der, expect(tbs, TAG.SEQUENCE, 'TBSCertificate'));
  let i = 0;
  let version = 1;
  if (fields[0]?.tag === 0xa0) {
    const [v] = children(der, fields[0]);
    version = bytes(der, expect(v, TAG.INTEGER, 'version')).readUIntBE(0, 1) + 1;
    i = 1;
  }
  const serial = serialHex(bytes(der, expect(fields[i], TAG.INTEGER, 'serialNumber')));
  const issuer = parseName(der, fields[i + 2]!);
  const [nb, na] = children(der, expect(fields[i + 3], TAG.SEQUENCE, 'Validity'));
  const subject = parseName(der, fields[i + 4]!);
  const spki = expect(fields[i + 5], TAG.SEQUENCE, 'SubjectPublicKeyInfo');
  const [keyAlg] = children(der, spki);
  if (nb === undefined || na === undefined) throw new Error('DER: incomplete Validity');
  const extensions = fields.slice(i + 6).find((f) => f.tag === 0xa3);
  return {
    version,
    serial,
    subject,
    issuer,
    notBefore: time(der, nb),
    notAfter: time(der, na),
    sigAlg: algorithm(der, sigAlg),
    keyAlg: algorithm(der, keyAlg),
    notAfterMs: epochMs(der, na),
    publicKey: publicKeyInfo(der, spki),
    ...altNames(der, extensions),
  };
}

function escape2253(v: string): string {
  let s = v.replace(/[,+"\\<>;]/g, (c) => `\\${c}`);
  // eslint-disable-next-line no-control-regex
  s = s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
  if (s.startsWith('#') || s.startsWith(' ')) s = `\\${s}`;
  if (s.endsWith(' ') && !s.endsWith('\\ ')) s = `${s.slice(0, -1)}\\ `;
  return s;
}

/** RFC 2253 string, most specific first, as mod_ssl 2.4 gives `SSL_*_S_DN`. */
export function rfc2253(entries: readonly NameEntry[]): string {
  let out = '';
  for (let k = entries.length - 1; k >= 0; k--) {
    const e = entries[k]!;
    if (k < entries.length - 1) out += entries[k + 1]!.rdn === e.rdn ? '+' : ',';
    const short = ATTRIBUTE_SHORT[e.type];
    out += short !== undefined ? `${short}=${escape2253(e.value)}` : `${e.type}=#${e.der.toString('hex').toUpperCase()}`;
  }
  return out;
}

/** OpenSSL's X509_NAME_oneline form, `/C=DE/O=Example/CN=mail`, as libtls and so s6 give it. */
export function oneline(entries: readonly NameEntry[]): string {
  let out = '';
  entries.forEach((e, k) => {
    out += k > 0 && entries[k - 1]!.rdn === e.rdn ? '+' : '/';
    const value = Array.from(Buffer.from(e.value, 'utf8'))
      .map((b) => (b < 0x20 || b > 0x7e ? `\\x${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b)))
      .join('');
    out += `${ATTRIBUTE_SHORT[e.type] ?? e.type}=${value}`;
  });
  return out;
}
