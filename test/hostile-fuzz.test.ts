// Fuzzing, for a bounded time: random and mutated bytes from the network after STARTTLS
// (random streams, mutated real ClientHellos, ciphertext of a real session corrupted by a
// proxy in the middle) and random bytes from the app on the control socket, at random times.
// Every iteration: the helper ends with the app's status, logs through its own lines only
// (no stack trace, no uncaught exception), logs a line for each failure, and leaves nothing
// running. Every iteration has its own seed, printed when it fails: FUZZ_SEED=seed replays it
// as the first iteration of each case.
// make check: about 20 s for the network side and 20 s for the control socket; make soak:
// SOAK_SECONDS for each.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { readClientHello } from '../src/tls/client-hello';
import { Lines, ROOT, sleep } from './helpers';
import { clientHello, closed, endStatus, helperLog, helperPid, killLeftovers, leftovers, prng, serve, toStartTls, type Served } from './hostile';
import { between, mutate, pick, randomBuffer, split, type Rand } from './mutate';

const SOAK = Number(process.env.SOAK_SECONDS ?? 0);
/** Seconds of fuzzing per side: the network side's are shared by its three cases. */
const SIDE_SECONDS = SOAK > 0 ? SOAK : 20;
const BASE_SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : randomInt(2 ** 32);
/** One iteration may take this long before it counts as a hang (the helper runs with -t 2). */
const ITERATION_LIMIT_MS = 20000;

const FAIL_STATUS = 7; // smtp-app: TLS failed
const EOF_STATUS = 9; // smtp-app: EOF on its TLS read channel
const FUZZ_APP = join(ROOT, 'test', 'apps', 'control-fuzz-app');
const HELPER_LINE = /^ucspi-tls-wrap: pid \d+: /;
const STACK = /Error|\bat |node:internal|Uncaught/;

/** The launcher's stderr past `from`: lines that are neither tcpserver's nor the helper's own. */
function strayLines(s: Served, from: number): string[] {
  return s.srv.err
    .slice(from)
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('tcpserver: ') && !HELPER_LINE.test(l));
}

/** What every iteration must show; returns the helper's log lines, for the case's own checks. */
async function checkEnd(t: Test, s: Served, pid: number, from: number, status: number, label: string): Promise<string[]> {
  const got = await endStatus(s.srv, pid, ITERATION_LIMIT_MS);
  const log = helperLog(s.srv, pid);
  const stray = strayLines(s, from);
  const left = await leftovers(s);
  const traces = log.filter((l) => STACK.test(l));
  const ok = got === status && stray.length === 0 && traces.length === 0 && left.length === 0;
  // One assertion per iteration keeps the output short; the details only when it failed.
  t.ok(ok, label, ok ? {} : { status: got, want: status, log, stray, traces, left });
  return log;
}

/** Run iterations of one case until its time is up (at least one); stops at the first failure. */
async function fuzz(t: Test, seconds: number, iteration: (seed: number, i: number) => Promise<boolean>): Promise<void> {
  const until = Date.now() + seconds * 1000;
  let i = 0;
  for (; i === 0 || Date.now() < until; i++) {
    const seed = (BASE_SEED + i) >>> 0;
    let ok: boolean;
    try {
      ok = await iteration(seed, i);
    } catch (e) {
      t.fail(`iteration ${i}: ${(e as Error).message}`);
      ok = false;
    }
    if (!ok) {
      t.comment(`replay: FUZZ_SEED=${seed}`);
      i++;
      break;
    }
  }
  t.comment(`${i} iteration(s) in ${seconds.toFixed(1)} s, seeds ${BASE_SEED}..${(BASE_SEED + i - 1) >>> 0}`);
}

/** The first record a real client sends: Node's tls (TLS 1.3 and 1.2) or openssl s_client. */
async function captureHello(client: 'node' | 'node-tls12' | 'openssl'): Promise<Buffer> {
  let stop = (): void => {};
  const server: Server = createServer();
  const got = new Promise<Buffer>((res, rej) => {
    server.on('connection', (sock: Socket) => {
      let seen = Buffer.alloc(0);
      sock.on('data', (d: Buffer) => {
        seen = Buffer.concat([seen, d]);
        if (seen.length >= 5 && seen.length >= 5 + seen.readUInt16BE(3)) {
          sock.destroy();
          res(seen.subarray(0, 5 + seen.readUInt16BE(3)));
        }
      });
      sock.on('error', rej);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  if (client === 'openssl') {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'mail.example.test'], { stdio: ['pipe', 'ignore', 'ignore'] });
    stop = () => p.kill('SIGKILL');
  } else {
    const c = tlsConnect({ port, host: '127.0.0.1', servername: 'mail.example.test', rejectUnauthorized: false, ...(client === 'node-tls12' ? { maxVersion: 'TLSv1.2' as const } : {}) });
    c.on('error', () => {});
    stop = () => c.destroy();
  }
  try {
    return await got;
  } finally {
    stop();
    server.close();
  }
}

/** Write the pieces with short pauses between them. */
async function writePieces(sock: Socket, rand: Rand, pieces: Buffer[]): Promise<void> {
  for (const p of pieces) {
    if (sock.destroyed) return;
    sock.write(p);
    if (rand() < 0.5) await sleep(between(rand, 0, 30));
  }
}

t.test(`the client's first record: readClientHello never throws on mutated hellos (seed ${BASE_SEED})`, async (t) => {
  // The pure parser the helper runs on every client's first bytes, many times a second.
  const corpus = [clientHello(), await captureHello('node'), await captureHello('node-tls12'), await captureHello('openssl')];
  const rand = prng(BASE_SEED);
  let thrown = '';
  let n = 0;
  for (; n < 20000 && thrown === ''; n++) {
    const { out } = mutate(rand, pick(rand, corpus), 6);
    try {
      readClientHello(out);
    } catch (e) {
      thrown = `${(e as Error).message} on ${out.toString('hex')}`;
    }
  }
  t.equal(thrown, '', `${n} mutated hellos read without an exception`);
});

t.test(`network side: bytes after STARTTLS (seed ${BASE_SEED})`, async (t) => {
  const corpus = [clientHello(), await captureHello('node'), await captureHello('node-tls12'), await captureHello('openssl')];
  // One launcher for all iterations; -t 2 bounds a client that sends half a handshake and waits.
  const s = await serve(t, { EOF_STATUS: String(EOF_STATUS), FAIL_STATUS: String(FAIL_STATUS) }, ['-t', '2']);
  let connections = 0;

  /** STARTTLS, the bytes, then EOF or waiting for the helper's close; the app sees TLS fail. */
  const attack = async (t: Test, label: string, rand: Rand, bytes: Buffer): Promise<boolean> => {
    for (const f of ['state', 'read-pipe', 'write-pipe', 'reply']) rmSync(join(s.dir, f), { force: true });
    const from = s.srv.err.length;
    const { sock } = await toStartTls(s.port);
    const pid = await helperPid(s.srv, connections++);
    await writePieces(sock, rand, split(rand, bytes));
    if (rand() < 0.8) sock.end();
    await closed(sock);
    const log = await checkEnd(t, s, pid, from, FAIL_STATUS, label);
    const state = readFileSync(join(s.dir, 'state'), 'utf8').trim();
    const readPipe = readFileSync(join(s.dir, 'read-pipe'), 'utf8');
    const ok = log.length >= 1 && state === 'failed' && readPipe.startsWith('eof');
    if (!ok) t.fail(`${label}: the app saw TLS fail and the helper said why`, { log, state, readPipe });
    return ok;
  };

  const third = SIDE_SECONDS / 3;
  await t.test('random byte streams', (t) =>
    fuzz(t, third, (seed, i) => {
      const rand = prng(seed);
      // Half of them look like a TLS handshake record, so that OpenSSL parses them too.
      const head = rand() < 0.5 ? Buffer.from([0x16, 0x03, between(rand, 0, 4)]) : Buffer.alloc(0);
      const bytes = Buffer.concat([head, randomBuffer(rand, between(rand, 1, 4096))]);
      return attack(t, `random #${i} seed ${seed}: ${bytes.length} bytes`, rand, bytes);
    }),
  );
  await t.test('mutated ClientHellos (Node, openssl, hand-made)', (t) =>
    fuzz(t, third, (seed, i) => {
      const rand = prng(seed);
      const { out, what } = mutate(rand, pick(rand, corpus), 4);
      return attack(t, `hello #${i} seed ${seed}: ${what.join(', ')}`, rand, out);
    }),
  );

  // A proxy between the client and tcpserver that corrupts the client's bytes once told to.
  await t.test('ciphertext of a real session corrupted in the middle', async (t) => {
    // 'body': one byte inside the first record's payload, which the record's MAC must catch;
    // 'any': mutations anywhere, the record layer's framing included.
    let corrupt: { rand: Rand; what: string[]; mode: 'body' | 'any' } | undefined;
    const proxy = createServer((down: Socket) => {
      const up = connect({ port: s.port, host: '127.0.0.1' });
      down.on('error', () => up.destroy());
      up.on('error', () => down.destroy());
      up.pipe(down);
      down.on('data', (d: Buffer) => {
        let out = d;
        if (corrupt !== undefined) {
          const c = corrupt;
          corrupt = undefined;
          if (c.mode === 'body' && d.length > 5) {
            // The client was idle: this chunk starts with a record header.
            out = Buffer.from(d);
            const at = between(c.rand, 5, Math.min(d.length, 5 + d.readUInt16BE(3)) - 1);
            out[at] = out[at]! ^ between(c.rand, 1, 255);
            c.what.push(`xor at ${at}, in the first record's payload`);
          } else {
            const m = mutate(c.rand, d, 3);
            // At least one byte that reaches the helper differs from what the client sent.
            out = m.out.length > 0 ? m.out : Buffer.from(d);
            const at = between(c.rand, 0, out.length - 1);
            out[at] = out[at]! ^ between(c.rand, 1, 255);
            c.what.push(...m.what, `xor at ${at}`);
          }
        }
        up.write(out);
      });
      down.on('end', () => up.end());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    t.teardown(() => void proxy.close());
    const proxyPort = (proxy.address() as { port: number }).port;
    let silent = 0;

    await fuzz(t, third, async (seed, i) => {
      const rand = prng(seed);
      const from = s.srv.err.length;
      const { sock } = await toStartTls(proxyPort);
      const pid = await helperPid(s.srv, connections++);
      const tls = tlsConnect({ socket: sock, rejectUnauthorized: false, servername: 'mail.example.test', maxVersion: pick(rand, ['TLSv1.2', 'TLSv1.3'] as const) });
      tls.on('error', () => {});
      await new Promise((r) => tls.once('secureConnect', r));
      const lines = new Lines(tls as unknown as Socket);
      tls.write('NOOP\r\n');
      if ((await lines.line()) !== '250 yes NOOP') throw new Error(`seed ${seed}: no answer through TLS before the corruption`);
      lines.detach();
      tls.resume();
      const what: string[] = [];
      const mode = pick(rand, ['body', 'any'] as const);
      corrupt = { rand, what, mode };
      tls.write(randomBuffer(rand, between(rand, 1, 40000)));
      tls.end();
      await closed(tls as unknown as Socket);
      sock.destroy();
      // The helper's relay fails or sees the end; the app reads EOF and exits with EOF_STATUS.
      const log = await checkEnd(t, s, pid, from, EOF_STATUS, `ciphertext #${i} seed ${seed}: ${what.join(', ')}`);
      const said = log.some((l) => l.startsWith('client connection: '));
      // A record cut short by the mutation and then the client's EOF reads as a plain EOF
      // (Node ignores an EOF without close_notify): counted, not failed.
      if (!said) silent++;
      const ok = said || mode === 'any';
      if (!ok) t.fail(`seed ${seed}: a corrupted record got a log line`, { log, what });
      return ok;
    });
    t.comment(`${silent} corruption(s) only cut a record short before the end: a plain EOF, no log line`);
  });
});

t.test(`control socket: random bytes from the app at random times (seed ${BASE_SEED})`, async (t) => {
  const s = await serve(t, {}, ['-t', '2'], [FUZZ_APP]);
  t.teardown(() => killLeftovers(s.dir, s.srv.proc.pid));
  let connections = 0;
  await fuzz(t, SIDE_SECONDS, async (seed, i) => {
    const rand = prng(seed);
    // The bytes: often a command first (y, Y, or a byte near them), then anything.
    const first = pick(rand, [[0x59], [0x79], [0x00], [0x0a], [0x5a], [between(rand, 0, 255)], []]);
    const bytes = Buffer.concat([Buffer.from(first), rand() < 0.5 ? Buffer.alloc(0) : randomBuffer(rand, between(rand, 1, 300))]);
    const pieces = bytes.length === 0 ? [] : split(rand, bytes, 4);
    // With nothing written the app must not wait for a reply: nobody would ever send one.
    const end = pieces.length === 0 ? pick(rand, ['close', 'exit']) : pick(rand, ['read', 'read', 'close', 'exit']);
    const status = pick(rand, [0, 1, 7, 42, 111, 255]);
    const plan: string[] = [];
    pieces.forEach((p, n) => {
      writeFileSync(join(s.dir, `piece.${n}`), p);
      if (rand() < 0.5) plan.push(`sleep 0.0${between(rand, 0, 9)}`);
      plan.push(`write ${n}`);
    });
    plan.push(`end ${end}`);
    writeFileSync(join(s.dir, 'plan'), `${plan.join('\n')}\n`);
    writeFileSync(join(s.dir, 'status'), String(status));
    const client = pick(rand, ['tls', 'tls', 'close', 'garbage', 'wait'] as const);
    const label = `control #${i} seed ${seed}: ${bytes.length} byte(s) ${bytes.subarray(0, 8).toString('hex')}… in ${pieces.length}, end ${end}, client ${client}`;

    const from = s.srv.err.length;
    const sock = connect({ port: s.port, host: '127.0.0.1' });
    sock.on('error', () => {});
    const banner = new Lines(sock);
    await banner.line();
    banner.detach();
    const pid = await helperPid(s.srv, connections++);
    let echo = '';
    if (client === 'tls') {
      const tls = tlsConnect({ socket: sock, rejectUnauthorized: false, servername: 'mail.example.test' });
      tls.on('error', () => {});
      tls.once('secureConnect', () => {
        const lines = new Lines(tls as unknown as Socket);
        tls.write('hello\r\n');
        tls.end();
        lines.line().then((l) => (echo = l), () => {});
      });
      await closed(tls as unknown as Socket);
    } else if (client === 'garbage') {
      sock.end(randomBuffer(rand, between(rand, 1, 200)));
    } else if (client === 'close') {
      sock.end();
    }
    await closed(sock);

    const log = await checkEnd(t, s, pid, from, status, label);
    const checks: string[] = [];
    const cmd = bytes[0];
    if (end === 'read' && cmd !== undefined && cmd !== 0x59 && cmd !== 0x79 && !log.some((l) => l.startsWith('unknown command ')))
      checks.push('an unknown command was not logged');
    if (end === 'read' && (cmd === 0x59 || cmd === 0x79) && client === 'tls' && echo !== '250 hello') checks.push(`no echo through TLS (got ${JSON.stringify(echo)})`);
    if (checks.length > 0) t.fail(`${label}: ${checks.join('; ')}`, { log });
    return checks.length === 0;
  });
});
