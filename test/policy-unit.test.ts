// The pure parts of the TLS policy, tested directly.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { clientVerdict, reasonText } from '../src/tls/client-auth';
import { keyMatchesCertificate, keyPublic, pemBlocks } from '../src/tls/pem';
import { planPrivileges } from '../src/process/privileges';
import { daysRemaining } from '../src/tls/session-vars';
import { chooseIdentity, nameMatches } from '../src/tls/sni';
import { sameKeyType } from '../src/tls/credentials';
import { DEFAULT_CIPHERS, DHE_CIPHERS, normalizeServerName, parseVersion, readTlsConfig } from '../src/tls/config';
import { oneline, parseCertificate } from '../src/tls/x509';
import { tempDir } from './helpers';
import { selfSigned } from './pki';

const flags = { clientCert: 'none', strictSni: false, certPem: false, s6Vars: false } as const;

t.test('TLS policy from the environment', async (t) => {
  const c = readTlsConfig(
    { CERTFILE: '/ec.pem:/rsa.pem', KEYFILE: '/ec.key:/rsa.key', 'CERTFILE:Mail.Example.COM': '/m.pem', 'CERTFILE:*.example.org': '/w.pem', 'KEYFILE:*.example.org': '/w.key' },
    flags,
  );
  if (typeof c === 'string') return t.fail(c);
  t.same(c.identities, [
    { pairs: [{ certFile: '/ec.pem', keyFile: '/ec.key' }, { certFile: '/rsa.pem', keyFile: '/rsa.key' }] },
    { name: '*.example.org', pairs: [{ certFile: '/w.pem', keyFile: '/w.key' }] },
    { name: 'mail.example.com', pairs: [{ certFile: '/m.pem', keyFile: '/m.pem' }] },
  ], 'pairs by position, names lower-cased, KEYFILE:name defaults to CERTFILE:name');
  t.equal(c.minVersion, 'TLSv1.2');
  t.equal(c.maxVersion, 'TLSv1.3');
  t.equal(c.ciphers, DEFAULT_CIPHERS);
  t.notMatch(c.ciphers, /(^|:)DHE-/, 'no finite-field DHE by default');
  t.ok(c.ciphers.split(':').every((s) => /^ECDHE-(ECDSA|RSA)-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)$/.test(s)), 'ECDHE with AEAD only');
  t.equal(c.groups, undefined, 'groups: the defaults of the OpenSSL in use, decided where a context is made');
  t.equal(c.customAlgorithms, false, 'defaults need no OpenSSL check');
  const dh = readTlsConfig({ CERTFILE: '/c', DHFILE: '/dh.pem' }, flags);
  t.match(dh, { dhFile: '/dh.pem', ciphers: `${DEFAULT_CIPHERS}:${DHE_CIPHERS}`, customAlgorithms: false }, 'DHFILE adds the DHE suites after the defaults');
  t.match(readTlsConfig({ CERTFILE: '/c', DHFILE: '/dh.pem', CIPHERS: 'ECDHE-RSA-AES128-GCM-SHA256' }, flags), { ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' },
    'the operator\'s CIPHERS as given, DHFILE or not');
  t.match(readTlsConfig({ CERTFILE: '/c', TLS_GROUPS: 'secp384r1' }, flags), { groups: 'secp384r1', customAlgorithms: true });
  const custom = readTlsConfig({ CERTFILE: '/c', CIPHERS: 'HIGH', ALPN: 'smtp, imap', VERIFYDEPTH: '2' }, flags);
  t.match(custom, { customAlgorithms: true, alpn: ['smtp', 'imap'], verifyDepth: 2 });
  t.equal(readTlsConfig({ CERTFILE: '/c' }, { ...flags, clientCert: 'require' }), 'client certificates need CAFILE or CADIR: the trust anchors to verify them against');
  t.equal(parseVersion('1.0'), 'TLSv1');
  t.equal(parseVersion('TLSv1.3'), 'TLSv1.3');
  t.equal(parseVersion('1.4'), undefined);
  t.equal(normalizeServerName('*.Example.org.'), '*.example.org');
  t.equal(normalizeServerName('a.*.org'), undefined);
  t.equal(normalizeServerName('-bad.org'), undefined);
});

t.test('server names', async (t) => {
  t.ok(nameMatches('*.example.org', 'imap.example.org'));
  t.notOk(nameMatches('*.example.org', 'a.b.example.org'), 'one label only');
  t.notOk(nameMatches('*.example.org', 'example.org'));
  t.ok(nameMatches('mail.example.org', 'MAIL.example.org.'));
  const ids = [{ name: '*.example.org' }, { name: 'www.example.org' }, {}];
  t.same(chooseIdentity(ids, 'www.example.org', false), { kind: 'chosen', identity: { name: 'www.example.org' } }, 'exact beats wildcard');
  t.same(chooseIdentity(ids, 'x.example.org', false), { kind: 'chosen', identity: { name: '*.example.org' } });
  t.same(chooseIdentity(ids, 'other.test', false), { kind: 'chosen', identity: {} });
  t.equal(chooseIdentity(ids, 'other.test', true).kind, 'refused');
  t.same(chooseIdentity(ids, undefined, true), { kind: 'chosen', identity: {} }, 'strict: no name still gets the default');
  t.equal(chooseIdentity([{ name: 'a.test' }], undefined, false).kind, 'refused');
});

t.test('one certificate per key type for a name', async (t) => {
  const leaf = (algorithm: string, keyAlg: string, curve?: string) => ({ leaf: { keyAlg, publicKey: { algorithm, key: Buffer.alloc(0), ...(curve ? { curve } : {}) } } });
  const rsa = leaf('1.2.840.113549.1.1.1', 'rsaEncryption');
  const p256 = leaf('1.2.840.10045.2.1', 'id-ecPublicKey', '1.2.840.10045.3.1.7');
  const p384 = leaf('1.2.840.10045.2.1', 'id-ecPublicKey', '1.3.132.0.34');
  const ed = leaf('1.3.101.112', 'ED25519');
  t.equal(sameKeyType([p256, rsa, ed]), undefined, 'ECDSA, RSA and Ed25519 side by side');
  t.same(sameKeyType([rsa, p256, rsa]), [0, 2], 'two RSA');
  t.same(sameKeyType([p256, p384]), [0, 1], 'two EC curves share OpenSSL\'s one EC slot');
});

t.test('keys against certificates, without OpenSSL', async (t) => {
  const dir = tempDir(t);
  for (const type of ['rsa', 'ec'] as const) {
    const a = selfSigned(dir, `a-${type}`, { subject: '/CN=a', type });
    const b = selfSigned(dir, `b-${type}`, { subject: '/CN=b', type });
    const cert = parseCertificate(pemBlocks(readFileSync(a.cert, 'latin1'))[0]!.der).publicKey;
    const keyOf = (f: string) => keyPublic(pemBlocks(readFileSync(f, 'latin1'))[0]!);
    t.equal(keyMatchesCertificate(keyOf(a.key), cert), true, `${type}: its own key`);
    t.equal(keyMatchesCertificate(keyOf(b.key), cert), false, `${type}: another key`);
  }
  t.throws(() => pemBlocks('-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n'), /not valid base64/);
  t.same(pemBlocks('no pem here'), []);
});

t.test('client certificate verdicts', async (t) => {
  t.same(clientVerdict('request', false, 'UNABLE_TO_GET_ISSUER_CERT', 0, undefined), { verify: 'NONE', accept: true });
  t.same(clientVerdict('require', false, undefined, 0, undefined), { verify: 'NONE', accept: false });
  t.same(clientVerdict('require', true, undefined, 2, undefined), { verify: 'SUCCESS', accept: true });
  t.same(clientVerdict('request', true, 'DEPTH_ZERO_SELF_SIGNED_CERT', 1, undefined), { verify: 'FAILED:self-signed certificate', accept: true });
  t.same(clientVerdict('require', true, 'CERT_HAS_EXPIRED', 2, undefined), { verify: 'FAILED:certificate has expired', accept: false });
  t.same(clientVerdict('require', true, undefined, 3, 0), { verify: 'FAILED:certificate chain too long', accept: false });
  t.same(clientVerdict('require', true, undefined, 3, 1), { verify: 'SUCCESS', accept: true });
  t.equal(reasonText('SOME_NEW_CODE'), 'some new code');
});

t.test('privileges', async (t) => {
  const root = { uid: 0, gid: 0 };
  t.same(planPrivileges({ uid: 5, gid: 6 }, { uid: 7, gid: 8 }, root), { app: { uid: 5, gid: 6 }, helper: { uid: 7, gid: 8 } });
  t.same(planPrivileges(undefined, undefined, root), {});
  t.same(planPrivileges({ uid: 1000, gid: 1000 }, undefined, { uid: 1000, gid: 1000 }), {}, 'already that user: nothing to do');
  t.equal(planPrivileges({ uid: 5, gid: 5 }, undefined, { uid: 1000, gid: 1000 }), 'cannot run the app as 5:5: only root can change user');
});

t.test('V_REMAIN and the one-line DN', async (t) => {
  const day = 86_400_000;
  const now = Date.UTC(2026, 10, 24, 12);
  t.equal(daysRemaining(now + 10 * day, now), 11, 'counts to the day after notAfter, as mod_ssl');
  t.equal(daysRemaining(now - 5 * day, now), 0, 'never below 0');
  const e = (type: string, value: string, rdn: number) => ({ type, value, rdn, der: Buffer.alloc(0) });
  t.equal(oneline([e('2.5.4.6', 'DE', 0), e('2.5.4.11', 'a', 1), e('2.5.4.3', 'b', 1), e('2.5.4.3', 'Zoë', 2)]), '/C=DE/OU=a+CN=b/CN=Zo\\xC3\\xAB');
});
