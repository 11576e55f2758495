// The TLS policy from the environment: certificates per server name, client certificates,
// versions, ciphers, tickets, OCSP, ALPN. Pure: the files are named here, read elsewhere.

/**
 * Mozilla's "intermediate" profile (guidelines 5.8): what a current client and a 2017 one
 * both speak. TLS 1.2 with ECDHE and AEAD only; the default groups are in ./groups.
 */
export const DEFAULT_CIPHERS =
  'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:' +
  'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305';
/** Finite-field DHE, after the default suites when the operator gives DH parameters (DHFILE). */
export const DHE_CIPHERS = 'DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305';
export const DEFAULT_CIPHERSUITES = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';

export type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
const VERSIONS: readonly TlsVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

export type ClientCertMode = 'none' | 'request' | 'require';

export interface KeyPair {
  certFile: string;
  keyFile: string;
  ocspFile?: string;
}

export interface Identity {
  /** The server name (`mail.example.com`, `*.example.com`); undefined for the default pair. */
  name?: string;
  /** One pair per key type (RSA, ECDSA, ...), in the operator's order of preference. */
  pairs: KeyPair[];
}

export interface TlsConfig extends TlsPolicy {
  identities: Identity[];
  clientCert: ClientCertMode;
  caFile?: string;
  caDir?: string;
  clientCaFile?: string;
  verifyDepth?: number;
  dhFile?: string;
  ticketKeyFile?: string;
  strictSni: boolean;
  certPem: boolean;
  s6Vars: boolean;
}

export interface TlsFlags {
  clientCert: ClientCertMode;
  strictSni: boolean;
  certPem: boolean;
  s6Vars: boolean;
}

/** Plain variables the helper reads (the per-name ones are matched by isTlsVariable). */
export const TLS_ENV = [
  'CERTFILE',
  'KEYFILE',
  'CERTCHAINFILE',
  'OCSPFILE',
  'CAFILE',
  'CADIR',
  'CCAFILE',
  'VERIFYDEPTH',
  'CIPHERS',
  'CIPHERSUITES',
  'TLS_GROUPS',
  'TLS_MIN_VERSION',
  'TLS_MAX_VERSION',
  'DHFILE',
  'TICKETKEYFILE',
  'ALPN',
] as const;

const PER_NAME = /^(CERTFILE|KEYFILE|OCSPFILE):(.+)$/;

export function isTlsVariable(name: string): boolean {
  return (TLS_ENV as readonly string[]).includes(name) || PER_NAME.test(name);
}

export type Env = Readonly<Record<string, string | undefined>>;

/** A variable's value; unset and empty are the same. */
export function nonEmpty(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

/** `a:b` -> [a, b]: one file per key type, as PATH lists directories. */
function fileList(v: string): string[] {
  return v.split(':').filter((s) => s !== '');
}

const LABEL = '[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?';
const HOST_NAME = new RegExp(`^${LABEL}(\\.${LABEL})*\\.?$`);

/** A server name as configured: a host name, or `*.` and a host name. Lower case, no trailing dot. */
export function normalizeServerName(raw: string): string | undefined {
  const name = raw.toLowerCase().replace(/\.$/, '');
  const rest = name.startsWith('*.') ? name.slice(2) : name;
  return HOST_NAME.test(rest) ? name : undefined;
}

export function parseVersion(v: string): TlsVersion | undefined {
  const m = /^(?:tlsv?)?(1(?:\.[0-3])?)$/i.exec(v.trim());
  if (m === null) return undefined;
  const n = m[1] === '1' || m[1] === '1.0' ? 'TLSv1' : `TLSv${m[1]!}`;
  return (VERSIONS as readonly string[]).includes(n) ? (n as TlsVersion) : undefined;
}

function pairs(what: string, certs: string[], keys: string[] | undefined, ocsp: string[] | undefined): KeyPair[] | string {
  const keyList = keys ?? certs;
  if (keyList.length !== certs.length) {
    return `${what}: ${certs.length} certificate file(s) but ${keyList.length} key file(s)`;
  }
  // Node asks for the stapled response before OpenSSL picks among several certificates:
  // it could staple one certificate's response to another.
  if (ocsp !== undefined && certs.length > 1) {
    return `${what.replace('CERTFILE', 'OCSPFILE')}: stapling needs a single certificate for the name, not ${certs.length}`;
  }
  return certs.map((certFile, i) => {
    const p: KeyPair = { certFile, keyFile: keyList[i]! };
    if (ocsp !== undefined) p.ocspFile = ocsp[i]!;
    return p;
  });
}

function identities(env: Env): Identity[] | string {
  const out: Identity[] = [];
  const certs = nonEmpty(env, 'CERTCHAINFILE') ?? nonEmpty(env, 'CERTFILE');
  if (certs !== undefined) {
    // A key in CERTFILE next to a chain in CERTCHAINFILE, as ucspi-ssl allows.
    const keys = nonEmpty(env, 'KEYFILE') ?? nonEmpty(env, 'CERTFILE');
    const ocsp = nonEmpty(env, 'OCSPFILE');
    const p = pairs('CERTFILE', fileList(certs), keys === undefined ? undefined : fileList(keys), ocsp === undefined ? undefined : fileList(ocsp));
    if (typeof p === 'string') return p;
    out.push({ pairs: p });
  }
  const named = new Map<string, { cert?: string; key?: string; ocsp?: string }>();
  for (const [k, v] of Object.entries(env)) {
    const m = PER_NAME.exec(k);
    if (m === null || v === undefined || v === '') continue;
    const name = normalizeServerName(m[2]!);
    if (name === undefined) return `${k}: '${m[2]!}' is not a host name or *.domain`;
    const entry = named.get(name) ?? {};
    const field = m[1] === 'CERTFILE' ? 'cert' : m[1] === 'KEYFILE' ? 'key' : 'ocsp';
    if (entry[field] !== undefined) return `${k}: the name ${name} is given twice`;
    entry[field] = v;
    named.set(name, entry);
  }
  for (const [name, e] of [...named].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (e.cert === undefined) return `${e.key !== undefined ? 'KEYFILE' : 'OCSPFILE'}:${name} is set but CERTFILE:${name} is not`;
    const p = pairs(
      `CERTFILE:${name}`,
      fileList(e.cert),
      e.key === undefined ? undefined : fileList(e.key),
      e.ocsp === undefined ? undefined : fileList(e.ocsp),
    );
    if (typeof p === 'string') return p;
    out.push({ name, pairs: p });
  }
  if (out.length === 0) return 'CERTFILE is not set';
  return out;
}

/** What both sides take from the environment: versions, algorithms, ALPN. */
export interface TlsPolicy {
  minVersion: TlsVersion;
  maxVersion: TlsVersion;
  ciphers: string;
  cipherSuites: string;
  /** TLS_GROUPS; undefined: the defaults for the OpenSSL in use (./groups). */
  groups?: string;
  /** True when CIPHERS, CIPHERSUITES or TLS_GROUPS differ from the defaults: OpenSSL must judge them. */
  customAlgorithms: boolean;
  alpn?: string[];
}

/** ucspi-tls-client's: the policy, its trust anchors and its own certificate. */
export interface ClientTlsConfig extends TlsPolicy {
  caFile?: string;
  caDir?: string;
  /** A client certificate to present (CERTFILE, KEYFILE). */
  pair?: KeyPair;
}

export function readPolicy(env: Env): TlsPolicy | string {
  const minRaw = nonEmpty(env, 'TLS_MIN_VERSION');
  const maxRaw = nonEmpty(env, 'TLS_MAX_VERSION');
  const minVersion = minRaw === undefined ? 'TLSv1.2' : parseVersion(minRaw);
  if (minVersion === undefined) return `TLS_MIN_VERSION: '${minRaw!}' is not one of 1.0, 1.1, 1.2, 1.3`;
  const maxVersion = maxRaw === undefined ? 'TLSv1.3' : parseVersion(maxRaw);
  if (maxVersion === undefined) return `TLS_MAX_VERSION: '${maxRaw!}' is not one of 1.0, 1.1, 1.2, 1.3`;
  if (VERSIONS.indexOf(minVersion) > VERSIONS.indexOf(maxVersion)) {
    return `TLS_MIN_VERSION ${minVersion} is above TLS_MAX_VERSION ${maxVersion}`;
  }
  const out: TlsPolicy = {
    minVersion,
    maxVersion,
    ciphers: nonEmpty(env, 'CIPHERS') ?? DEFAULT_CIPHERS,
    cipherSuites: nonEmpty(env, 'CIPHERSUITES') ?? DEFAULT_CIPHERSUITES,
    customAlgorithms: ['CIPHERS', 'CIPHERSUITES', 'TLS_GROUPS'].some((n) => nonEmpty(env, n) !== undefined),
  };
  const groups = nonEmpty(env, 'TLS_GROUPS');
  if (groups !== undefined) out.groups = groups;
  const alpn = nonEmpty(env, 'ALPN');
  if (alpn !== undefined) {
    const list = alpn.split(',').map((s) => s.trim()).filter((s) => s !== '');
    const bad = list.find((p) => Buffer.byteLength(p) > 255 || !/^[\x21-\x7e]+$/.test(p));
    if (list.length === 0 || bad !== undefined) return `ALPN: '${bad ?? alpn}' is not a protocol name list (comma separated)`;
    out.alpn = list;
  }
  return out;
}

/** The policy, or the one line that says what is wrong. */
export function readTlsConfig(env: Env, flags: TlsFlags): TlsConfig | string {
  const ids = identities(env);
  if (typeof ids === 'string') return ids;
  const policy = readPolicy(env);
  if (typeof policy === 'string') return policy;

  const out: TlsConfig = {
    identities: ids,
    clientCert: flags.clientCert,
    ...policy,
    strictSni: flags.strictSni,
    certPem: flags.certPem,
    s6Vars: flags.s6Vars,
  };
  for (const [field, name] of [
    ['caFile', 'CAFILE'],
    ['caDir', 'CADIR'],
    ['clientCaFile', 'CCAFILE'],
    ['dhFile', 'DHFILE'],
    ['ticketKeyFile', 'TICKETKEYFILE'],
  ] as const) {
    const v = nonEmpty(env, name);
    if (v !== undefined) out[field] = v;
  }
  // Parameters of the operator's own say DHE is wanted; an operator's CIPHERS is taken as it is.
  if (out.dhFile !== undefined && nonEmpty(env, 'CIPHERS') === undefined) out.ciphers = `${DEFAULT_CIPHERS}:${DHE_CIPHERS}`;
  if (out.clientCert !== 'none' && out.caFile === undefined && out.caDir === undefined) {
    return 'client certificates need CAFILE or CADIR: the trust anchors to verify them against';
  }
  const depth = nonEmpty(env, 'VERIFYDEPTH');
  if (depth !== undefined) {
    if (!/^\d{1,3}$/.test(depth)) return `VERIFYDEPTH: '${depth}' is not a number of intermediate certificates`;
    out.verifyDepth = Number(depth);
  }
  return out;
}
