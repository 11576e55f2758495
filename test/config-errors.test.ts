// Bad configuration: one clear line on stderr, exit 111 (100 for a bad command line),
// and the app never runs.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chownSync, chmodSync, copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { APP, HELPER, tempDir } from './helpers';
import { selfSigned } from './pki';

const dir = tempDir(t, 'utw-cfg-');
const good = selfSigned(dir, 'good', { subject: '/CN=good.test' });
const other = selfSigned(dir, 'other', { subject: '/CN=other.test' });
const ed = selfSigned(dir, 'ed', { subject: '/CN=ed.test', type: 'ed25519' });
const edOther = selfSigned(dir, 'ed-other', { subject: '/CN=ed2.test', type: 'ed25519' });
const ca = selfSigned(dir, 'ca', { subject: '/CN=CA', ca: true });

const file = (name: string, content: string | Buffer): string => {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
};
const certText = readFileSync(good.cert, 'latin1');
const garbled = file('garbled.pem', certText.replace(/\n[A-Za-z0-9+/]{20}/, '\n!!!!not*base64!!!!!!'));
const encrypted = join(dir, 'enc.key');
spawnSync('openssl', ['pkey', '-in', good.key, '-aes256', '-passout', 'pass:secret', '-out', encrypted]);
const unreadable = join(dir, 'unreadable.key');
copyFileSync(good.key, unreadable);
chownSync(unreadable, 65534, 65534);
chmodSync(unreadable, 0o600);

interface Run {
  pid: number;
  status: number | null;
  lines: string[];
  appRan: boolean;
}

function run(env: Record<string, string>, args: string[] = [], wrap: string[] = [], app: string[] = [APP]): Run {
  const report = tempDir(t);
  const argv = [...wrap, HELPER, ...args, ...app];
  const r = spawnSync(argv[0]!, argv.slice(1), {
    env: { PATH: process.env.PATH, REPORT: report, ...env },
    encoding: 'utf8',
    timeout: 10000,
  });
  return { pid: r.pid, status: r.status, lines: r.stderr.split('\n').filter((l) => l !== ''), appRan: existsSync(join(report, 'pid')) };
}

const pair = { CERTFILE: good.cert, KEYFILE: good.key };
const cases: Array<[string, Record<string, string>, RegExp, string[]?, number?, string[]?]> = [
  ['a missing key file', { ...pair, KEYFILE: join(dir, 'nope.key') }, /cannot read KEYFILE \S+nope\.key: no such file/],
  [
    'a key file root cannot read without CAP_DAC_OVERRIDE',
    { ...pair, KEYFILE: unreadable },
    /cannot read KEYFILE \S+unreadable\.key: permission denied/,
    [],
    111,
    ['setpriv', '--bounding-set', '-dac_override,-dac_read_search', '--'],
  ],
  ['a key that does not match its certificate', { ...pair, KEYFILE: other.key }, /KEYFILE \S+other\.key does not match the certificate in CERTFILE \S+good\.pem/],
  ['an Ed25519 key that does not match', { CERTFILE: ed.cert, KEYFILE: edOther.key }, /does not match the certificate/],
  ['malformed PEM', { ...pair, CERTFILE: garbled }, /CERTFILE \S+garbled\.pem: malformed PEM: the CERTIFICATE block is not valid base64/],
  ['a certificate file without a certificate', { CERTFILE: good.key, KEYFILE: good.key }, /CERTFILE \S+good\.key: no certificate in the file/],
  ['a key file without a key', { CERTFILE: good.cert, KEYFILE: good.cert }, /KEYFILE \S+good\.pem: no private key in the file$/],
  [
    'no KEYFILE, and no key in CERTFILE',
    { CERTFILE: good.cert },
    /CERTFILE \S+good\.pem: no private key in the file, and KEYFILE is not set \(KEYFILE defaults to CERTFILE\): set KEYFILE to the key's file$/,
  ],
  [
    'no KEYFILE:name, and no key in CERTFILE:name',
    { ...pair, 'CERTFILE:a.test': other.cert },
    /CERTFILE:a\.test \S+other\.pem: no private key in the file, and KEYFILE:a\.test is not set \(KEYFILE defaults to CERTFILE\)/,
  ],
  ['an encrypted key', { ...pair, KEYFILE: encrypted }, /the key is encrypted/],
  ['an unknown TLS version', { ...pair, TLS_MIN_VERSION: '1.4' }, /TLS_MIN_VERSION: '1\.4' is not one of 1\.0, 1\.1, 1\.2, 1\.3/],
  ['a minimum above the maximum', { ...pair, TLS_MIN_VERSION: '1.3', TLS_MAX_VERSION: '1.2' }, /TLS_MIN_VERSION TLSv1\.3 is above TLS_MAX_VERSION TLSv1\.2/],
  ['ciphers OpenSSL does not know', { ...pair, CIPHERS: 'NO-SUCH-CIPHER' }, /CIPHERS: OpenSSL refuses 'NO-SUCH-CIPHER'/],
  ['TLS 1.3 suites OpenSSL does not know', { ...pair, CIPHERSUITES: 'TLS_NO_SUCH_SUITE' }, /CIPHERSUITES: OpenSSL refuses 'TLS_NO_SUCH_SUITE'/],
  ['an unknown group', { ...pair, TLS_GROUPS: 'X99999' }, /TLS_GROUPS: OpenSSL refuses 'X99999'/],
  ['a VERIFYDEPTH that is no number', { ...pair, VERIFYDEPTH: 'deep' }, /VERIFYDEPTH: 'deep' is not a number/],
  ['client certificates without trust anchors', pair, /client certificates need CAFILE or CADIR/, ['-y']],
  ['a CCAFILE outside CAFILE', { ...pair, CAFILE: ca.cert, CCAFILE: other.cert }, /CCAFILE \S+: a CA in it is not in CAFILE or CADIR/, ['-Y']],
  ['a CAFILE without certificates', { ...pair, CAFILE: good.key }, /CAFILE \S+: no certificate in the file/, ['-y']],
  ['a ticket key file of the wrong size', { ...pair, TICKETKEYFILE: file('short.keys', Buffer.alloc(32)) }, /TICKETKEYFILE \S+: 32 bytes, not 48/],
  ['an OCSP file that is not DER', { ...pair, OCSPFILE: file('ocsp.txt', 'hello') }, /OCSPFILE \S+: not a DER OCSP response/],
  ['a DHFILE without DH parameters', { ...pair, DHFILE: good.cert }, /DHFILE \S+: no DH PARAMETERS block/],
  ['a server name that is none', { ...pair, 'CERTFILE:bad..name': good.cert }, /CERTFILE:bad\.\.name: 'bad\.\.name' is not a host name or \*\.domain/],
  ['a KEYFILE:name without its CERTFILE:name', { ...pair, 'KEYFILE:a.test': good.key }, /KEYFILE:a\.test is set but CERTFILE:a\.test is not/],
  ['two certificates, one key', { CERTFILE: `${good.cert}:${other.cert}`, KEYFILE: good.key }, /CERTFILE: 2 certificate file\(s\) but 1 key file\(s\)/],
  ['two RSA certificates for one name', { CERTFILE: `${good.cert}:${other.cert}`, KEYFILE: `${good.key}:${other.key}` }, /CERTFILE: \S+good\.pem and \S+other\.pem have the same key type \(rsaEncryption\); give one certificate per key type/],
  ['OCSP stapling with two certificates for one name', { CERTFILE: `${good.cert}:${ed.cert}`, KEYFILE: `${good.key}:${ed.key}`, OCSPFILE: `${file('a.der', Buffer.from([0x30, 0]))}:${file('b.der', Buffer.from([0x30, 0]))}` }, /OCSPFILE: stapling needs a single certificate for the name, not 2/],
  ['an ALPN list with a bad name', { ...pair, ALPN: 'smtp,bad name' }, /ALPN: 'bad name' is not a protocol name list/],
  ['TLS_UID without TLS_GID', { ...pair, TLS_UID: '1' }, /TLS_UID\/TLS_GID: give both the uid and the gid/],
  ['-u without -g', pair, /-u\/-g: give both the uid and the gid \(see ucspi-tls-wrap --help\)$/, ['-u', '65534'], 100],
  ['-Y and -y together', { ...pair, CAFILE: ca.cert }, /-Y and -y exclude each other \(see ucspi-tls-wrap --help\)$/, ['-Y', '-y'], 100],
  ['an unknown option', pair, /: fatal: unknown option --bogus \(see ucspi-tls-wrap --help\)$/, ['--bogus'], 100],
  ['a timeout that is no number', pair, /: fatal: --timeout needs a number of seconds, not 'soon' \(see ucspi-tls-wrap --help\)$/, ['-t', 'soon'], 100],
  ['a log file in a folder that does not exist', pair, /: fatal: cannot open log file \S+\/no-such-dir\/x\.log: no such directory \S+\/no-such-dir$/, ['-l', join(dir, 'no-such-dir', 'x.log')]],
  ['a log file that is a folder', pair, /: fatal: cannot open log file \S+: is a directory$/, ['-l', dir]],
  ['no certificate at all', {}, /CERTFILE is not set/],
];

for (const [what, env, line, args, status, wrap] of cases) {
  t.test(what, async (t) => {
    const r = run(env, args ?? [], wrap ?? []);
    t.equal(r.status, status ?? 111, `exit ${status ?? 111}`);
    t.equal(r.lines.length, 1, `one line on stderr: ${JSON.stringify(r.lines)}`);
    // setpriv execs the helper, so the pid is the one spawned either way.
    t.match(r.lines[0] ?? '', new RegExp(`^ucspi-tls-wrap: pid ${r.pid}: fatal: `), 'in the log format: program, its pid, fatal');
    t.match(r.lines[0] ?? '', line);
    t.notOk(r.appRan, 'the app never ran');
  });
}

t.test('the good configuration passes the same checks (the app runs)', async (t) => {
  const r = run({ ...pair, CIPHERS: 'ECDHE-RSA-AES128-GCM-SHA256', TLS_GROUPS: 'X25519', OCSPFILE: file('ok.der', Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x00])) });
  t.ok(r.appRan, 'the app ran');
  t.equal(r.lines.length, 0, 'nothing on stderr');
});

t.test('an app that is not in PATH: exit 127, the PATH searched named', async (t) => {
  for (const args of [[], ['--implicit']]) {
    const r = run({ ...pair, PATH: '/usr/bin:/bin' }, args, [], ['no-such-app']);
    t.equal(r.status, 127, `exit 127 ${args.join(' ')}`);
    t.same(r.lines, [`ucspi-tls-wrap: pid ${r.pid}: fatal: cannot run no-such-app: not found in PATH /usr/bin:/bin`]);
  }
});

t.test('an app that is not executable: exit 126, in words', async (t) => {
  for (const args of [[], ['--implicit']]) {
    const r = run(pair, args, [], [good.cert]);
    t.equal(r.status, 126, `exit 126 ${args.join(' ')}`);
    t.same(r.lines, [`ucspi-tls-wrap: pid ${r.pid}: fatal: cannot run ${good.cert}: permission denied`]);
  }
});

t.test('-q: a fatal line is still logged', async (t) => {
  const r = run({ CERTFILE: join(dir, 'nope.pem') }, ['-q']);
  t.equal(r.status, 111);
  t.same(r.lines, [`ucspi-tls-wrap: pid ${r.pid}: fatal: cannot read CERTFILE ${join(dir, 'nope.pem')}: no such file`]);
});
