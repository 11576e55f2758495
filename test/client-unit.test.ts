// Pure parts of the client side and the implicit mode, tested directly.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { readClientCredentials, SYSTEM_CA_BUNDLE } from '../src/client/credentials';
import { shellAssignments } from '../src/process/app';
import { clientAppEnvironment, parseClientArgs } from '../src/client/options';
import { commandMissing } from '../src/process/command-path';

t.test('parseClientArgs: the name from -k or TCPREMOTEHOST, required unless --insecure', async (t) => {
  const run = parseClientArgs(['-k', 'MX.Example.ORG.', 'app'], {});
  t.equal(run.kind === 'run' && run.config.serverName, 'mx.example.org', 'lower case, no trailing dot');
  const env = parseClientArgs(['app'], { TCPREMOTEHOST: 'smtp.example.org' });
  t.equal(env.kind === 'run' && env.config.serverName, 'smtp.example.org');
  const ip = parseClientArgs(['-k', '192.0.2.1', 'app'], {});
  t.equal(ip.kind === 'run' && ip.config.serverName, '192.0.2.1');
  t.match(parseClientArgs(['app'], {}), { kind: 'error', status: 100, message: /^no server name/ });
  t.match(parseClientArgs(['--insecure', 'app'], {}), { kind: 'run', config: { verify: false } });
  t.match(parseClientArgs(['-k', 'a.test', 'app'], { KEYFILE: 'k.pem' }), { kind: 'error', status: 111, message: 'KEYFILE is set but CERTFILE is not' });
  t.match(parseClientArgs(['-k', 'a.test', 'app'], { CERTFILE: 'both.pem' }), { kind: 'run', config: { tls: { pair: { certFile: 'both.pem', keyFile: 'both.pem' } } } });
  t.match(parseClientArgs(['-k', 'a.test', '-k', 'b.test', 'app'], {}), { kind: 'error', status: 100 });
  t.match(parseClientArgs(['-k', 'a.test', 'app'], { ALPN: 'smtp', TLS_MAX_VERSION: '1.2' }), {
    kind: 'run',
    config: { tls: { alpn: ['smtp'], maxVersion: 'TLSv1.2', minVersion: 'TLSv1.2' } },
  });
});

t.test('clientAppEnvironment: configuration out, the fds named', async (t) => {
  t.same(clientAppEnvironment({ PATH: '/bin', CAFILE: 'x', KEYFILE: 'y', TCPREMOTEIP: '1' }, false), {
    PATH: '/bin', TCPREMOTEIP: '1', SSLCTLFD: '3', SSLREADFD: '4', SSLWRITEFD: '5',
  });
  t.match(clientAppEnvironment({ CAFILE: 'x' }, true), { CAFILE: 'x' });
});

t.test('shellAssignments: every byte but NUL survives sh, whatever the certificate holds', async (t) => {
  const hostile = `it's "$(touch /tmp/pwned)" \`id\` $HOME \\ ;\nnext line'`;
  const text = shellAssignments([['SSL_CLIENT_S_DN_CN', hostile], ['SSL_X', 'a\0b'], ['bad-name', 'v']]);
  t.notMatch(text, /bad-name/, 'a name the shell cannot take is dropped');
  const r = spawnSync('sh', ['-c', 'eval "$(cat)"; printf "%s|%s" "$SSL_CLIENT_S_DN_CN" "$SSL_X"'], { input: text, encoding: 'utf8' });
  t.equal(r.stdout, `${hostile}|ab`);
});

t.test('commandMissing: as execvp looks', async (t) => {
  t.equal(commandMissing('sh', '/nonexistent:/bin'), undefined);
  t.equal(commandMissing('no-such-program-here', '/bin:/usr/bin'), 'ENOENT');
  t.equal(commandMissing('/etc/passwd', undefined), 'EACCES', 'there, but not executable');
  t.equal(commandMissing('/bin', undefined), 'ENOENT', 'a directory is not a program');
});

t.test("readClientCredentials: without CAFILE or CADIR, the system's bundle, else Node's bundled list, named either way", async (t) => {
  const parsed = parseClientArgs(['-k', 'a.test', 'app'], {});
  if (parsed.kind !== 'run') throw new Error('not parsed');
  const system = readClientCredentials(parsed.config.tls);
  t.equal(system.trustSource, SYSTEM_CA_BUNDLE);
  t.equal(system.ca, readFileSync(SYSTEM_CA_BUNDLE, 'latin1'));
  // Named, since --use-openssl-ca makes Node's default OpenSSL's own store.
  const bundled = readClientCredentials(parsed.config.tls, '/nonexistent/ca-certificates.crt');
  t.equal(bundled.trustSource, "Node's built-in CA list");
  t.same(bundled.ca, [...rootCertificates]);
  t.ok(rootCertificates.length > 100, `${rootCertificates.length} certificates`);
});
