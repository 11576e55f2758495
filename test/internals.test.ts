// Node's internals that src/runtime/ uses, each on this runtime's real sockets, processes
// and TLS: the feature detection finds it, the internal does what the code relies on, and the
// fallback (the public API, or a stated no-op) does what its comment says. A Node release that
// changes one of them fails here, by name, before anything else does.
import t, { type Test } from 'tap';
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readlinkSync, readSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { PerformanceObserver, constants, type PerformanceEntry } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import * as tls from 'node:tls';
import { closeUndeliveredHandles, hasIpcHandleQueue } from '../src/runtime/ipc-handles';
import { exposeGc } from '../src/runtime/collector';
import { listeningHandle } from '../src/runtime/listening-handle';
import { canTakeOver, takeOverReading } from '../src/runtime/socket-takeover';
import { hasReadControl, hasSetBlocking, resumeReading, setNonBlocking, socketFd, stopReading } from '../src/runtime/stream-handle';
import { hasTicketKeyCallback, setTicketKeyCallback } from '../src/runtime/ticket-callback';
import { tlsParent } from '../src/runtime/tls-parent';
import { processHandleShape, spawnOnHandle, spawnShape, type HandleChild } from '../src/runtime/process-handle';
import { ticketKeyAnswer } from '../src/tls/ticket-rotation';
import { makeCert, ROOT, tempDir, within } from './helpers';

const O_NONBLOCK = 0o4000;

/** A TCP connection on 127.0.0.1: our accepted end (as Node gives it, reading at once) and the peer. */
async function tcpPair(t: Test): Promise<{ ours: Socket; peer: Socket }> {
  const server = createServer();
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const peer = connect(port, '127.0.0.1');
  const ours = await accepted;
  server.close();
  t.teardown(() => {
    ours.destroy();
    peer.destroy();
  });
  return { ours, peer };
}

/** Reads `n` bytes straight from `fd` (non-blocking): EAGAIN means not yet, tried again. */
async function readFd(fd: number, n: number): Promise<string> {
  const buf = Buffer.alloc(n);
  let got = 0;
  while (got < n) {
    try {
      got += readSync(fd, buf, got, n - got, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  return buf.toString();
}

function firstData(s: Socket): Promise<string> {
  return new Promise((resolve) => s.once('data', (b: Buffer) => resolve(b.toString())));
}

function nonBlocking(fd: number): boolean {
  const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  return (parseInt(flags![1]!, 8) & O_NONBLOCK) !== 0;
}

/** The handle's own methods, hidden on this one handle: what a Node without them looks like. */
function withoutMethods(s: Socket, names: string[]): () => void {
  const h = (s as unknown as { _handle: Record<string, unknown> })._handle;
  for (const n of names) h[n] = undefined;
  return () => {
    for (const n of names) delete h[n];
  };
}

t.test(`stream handle of Node ${process.version}: found, with an fd that is the connection`, async (t) => {
  const { ours, peer } = await tcpPair(t);
  t.ok(hasReadControl(ours), 'readStop, readStart, reading');
  t.ok(hasSetBlocking(ours), 'setBlocking');
  const fd = socketFd(ours);
  t.type(fd, 'number');
  t.match(readlinkSync(`/proc/self/fd/${fd}`), /^socket:\[\d+\]$/, 'the fd is a socket');
  stopReading(ours);
  peer.write('abc');
  t.equal(await within(readFd(fd!, 3), 5000, 'bytes on the fd'), 'abc', 'the peer’s bytes, read from the fd itself');
  ours.destroy();
  t.equal(socketFd(ours), undefined, 'a closed socket: no fd');
});

t.test('stopReading: the bytes wait in the kernel; resumeReading: they come as data (internal and fallback alike)', async (t) => {
  for (const fallback of [false, true]) {
    const { ours, peer } = await tcpPair(t);
    const restore = fallback ? withoutMethods(ours, ['readStop', 'readStart']) : () => {};
    t.equal(hasReadControl(ours), !fallback, fallback ? 'hidden: the fallback' : 'the internal');
    stopReading(ours);
    peer.write('first bytes');
    if (!fallback) t.equal(await within(readFd(socketFd(ours)!, 5), 5000, 'bytes on the fd'), 'first', 'not read by the handle: still in the kernel');
    resumeReading(ours);
    const rest = await within(firstData(ours), 5000, 'data after resumeReading');
    t.equal(rest, fallback ? 'first bytes' : ' bytes', 'read once resumed');
    restore();
  }
});

t.test('setNonBlocking: O_NONBLOCK set again on a socket made blocking; false, and left so, without the method', async (t) => {
  const { ours } = await tcpPair(t);
  const fd = socketFd(ours)!;
  const handle = (ours as unknown as { _handle: { setBlocking(b: boolean): number } })._handle;
  t.equal(handle.setBlocking(true), 0);
  t.notOk(nonBlocking(fd), 'blocking, as libuv leaves it for a child');
  t.equal(setNonBlocking(ours), true);
  t.ok(nonBlocking(fd), 'non-blocking again');
  handle.setBlocking(true);
  const restore = withoutMethods(ours, ['setBlocking']);
  t.notOk(hasSetBlocking(ours));
  t.equal(setNonBlocking(ours), false, 'the fallback says it could not');
  t.notOk(nonBlocking(fd), 'and the fd is as it was');
  restore();
  handle.setBlocking(false);
});

t.test('takeOverReading: a new Socket reads the handle into our buffer; the stream path reads the same bytes', async (t) => {
  const payload = randomBytes(100 * 1024);
  // The internal: one landing buffer, every read copied out of it.
  {
    const { ours, peer } = await tcpPair(t);
    t.ok(canTakeOver(ours));
    const landing = Buffer.alloc(16 * 1024);
    const parts: Buffer[] = [];
    let reads = 0;
    let elsewhere = 0;
    const done = new Promise<void>((resolve) => {
      const socket = takeOverReading(ours, {
        buffer: landing,
        callback: (n, buf) => {
          if (buf.buffer !== landing.buffer) elsewhere++;
          reads++;
          parts.push(Buffer.from(buf.subarray(0, n)));
          return true;
        },
      });
      t.ok(socket, 'taken over');
      socket!.on('end', resolve);
    });
    peer.end(payload);
    await within(done, 5000, 'the taken-over socket’s EOF');
    t.ok(Buffer.concat(parts).equals(payload), `every byte, in ${reads} reads of at most 16 KiB`);
    t.equal(elsewhere, 0, 'every read into our buffer');
  }
  // The fallback: no handle to take over; the caller reads the stream, with the same bytes.
  {
    const { ours, peer } = await tcpPair(t);
    const restore = withoutMethods(ours, ['readStop']);
    t.notOk(canTakeOver(ours));
    t.equal(takeOverReading(ours, { buffer: Buffer.alloc(16), callback: () => true }), undefined, 'left to the stream');
    restore();
    const parts: Buffer[] = [];
    ours.on('data', (b: Buffer) => parts.push(b));
    const ended = new Promise((resolve) => ours.on('end', resolve));
    peer.end(payload);
    await within(ended, 5000, 'the stream’s EOF');
    t.ok(Buffer.concat(parts).equals(payload), 'every byte');
  }
});

t.test('listeningHandle: sent to a child and back, a second fd that keeps the queue of waiting clients', async (t) => {
  const server = createServer();
  t.equal(listeningHandle(server), undefined, 'not listening: no handle');
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => void server.close());
  const port = (server.address() as { port: number }).port;
  const handle = listeningHandle(server);
  t.ok(handle, 'found');
  // As the launcher and a worker do: there and back over IPC.
  const echo = join(tempDir(t), 'echo.js');
  writeFileSync(echo, "process.on('message', (m, h) => process.send(m, h, () => { h.close(); process.disconnect(); }));\n");
  // A bare node: not the test runner's loaders (process.execArgv), which take seconds to load under load.
  const child = fork(echo, [], { execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  t.teardown(() => void child.kill());
  const spare = await within(new Promise<unknown>((resolve) => { child.once('message', (_m, h) => resolve(h)); child.send('dup', handle as Server); }), 20000, 'the handle back');
  t.ok(spare, 'came back');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  // Closed: a client connecting now waits in the queue of the socket the spare still holds.
  const client = connect(port, '127.0.0.1');
  t.teardown(() => void client.destroy());
  const greeting = new Promise<string>((resolve) => client.once('data', (b: Buffer) => resolve(b.toString())));
  const again = createServer((s) => s.end('accepted'));
  t.teardown(() => void again.close());
  await new Promise<void>((resolve) => again.listen(spare as Server, resolve));
  t.equal(await within(greeting, 5000, 'the waiting client accepted'), 'accepted', 'the client that came while closed is served');
  client.destroy();
  again.close();
});

/** A child with an IPC channel that never takes a handle: Node keeps what it sent pending. */
function deafChild(): ChildProcess {
  return spawn('sleep', ['60'], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
}

t.test('closeUndeliveredHandles: the sockets sent to a child that died are closed; the peers see EOF', async (t) => {
  const child = deafChild();
  t.teardown(() => void child.kill('SIGKILL'));
  t.ok(hasIpcHandleQueue(child), 'found on a child with an IPC channel');
  const pairs = [await tcpPair(t), await tcpPair(t)];
  for (const { ours } of pairs) {
    ours.pause();
    child.send('take', ours, { keepOpen: false }, () => {});
  }
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
  const ends = pairs.map(({ peer }) => new Promise<void>((resolve) => peer.once('end', () => resolve()).resume()));
  t.equal(closeUndeliveredHandles(child), true);
  await within(Promise.all(ends), 5000, 'EOF at both peers');
  t.pass('both peers see EOF: the pending handle and the queued one');
  const plain = spawn('true', [], { stdio: 'ignore' });
  t.notOk(hasIpcHandleQueue(plain), 'a child without IPC: nothing found');
  t.equal(closeUndeliveredHandles(plain), false, 'and the fallback says so');
  await new Promise((resolve) => plain.once('exit', resolve));
});

t.test(`V8 of Node ${process.version}: the collector exposed at run time runs a minor collection`, async (t) => {
  const gc = exposeGc();
  t.type(gc, 'function');
  const seen = new Promise<number>((resolve) => {
    const o = new PerformanceObserver((list) => {
      const minor = list.getEntries().find((e) => (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR);
      if (minor !== undefined) {
        o.disconnect();
        resolve(minor.duration);
      }
    });
    o.observe({ entryTypes: ['gc'] });
  });
  gc!({ type: 'minor' });
  t.type(await within(seen, 5000, 'a minor gc entry'), 'number', 'a minor collection was recorded');
});

t.test('a Node that refuses V8 flags: no collector, no young-generation flag, and no throw', async (t) => {
  const dir = tempDir(t);
  const preload = join(dir, 'refuse.js');
  writeFileSync(preload, "require('node:v8').setFlagsFromString = () => { throw new Error('refused'); };\n");
  const runtime = join(ROOT, 'build', 'src', 'runtime');
  const script = `const c = require(${JSON.stringify(join(runtime, 'collector.js'))}); const y = require(${JSON.stringify(join(runtime, 'young-generation.js'))});
    process.stdout.write(JSON.stringify([c.exposeGc(), y.keepYoungGenerationSmall()]));`;
  for (const [refuse, want] of [[true, '[null,false]'], [false, null]] as const) {
    const r = spawnSync(process.execPath, [...(refuse ? ['-r', preload] : []), '-e', script], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    t.equal(r.status, 0, r.stderr);
    if (want !== null) t.equal(r.stdout, want, 'refused: null and false');
    else t.match(r.stdout, /^\[null,true\]$/, 'taken: the young-generation flag (gc is a function, not shown by JSON)');
  }
});

t.test('tlsParent: the stream a tls.Server was handed, under each TLS socket it makes', async (t) => {
  const certs = makeCert(tempDir(t));
  const server = tls.createServer({ key: readFileSync(certs.key), cert: readFileSync(certs.cert) });
  const { ours, peer } = await tcpPair(t);
  const secure = new Promise<tls.TLSSocket>((resolve) => server.once('secureConnection', resolve));
  server.emit('connection', ours);
  const client = tls.connect({ socket: peer, rejectUnauthorized: false });
  const t1 = await within(secure, 5000, 'the handshake');
  t.equal(tlsParent(t1), ours, 'the stream handed to the server');
  t.equal(tlsParent({} as tls.TLSSocket), undefined, 'none: undefined');
  client.destroy();
  t1.destroy();
});

/** A session from a TLS server on `port`, and whether it resumed `session`. */
async function tlsSessionOf(port: number, session?: Buffer): Promise<{ ticket: Buffer; reused: boolean }> {
  const c = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...(session !== undefined ? { session } : {}) });
  let ticket: Buffer | undefined;
  let reused = false;
  c.on('session', (s: Buffer) => (ticket ??= s));
  c.once('secureConnect', () => (reused = c.isSessionReused()));
  // The server sends a line and ends: TLS 1.3 tickets come with it, before its EOF.
  await within(new Promise<void>((resolve, reject) => c.once('error', reject).on('end', () => resolve()).resume()), 5000, 'the session');
  c.destroy();
  return { ticket: ticket!, reused };
}

async function listening(s: tls.Server): Promise<number> {
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return (s.address() as { port: number }).port;
}

t.test('setTicketKeyCallback: a ticket of the previous key resumes; with the public single key it does not', async (t) => {
  const certs = makeCert(tempDir(t));
  const base = { key: readFileSync(certs.key), cert: readFileSync(certs.cert) };
  const [before, now] = [randomBytes(48), randomBytes(48)];
  const old = tls.createServer({ ...base, ticketKeys: before }, (s) => s.end('hi'));
  const rotated = tls.createServer({ ...base, ticketKeys: now }, (s) => s.end('hi'));
  const plain = tls.createServer({ ...base, ticketKeys: now }, (s) => s.end('hi'));
  t.teardown(() => [old, rotated, plain].forEach((s) => s.close()));
  t.ok(hasTicketKeyCallback(rotated), 'found');
  t.ok(setTicketKeyCallback(rotated, (name, iv, enc) => ticketKeyAnswer(name, iv, enc, now, before)));
  const [oldPort, rotatedPort, plainPort] = [await listening(old), await listening(rotated), await listening(plain)];
  const { ticket } = await tlsSessionOf(oldPort);
  t.equal((await tlsSessionOf(rotatedPort, ticket)).reused, true, 'the internal: resumed with the previous key');
  t.equal((await tlsSessionOf(plainPort, ticket)).reused, false, 'the public API (the new key alone): a full handshake');
  t.notOk(hasTicketKeyCallback({} as tls.Server));
  t.equal(setTicketKeyCallback({} as tls.Server, () => [0, now, now, now, now]), false, 'none: false');
});

/** The first `n` bytes a socket gives. */
function bytesOf(s: Socket, n: number): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    s.on('data', (b: Buffer) => {
      got += b.toString('latin1');
      if (got.length >= n) resolve(got);
    });
  });
}

function exitOf(c: HandleChild): Promise<[number | null, NodeJS.Signals | null]> {
  return new Promise((resolve) => c.onExit((code, signal) => resolve([code, signal])));
}

t.test(`process handle of Node ${process.version}: the shape this release takes`, async (t) => {
  const major = Number(process.versions.node.split('.')[0]);
  t.equal(processHandleShape(), major >= 24 ? 'positional' : 'options', 'a supported Node starts its apps without child_process');
  // The shapes come from the major and the binding's flag constants together; anything else is unknown.
  const flags = { kProcessFlagDetached: 1, kProcessFlagWindowsHide: 2 };
  t.equal(spawnShape('v20.20.2', undefined), 'options');
  t.equal(spawnShape('v22.23.5', undefined), 'options');
  t.equal(spawnShape('v24.22.3', flags), 'positional');
  t.equal(spawnShape('v26.12.1', flags), 'positional');
  t.equal(spawnShape('v22.30.0', flags), undefined, 'a 22 with the constants: a changed binding, not known');
  t.equal(spawnShape('v26.13.0', undefined), undefined, 'a 26 without them: not known');
  t.equal(spawnShape('v28.0.0', flags), undefined, 'a later major: child_process until tested');
  t.equal(spawnShape('v25.1.0', flags), undefined, 'an odd major: not supported');
});

t.test('spawnOnHandle: fds passed on, socket pairs both ways, the environment, the exit code', async (t) => {
  const c = spawnOnHandle('/bin/sh', ['-c', 'echo "$GREETING"; read -r l; echo "got $l" >&3; read -r m <&3; echo "and $m"; exit 7'], { GREETING: 'hello', PATH: '/usr/bin:/bin' }, ['pipe', 'pipe', 2, 'pipe'], {});
  if (c === undefined || 'error' in c) return void t.fail(`not started: ${JSON.stringify(c)}`);
  t.ok(c.pid > 0);
  const exited = exitOf(c);
  const [input, output, ctl] = [c.socket(0), c.socket(1), c.socket(3)];
  t.equal(input.readable, false, "fd 0's pair: written only, as child_process makes it");
  const out = bytesOf(output, 'hello\nand there\n'.length);
  input.write('line one\n');
  t.equal(await within(bytesOf(ctl, 'got line one\n'.length), 5000, 'fd 3'), 'got line one\n');
  ctl.write('there\n');
  t.equal(await within(out, 5000, 'fd 1'), 'hello\nand there\n');
  t.same(await within(exited, 5000, 'the exit'), [7, null]);
  t.ok(c.ended());
  const late = await within(exitOf(c), 1000, 'a listener after the exit');
  t.same(late, [7, null], 'a listener added after the exit hears it too');
  [input, output, ctl].forEach((s) => s.destroy());
});

t.test('spawnOnHandle: the signal that ended it; a missing or non-executable file by its errno name', async (t) => {
  const c = spawnOnHandle('/bin/sleep', ['30'], {}, [0, 1, 2], {});
  if (c === undefined || 'error' in c) return void t.fail('not started');
  const exited = exitOf(c);
  process.kill(c.pid, 'SIGTERM');
  t.same(await within(exited, 5000, 'the exit'), [null, 'SIGTERM']);
  const dir = tempDir(t);
  t.same(spawnOnHandle(join(dir, 'none'), [], {}, [0, 1, 2], {}), { error: 'ENOENT' });
  writeFileSync(join(dir, 'plain'), '#!/bin/sh\n', { mode: 0o644 });
  t.same(spawnOnHandle(join(dir, 'plain'), [], {}, [0, 1, 2], {}), { error: 'EACCES' });
  t.same(spawnOnHandle('true', [], { PATH: '/nowhere' }, [0, 1, 2], {}), { error: 'ENOENT' }, "the child's PATH is searched");
});

t.test('spawnOnHandle: as another user, with the supplementary groups gone', async (t) => {
  t.equal(process.getuid?.(), 0, 'the suite runs as root');
  const c = spawnOnHandle('/bin/sh', ['-c', 'echo "$(id -u) $(id -g) $(id -G)"'], { PATH: '/usr/bin:/bin' }, [0, 'pipe', 2], { uid: 65534, gid: 65534 });
  if (c === undefined || 'error' in c) return void t.fail('not started');
  const out = bytesOf(c.socket(1), '65534 65534 65534\n'.length);
  t.equal(await within(out, 5000, 'id'), '65534 65534 65534\n');
  t.same(await within(exitOf(c), 5000, 'the exit'), [0, null]);
});

t.test('spawnOnHandle: what child_process itself refuses is left to it (undefined)', async (t) => {
  t.equal(spawnOnHandle('/bin/true', [], { X: 'a\0b' }, [0, 1, 2], {}), undefined, 'a NUL in a variable');
  t.equal(spawnOnHandle('/bin/true', ['a\0'], {}, [0, 1, 2], {}), undefined, 'a NUL in an argument');
  t.equal(spawnOnHandle('/bin/true', [], {}, [0, 1, 2], { uid: 2 ** 32 }), undefined, 'a uid out of range');
  t.equal(spawnOnHandle('/bin/true', [], {}, [0, 1.5, 2], {}), undefined, 'an fd that is no integer');
});

t.test('a Node without process.binding(): no process handle, and no throw', async (t) => {
  const runtime = join(ROOT, 'build', 'src', 'runtime', 'process-handle.js');
  const script = `process.binding = undefined; const h = require(${JSON.stringify(runtime)});
    process.stdout.write(JSON.stringify([h.processHandleShape() ?? null, h.spawnOnHandle('/bin/true', [], {}, [0, 1, 2], {}) ?? null]));`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { PATH: process.env.PATH } });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, '[null,null]');
});
