// Throwaway certificate authorities and certificates, made by openssl(1) for the tests.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Pair {
  cert: string;
  key: string;
}

export type KeyType = 'rsa' | 'ec' | 'ec384' | 'ed25519';

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
}

function keyArgs(type: KeyType): string[] {
  switch (type) {
    case 'rsa':
      return ['-newkey', 'rsa:2048'];
    case 'ec':
      return ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
    case 'ec384':
      return ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'];
    case 'ed25519':
      return ['-newkey', 'ed25519'];
  }
}

export interface CertOptions {
  subject: string;
  /** subjectAltName value, e.g. `DNS:a.test,email:x@a.test`. */
  san?: string;
  type?: KeyType;
  /** A CA certificate (basicConstraints CA:TRUE). */
  ca?: boolean;
  days?: number;
}

/** A self-signed certificate: a root CA when o.ca, a server or client certificate otherwise. */
export function selfSigned(dir: string, name: string, o: CertOptions): Pair {
  const p = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  const ext = o.ca ? ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'] : [];
  openssl(['req', '-x509', ...keyArgs(o.type ?? 'rsa'), '-nodes', '-keyout', p.key, '-out', p.cert, '-days', String(o.days ?? 30),
    '-subj', o.subject, ...ext, ...(o.san ? ['-addext', `subjectAltName=${o.san}`] : [])]);
  return p;
}

/** A certificate signed by `issuer`. */
export function issue(dir: string, name: string, issuer: Pair, o: CertOptions): Pair {
  const p = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  const csr = join(dir, `${name}.csr`);
  const extFile = join(dir, `${name}.ext`);
  openssl(['req', '-new', ...keyArgs(o.type ?? 'rsa'), '-nodes', '-keyout', p.key, '-out', csr, '-subj', o.subject]);
  const ext = [
    o.ca ? 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign' : 'basicConstraints=CA:FALSE',
    ...(o.san ? [`subjectAltName=${o.san}`] : []),
  ];
  writeFileSync(extFile, `${ext.join('\n')}\n`);
  openssl(['x509', '-req', '-in', csr, '-CA', issuer.cert, '-CAkey', issuer.key, '-CAcreateserial', '-out', p.cert,
    '-days', String(o.days ?? 30), '-extfile', extFile]);
  return p;
}

/** A certificate signed by `issuer` whose validity ended long ago (openssl ca takes explicit dates). */
export function issueExpired(dir: string, name: string, issuer: Pair, subject: string): Pair {
  const p = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  const csr = join(dir, `${name}.csr`);
  const db = join(dir, `${name}.index`);
  const conf = join(dir, `${name}.cnf`);
  writeFileSync(db, '');
  writeFileSync(conf, [
    '[ca]', 'default_ca = expired', '[expired]', `database = ${db}`, `new_certs_dir = ${dir}`,
    `serial = ${join(dir, `${name}.serial`)}`, 'default_md = sha256', 'policy = any', 'unique_subject = no',
    'x509_extensions = leaf', '[any]', 'commonName = supplied', '[leaf]', 'basicConstraints = CA:FALSE', '',
  ].join('\n'));
  writeFileSync(join(dir, `${name}.serial`), '1000\n');
  openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', p.key, '-out', csr, '-subj', subject]);
  openssl(['ca', '-batch', '-notext', '-config', conf, '-cert', issuer.cert, '-keyfile', issuer.key, '-in', csr, '-out', p.cert,
    '-startdate', '20200101000000Z', '-enddate', '20200201000000Z']);
  return p;
}
