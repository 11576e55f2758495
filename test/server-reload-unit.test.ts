// The parts of ucspi-tls-server's reload that need no server: which files and folders are
// watched, what tells a replaced file, the reload's checks and lines, the ticket keys.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from 'node:tls';
import { previousTicketKey, readAgain, reloadedLine, reloadRefusedLine, type ReloadDeps } from '../src/server/reload/reload';
import { FileWatcher, fingerprint, foldersOf, policyFiles } from '../src/server/reload/watch';
import { readTlsConfig, type TlsConfig } from '../src/tls/config';
import type { Credentials } from '../src/tls/credentials';
import { acceptPreviousTicketKey, ticketKeyAnswer } from '../src/tls/ticket-rotation';
import { makeCert, sleep, tempDir } from './helpers';
import { selfSigned } from './pki';

const FLAGS = { clientCert: 'none', strictSni: false, certPem: false, s6Vars: false } as const;

function config(env: Record<string, string>, clientCert: 'none' | 'request' = 'none'): TlsConfig {
  const c = readTlsConfig(env, { ...FLAGS, clientCert });
  if (typeof c === 'string') throw new Error(c);
  return c;
}

t.test('policyFiles: every file the policy reads, once; the CA files only when client certificates are asked for', async (t) => {
  const env = {
    CERTFILE: '/e/rsa.pem:/e/ec.pem', KEYFILE: '/e/rsa.key:/e/ec.key', 'CERTFILE:mx.example': '/e/mx.pem', 'KEYFILE:mx.example': '/e/mx.pem',
    'OCSPFILE:mx.example': '/e/ocsp.der', CAFILE: '/e/ca.pem', CADIR: '/e/ca.d', DHFILE: '/e/dh.pem', TICKETKEYFILE: '/e/ticket.key',
  };
  t.same(policyFiles(config(env)).sort(), ['/e/dh.pem', '/e/ec.key', '/e/ec.pem', '/e/mx.pem', '/e/ocsp.der', '/e/rsa.key', '/e/rsa.pem', '/e/ticket.key'].sort());
  t.ok(policyFiles(config(env, 'request')).includes('/e/ca.d'), 'CADIR with -Y');
  t.ok(policyFiles(config(env, 'request')).includes('/e/ca.pem'), 'CAFILE with -Y');
});

t.test("foldersOf: each file's folder, its link target's folder, and a folder the policy names", async (t) => {
  const links: Record<string, string> = { '/etc/le/live/x/cert.pem': '/etc/le/archive/x/cert3.pem' };
  const dirs = new Set(['/etc/ca.d']);
  t.same(
    foldersOf(['/etc/le/live/x/cert.pem', '/etc/ssl/k.pem', '/etc/ca.d'], (p) => links[p] ?? p, (p) => dirs.has(p)),
    ['/etc', '/etc/ca.d', '/etc/le/archive/x', '/etc/le/live/x', '/etc/ssl'],
  );
  t.same(foldersOf(['/gone/c.pem'], () => undefined, () => false), ['/gone'], 'a file that cannot be resolved: its own folder');
});

t.test('fingerprint: the same until a file is replaced, rewritten, relinked or removed', async (t) => {
  const dir = tempDir(t);
  const a = join(dir, 'a');
  const d = join(dir, 'd');
  mkdirSync(d);
  writeFileSync(a, 'one');
  writeFileSync(join(d, 'x'), 'x');
  const files = [a, d];
  const first = fingerprint(files);
  t.equal(fingerprint(files), first, 'untouched: the same');
  writeFileSync(join(dir, 'beside'), 'other');
  t.equal(fingerprint(files), first, 'a file beside them: the same');
  writeFileSync(`${a}.new`, 'two');
  renameSync(`${a}.new`, a);
  const renamed = fingerprint(files);
  t.not(renamed, first, 'renamed over: another');
  await sleep(5);
  writeFileSync(join(d, 'y'), 'y');
  t.not(fingerprint(files), renamed, 'a file added to a folder the policy names: another');
  t.match(fingerprint([join(dir, 'none')]), /ENOENT/, 'a missing file has its own');
});

t.test('the reload lines', async (t) => {
  const creds = { identities: [{ pairs: [{ leaf: { serial: '0A' } }, { leaf: { serial: '0B' } }] }, { pairs: [{ leaf: { serial: '0C' } }] }] } as unknown as Credentials;
  t.equal(reloadedLine('SIGHUP', creds), 'reloaded (SIGHUP): 3 certificates, serial 0A 0B 0C');
  t.equal(reloadRefusedLine('files changed', 'CERTFILE /c: no such file'), 'reload (files changed) refused: CERTFILE /c: no such file; still serving the files read before');
});

t.test('readAgain: the start checks and their words; the generated ticket key kept; OpenSSL asked last', async (t) => {
  const dir = tempDir(t);
  const certs = makeCert(dir);
  const deps = (o: Partial<ReloadDeps> = {}): ReloadDeps => ({
    tls: config({ CERTFILE: certs.cert, KEYFILE: certs.key }), env: {}, generatedTicketKey: undefined, opensslRefuses: () => undefined, ...o,
  });
  const generated = randomBytes(48);
  const current = { identities: [], ticketKeys: generated } as Credentials;
  const good = readAgain(deps({ generatedTicketKey: generated }), current);
  t.ok(good.ok && good.creds.ticketKeys === generated && good.creds.previousTicketKeys === undefined, 'the key made at start, and no previous one');
  t.same(readAgain(deps({ opensslRefuses: () => 'TLS policy rejected by OpenSSL: x' }), current), { ok: false, why: 'TLS policy rejected by OpenSSL: x' });
  const other = selfSigned(dir, 'other', { subject: '/CN=x' });
  const bad = readAgain(deps({ tls: config({ CERTFILE: other.cert, KEYFILE: certs.key }) }), current);
  t.same(bad, { ok: false, why: `KEYFILE ${certs.key} does not match the certificate in CERTFILE ${other.cert}` });
  // The start's KEYFILE hint, when KEYFILE is not set and CERTFILE holds no key.
  const hint = readAgain(deps({ tls: config({ CERTFILE: certs.cert }) }), current);
  t.match(hint.ok ? '' : hint.why, /and KEYFILE is not set \(KEYFILE defaults to CERTFILE\)/);
});

t.test('previousTicketKey: the key in use becomes the previous one only when the file brought another', async (t) => {
  const [a, b, c] = [randomBytes(48), randomBytes(48), randomBytes(48)];
  t.equal(previousTicketKey({ identities: [], ticketKeys: a }, b), a, 'rotated: the old key is kept');
  t.equal(previousTicketKey({ identities: [], ticketKeys: b, previousTicketKeys: a }, Buffer.from(b)), a, 'the same file again: the previous one stays');
  t.equal(previousTicketKey({ identities: [], ticketKeys: b, previousTicketKeys: a }, c), b, 'rotated again: only the last one before');
  t.equal(previousTicketKey({ identities: [] }, c), undefined);
});

t.test('ticketKeyAnswer: tickets made with the current key; the current and the previous key decrypt, the previous asking for a fresh ticket', async (t) => {
  const [now, before] = [randomBytes(48), randomBytes(48)];
  const iv = randomBytes(16);
  const enc = ticketKeyAnswer(randomBytes(16), iv, true, now, before);
  t.same(enc.slice(0, 4), [1, now.subarray(16, 32), now.subarray(32, 48), now.subarray(0, 16)]);
  t.equal(enc[4].length, 16, 'a fresh IV');
  t.same(ticketKeyAnswer(now.subarray(0, 16), iv, false, now, before), [1, now.subarray(16, 32), now.subarray(32, 48), now.subarray(0, 16), iv]);
  t.same(ticketKeyAnswer(before.subarray(0, 16), iv, false, now, before).slice(0, 3), [2, before.subarray(16, 32), before.subarray(32, 48)]);
  t.equal(ticketKeyAnswer(randomBytes(16), iv, false, now, before)[0], 0, 'an unknown key: a full handshake');
  t.equal(acceptPreviousTicketKey({} as Server, now, before), false, 'a server without the internal: the new key alone, said so');
});

t.test('FileWatcher: one call after a burst of renames; nothing for a file beside them', async (t) => {
  const dir = tempDir(t);
  const [cert, key] = [join(dir, 'c.pem'), join(dir, 'k.pem')];
  writeFileSync(cert, 'c1');
  writeFileSync(key, 'k1');
  let calls = 0;
  const warnings: string[] = [];
  const w = new FileWatcher([cert, key], () => calls++, (l) => warnings.push(l), 200);
  t.teardown(() => w.close());
  w.start();
  writeFileSync(join(dir, 'beside'), 'x');
  await sleep(600);
  t.equal(calls, 0, 'a file beside them');
  for (const [f, v] of [[cert, 'c2'], [key, 'k2']] as const) {
    writeFileSync(`${f}.tmp`, v);
    renameSync(`${f}.tmp`, f);
  }
  for (let i = 0; i < 100 && calls === 0; i++) await sleep(20);
  await sleep(400);
  t.equal(calls, 1, 'both renames: one call');
  t.same(warnings, []);
});

t.test('FileWatcher: a folder that never goes quiet delays the check, but not for ever', async (t) => {
  const dir = tempDir(t);
  const cert = join(dir, 'c.pem');
  writeFileSync(cert, 'c1');
  let calls = 0;
  const w = new FileWatcher([cert], () => calls++, () => {}, 100);
  t.teardown(() => w.close());
  w.start();
  writeFileSync(`${cert}.tmp`, 'c2');
  renameSync(`${cert}.tmp`, cert);
  // A log beside it, written every 50 ms: quieter than the 100 ms settle never.
  const started = Date.now();
  while (calls === 0 && Date.now() - started < 5000) {
    writeFileSync(join(dir, 'log'), String(Date.now()));
    await sleep(50);
  }
  t.equal(calls, 1, 'checked while the log went on');
  t.ok(Date.now() - started < 3000, `within 10 settles (${Date.now() - started} ms)`);
});
