#!/usr/bin/env node
'use strict';
// Write V8's compiled code for ucspi-tls-wrap beside its bundle (build/ucspi-tls-wrap.cache),
// so that a helper starts without compiling its own code: a few milliseconds per
// connection, before the app's banner and again before the handshake.
//
// V8 caches the functions that have run, so the cache comes from real sessions: the helper
// (through its own loader) serves a STARTTLS session with `Y` and then an implicit-TLS one,
// each with a throwaway certificate from openssl(1) and a client here in this process. The
// second run starts from the first one's cache, so the file holds both.
// Without openssl there is no cache, and the helper compiles at each start as Node would.
//
//   node scripts/code-cache.js build/ucspi-tls-wrap.js
const { spawn, spawnSync } = require('node:child_process');
const { mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join, resolve } = require('node:path');
const { createServer, connect: netConnect } = require('node:net');
const { connect } = require('node:tls');

const LIMIT_MS = 20000;

/** In the helper's process: run it through its loader, and keep what V8 compiled at its exit. */
function train(loader, args) {
  const cacheFile = loader.replace(/\.js$/, '.cache');
  process.argv = [process.argv[0], loader, ...args];
  process.on('exit', () => {
    const data = require(loader).cacheFile();
    if (data !== undefined) writeFileSync(cacheFile, data);
  });
  require(loader);
}

/** The next line from a stream, in a lockstep exchange (nothing follows it unasked). */
function line(stream) {
  return new Promise((res, rej) => {
    const got = [];
    const data = (d) => {
      got.push(d);
      const text = Buffer.concat(got).toString('latin1');
      if (!text.includes('\n')) return;
      done();
      res(text.trimEnd());
    };
    const end = () => {
      done();
      rej(new Error('the helper closed the connection'));
    };
    const done = () => {
      stream.off('data', data);
      stream.off('end', end);
      stream.off('close', end);
    };
    stream.on('data', data);
    stream.on('end', end);
    stream.on('close', end);
  });
}

/** One session as the client. */
async function session(plain, implicit) {
  if (!implicit) {
    if (!(await line(plain)).startsWith('220 ')) throw new Error('no banner');
    plain.write('STARTTLS\r\n');
    if ((await line(plain)) !== '220 go') throw new Error('no answer to STARTTLS');
  }
  const tls = await new Promise((res, rej) => {
    const s = connect({ socket: plain, rejectUnauthorized: false, servername: 'cache.invalid' }, () => res(s));
    s.once('error', rej);
  });
  tls.write('PING\r\n');
  const got = await line(tls);
  if (!got.startsWith('250 ')) throw new Error(`unexpected answer ${JSON.stringify(got)}`);
  tls.end();
}

// The app: a banner and STARTTLS in plaintext (or nothing, in the implicit mode), then one
// answer through TLS, with the variables of `Y` read to the end.
const APP = `
if [ -n "\${SSLCTLFD-}" ]; then
  printf '220 cache\\r\\n'; read -r l; printf '220 go\\r\\n'
  printf Y >&3; cat <&3 > /dev/null; exec <&4 >&5
fi
read -r l; printf '250 %s\\r\\n' "$l"; read -r l; exit 0
`;

/** A connected pair of TCP sockets on 127.0.0.1: the helper's fds 0/1 as under tcpserver. */
async function connection() {
  const server = createServer();
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  const accepted = new Promise((res) => server.once('connection', res));
  const client = netConnect(server.address().port, '127.0.0.1');
  const ours = await accepted;
  server.close();
  return { client, theirs: ours };
}

async function run(loader, dir, implicit) {
  const args = [...(implicit ? ['--implicit'] : []), '/bin/sh', '-c', APP];
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', CERTFILE: join(dir, 'cert.pem'), KEYFILE: join(dir, 'key.pem') };
  const { client, theirs } = await connection();
  const child = spawn(process.execPath, [__filename, '--train', loader, ...args], { env, stdio: [theirs, theirs, 'inherit'] });
  theirs.destroy();
  const timer = setTimeout(() => child.kill('SIGKILL'), LIMIT_MS);
  const exited = new Promise((res) => child.on('exit', (code, signal) => res(code ?? signal)));
  try {
    await session(client, implicit);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  const status = await exited;
  clearTimeout(timer);
  if (status !== 0) throw new Error(`the helper ended with ${status}`);
}

async function main() {
  const loader = resolve(process.argv[2] ?? '');
  if (process.argv.length !== 3) {
    process.stderr.write('usage: code-cache.js build/ucspi-tls-wrap.js\n');
    process.exit(100);
  }
  rmSync(loader.replace(/\.js$/, '.cache'), { force: true });
  const dir = mkdtempSync(join(tmpdir(), 'code-cache-'));
  try {
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=cache.invalid',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    if (r.status !== 0) {
      process.stderr.write('code-cache: no openssl(1) for a throwaway certificate: no code cache\n');
      return;
    }
    await run(loader, dir, false);
    await run(loader, dir, true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--train') train(resolve(process.argv[3]), process.argv.slice(4));
else
  main().catch((e) => {
    process.stderr.write(`code-cache: ${e.message}\n`);
    process.exit(1);
  });
