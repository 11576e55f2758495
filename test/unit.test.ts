// The pure modules, tested directly.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { exitStatus, spawnFailureStatus } from '../src/process/app';
import { readClientHello } from '../src/tls/client-hello';
import { clientSource } from '../src/process/client-fds';
import { classifyCommand, describeByte } from '../src/session/control';
import { appEnvironment } from '../src/process/environment';
import { isSessionVariable } from '../src/session/policy-options';
import { EXIT_CONFIG, EXIT_USAGE } from '../src/contract/exit-codes';
import { parseArgs } from '../src/helper/options';
import { pemBlocks } from '../src/tls/pem';
import { cipherBits, sessionVars } from '../src/tls/session-vars';
import { parseCertificate, rfc2253, type NameEntry } from '../src/tls/x509';
import { tempDir } from './helpers';

t.test('options', async (t) => {
  const env = { CERTFILE: '/c.pem' };
  const r = parseArgs(['-v', '-t', '5', 'imapd', '-x'], env);
  t.equal(r.kind, 'run');
  if (r.kind !== 'run') return;
  t.same(r.config.app, ['imapd', '-x'], 'options after the app belong to the app');
  t.equal(r.config.verbosity, 2);
  t.equal(r.config.handshakeTimeoutMs, 5000);
  t.same(r.config.tls.identities, [{ pairs: [{ certFile: '/c.pem', keyFile: '/c.pem' }] }], 'KEYFILE defaults to CERTFILE');
  const chain = parseArgs(['app'], { CERTFILE: '/c', CERTCHAINFILE: '/chain', KEYFILE: '/k' });
  t.same(chain.kind === 'run' && chain.config.tls.identities[0]!.pairs, [{ certFile: '/chain', keyFile: '/k' }], 'CERTCHAINFILE wins');
  t.same(parseArgs(['--', '-app'], env).kind, 'run');
  t.same(parseArgs(['app'], {}), { kind: 'error', status: EXIT_CONFIG, message: 'CERTFILE is not set' });
  t.same(parseArgs([], env), { kind: 'error', status: EXIT_USAGE, message: 'no app to run' });
  t.same(parseArgs(['-t', 'soon', 'app'], env), { kind: 'error', status: EXIT_USAGE, message: "--timeout needs a number of seconds, not 'soon'" });
  t.same(parseArgs(['-Z', 'app'], env), { kind: 'error', status: EXIT_USAGE, message: 'unknown option -Z' });
  t.same(parseArgs(['--help'], {}), { kind: 'help' });
  t.same(parseArgs(['-V'], {}), { kind: 'version' });
  const q = parseArgs(['-q', '-t', '0', '--log-file', '/l', 'app'], env);
  t.equal(q.kind === 'run' && q.config.verbosity, 0);
  t.equal(q.kind === 'run' && q.config.handshakeTimeoutMs, 0);
  t.equal(q.kind === 'run' && q.config.logFile, '/l');
});

t.test('environment', async (t) => {
  const env = { PATH: '/bin', CERTFILE: 'c', KEYFILE: 'k', CIPHERS: 'x', DHFILE: 'd', CERTCHAINFILE: 'cc', LISTEN_FDS: '1', LISTEN_PID: '9', TCPREMOTEIP: '1.2.3.4' };
  t.same(appEnvironment(env, { keepEnv: false, ours: isSessionVariable, fromListenFd: true, ucspiTls: true }), {
    PATH: '/bin', TCPREMOTEIP: '1.2.3.4', SSLCTLFD: '3', SSLREADFD: '4', SSLWRITEFD: '5',
  });
  const kept = appEnvironment(env, { keepEnv: true, ours: isSessionVariable, fromListenFd: false, ucspiTls: true });
  t.equal(kept.CERTFILE, 'c');
  t.equal(kept.LISTEN_FDS, '1', 'LISTEN_* stay when they were not ours');
});

t.test('client source', async (t) => {
  t.same(clientSource({}, 7), { kind: 'stdio' });
  t.same(clientSource({ LISTEN_FDS: '1', LISTEN_PID: '7' }, 7), { kind: 'listen', fd: 3 });
  t.same(clientSource({ LISTEN_FDS: '1', LISTEN_PID: '8' }, 7), { kind: 'stdio' }, 'meant for another process');
  t.equal(clientSource({ LISTEN_FDS: '2', LISTEN_PID: '7' }, 7).kind, 'error');
});

t.test('control commands', async (t) => {
  t.same(classifyCommand(0x79), { kind: 'tls', withInfo: false });
  t.same(classifyCommand(0x59), { kind: 'tls', withInfo: true });
  t.same(classifyCommand(0x00), { kind: 'unknown', byte: 0 });
  t.equal(describeByte(0x78), "'x' (0x78)");
  t.equal(describeByte(0x0a), '0x0a');
});

t.test('exit statuses', async (t) => {
  t.equal(exitStatus(0, null), 0);
  t.equal(exitStatus(42, null), 42);
  t.equal(exitStatus(null, 'SIGTERM'), 143);
  t.equal(exitStatus(null, 'SIGKILL'), 137);
  t.equal(spawnFailureStatus('ENOENT'), 127);
  t.equal(spawnFailureStatus('EACCES'), 126);
});

t.test('cipher bits', async (t) => {
  t.same(cipherBits('TLS_AES_256_GCM_SHA384'), [256, 256]);
  t.same(cipherBits('TLS_AES_128_GCM_SHA256'), [128, 128]);
  t.same(cipherBits('TLS_CHACHA20_POLY1305_SHA256'), [256, 256]);
  t.same(cipherBits('ECDHE-RSA-AES128-GCM-SHA256'), [128, 128]);
  t.same(cipherBits('DHE-RSA-AES256-SHA256'), [256, 256]);
  t.same(cipherBits('ECDHE-ECDSA-CHACHA20-POLY1305'), [256, 256]);
  t.same(cipherBits('DES-CBC3-SHA'), [112, 168]);
  t.same(cipherBits('AES128-SHA'), [128, 128]);
});

function entries(...list: Array<[string, string, number]>): NameEntry[] {
  return list.map(([type, value, rdn]) => ({ type, value, rdn, der: Buffer.from('0c0141', 'hex') }));
}

t.test('RFC 2253 names', async (t) => {
  t.equal(rfc2253(entries(['2.5.4.6', 'DE', 0], ['2.5.4.10', 'A, B', 1], ['2.5.4.3', ' x#', 2])), 'CN=\\ x#,O=A\\, B,C=DE');
  t.equal(rfc2253(entries(['2.5.4.3', '#lead', 0])), 'CN=\\#lead');
  t.equal(rfc2253(entries(['2.5.4.11', 'a', 0], ['2.5.4.3', 'b', 0])), 'CN=b+OU=a', 'multi-valued RDN');
  t.equal(rfc2253(entries(['1.2.3.4', 'A', 0])), '1.2.3.4=#0C0141', 'unknown type: hex of the DER');
  t.equal(rfc2253(entries(['1.2.840.113549.1.9.1', 'a@b', 0])), 'emailAddress=a@b');
});

t.test('certificates from openssl, read against openssl x509', async (t) => {
  const dir = tempDir(t);
  for (const [alg, keyName, sigName] of [
    [['-newkey', 'rsa:2048'], 'rsaEncryption', 'sha256WithRSAEncryption'],
    [['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'id-ecPublicKey', 'ecdsa-with-SHA256'],
    [['-newkey', 'ed25519'], 'ED25519', 'ED25519'],
  ] as const) {
    const cert = join(dir, `${keyName}.pem`);
    const r = spawnSync('openssl', ['req', '-x509', ...alg, '-nodes', '-utf8', '-keyout', join(dir, 'k.pem'), '-out', cert, '-days', '2',
      '-subj', '/C=FR/ST=Paris/L=Paris/O=Org/OU=One/OU=Two/CN=Zoë Example/emailAddress=z@example.test'], { encoding: 'utf8' });
    t.equal(r.status, 0, r.stderr);
    const der = pemBlocks(readFileSync(cert, 'latin1'))[0]!.der;
    const info = parseCertificate(der);
    t.equal(info.keyAlg, keyName);
    t.equal(info.sigAlg, sigName);
    t.equal(info.version, 3);
    const x = spawnSync('openssl', ['x509', '-in', cert, '-noout', '-serial', '-subject', '-startdate', '-enddate', '-nameopt', 'RFC2253,-esc_msb'], { encoding: 'utf8' }).stdout;
    t.equal(info.serial, /serial=(\S+)/.exec(x)?.[1], 'serial as openssl prints it');
    t.equal(rfc2253(info.subject), /subject=(.*)/.exec(x)?.[1], 'subject as openssl -nameopt RFC2253 prints it');
    t.equal(info.notBefore, /notBefore=(.*)/.exec(x)?.[1]);
    t.equal(info.notAfter, /notAfter=(.*)/.exec(x)?.[1]);
    const vars = new Map(sessionVars({
      protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256', sessionId: 'AB', resumed: true, secureRenegotiation: true,
      sni: 'x.test', server: info, interfaceVersion: 'i/1', libraryVersion: 'OpenSSL/3', pem: false, s6: false, nowMs: Date.now(),
    }));
    t.equal(vars.get('SSL_SERVER_S_DN_OU'), 'One');
    t.equal(vars.get('SSL_SERVER_S_DN_OU_1'), 'Two', 'a repeated component gets _1');
    t.equal(vars.get('SSL_SERVER_S_DN_CN'), 'Zoë Example', 'UTF-8 kept');
    t.equal(vars.get('SSL_SERVER_S_DN_Email'), 'z@example.test');
    t.equal(vars.get('SSL_SERVER_S_DN_ST'), 'Paris');
    t.equal(vars.get('SSL_SESSION_RESUMED'), 'Resumed');
    t.equal(vars.get('SSL_SESSION_ID'), 'AB');
    t.equal(vars.get('SSL_CIPHER_ALGKEYSIZE'), '128');
  }
});

t.test('session variables without SNI or session id', async (t) => {
  const v = new Map(sessionVars({
    protocol: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256', sessionId: '', resumed: false, secureRenegotiation: false,
    interfaceVersion: 'i/1', libraryVersion: 'l', pem: false, s6: false, nowMs: 0,
  }));
  t.notOk(v.has('SSL_TLS_SNI'));
  t.notOk(v.has('SSL_SESSION_ID'));
  t.equal(v.get('SSL_SECURE_RENEG'), 'false');
});

t.test('ClientHello sniffing', async (t) => {
  t.same(readClientHello(Buffer.from('GET / HTTP/1.1\r\n')), { kind: 'not-tls', looksLike: 'an HTTP request' });
  t.same(readClientHello(Buffer.from('EHLO x\r\n')), { kind: 'not-tls', looksLike: 'plain text' });
  t.same(readClientHello(Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01])), { kind: 'not-tls', looksLike: 'an SSLv2 hello' });
  t.same(readClientHello(Buffer.from([0x16, 0x03])), { kind: 'need-more' });
  t.same(readClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x10, 1])), { kind: 'need-more' });
  t.same(readClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x02, 0x02, 0x00])), { kind: 'opaque' });
  // A real hello from Node's client, captured through a pair of streams.
  const tls = await import('node:tls');
  const { Duplex } = await import('node:stream');
  const hello = await new Promise<Buffer>((res) => {
    const d = new Duplex({ read() {}, write(chunk: Buffer) { res(chunk); } });
    tls.connect({ socket: d, servername: 'sni.example.test' }).on('error', () => {});
  });
  t.match(readClientHello(hello), { kind: 'hello', renegotiationInfo: true, serverName: 'sni.example.test' });
  const h = readClientHello(hello);
  t.ok(h.kind === 'hello' && h.versions?.includes(0x0304), 'supported_versions read: TLS 1.3 offered');
  t.same(readClientHello(hello.subarray(0, 40)), { kind: 'need-more' });
});
