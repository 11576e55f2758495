// The app's half of UCSPI-TLS: check that no plaintext is pending, write the command, read
// the reply, and hand back the decrypted stream on the helper's two fds.
import { Socket } from 'node:net';
import type { Duplex, Readable, Writable } from 'node:stream';
import { joinStreams } from '../process/join-streams';
import { decodeReply } from '../contract/reply';
import type { LineReader } from './lines';

/** Not started: no helper, a refused command, or a handshake that failed (the helper's log says why). */
export class StartTlsError extends Error {
  override name = 'StartTlsError';
}

/**
 * Refused before anything was sent: the peer's bytes after the STARTTLS command were already
 * read in plaintext. Acting on them after the handshake would let an attacker inject commands
 * into the protected session (CVE-2011-0411); the app should answer an error and close.
 */
export class BufferedPlaintextError extends StartTlsError {
  override name = 'BufferedPlaintextError';
  constructor(readonly bytes: number) {
    super(`${bytes} byte(s) of plaintext received after the STARTTLS command: TLS refused`);
  }
}

export interface StartTlsOptions {
  /** Ask for the connection's variables (`Y`, the default) or not (`y`). */
  info?: boolean;
  /** The reader of the plaintext commands: it must hold nothing past the STARTTLS line. */
  lines?: LineReader;
  /** The plaintext input stream: paused, checked for unread bytes, and destroyed. */
  input?: Readable;
  /** The plaintext output: flushed before the command, then destroyed. */
  output?: Writable;
  /**
   * The protocol's go-ahead (`220 2.0.0 Ready to start TLS\r\n`), written on `output` only
   * once the check for pipelined plaintext has passed, so a refused client never gets it.
   */
  ready?: string | Buffer;
  /** Where SSLCTLFD, SSLREADFD and SSLWRITEFD are read; process.env by default. */
  env?: Readonly<Record<string, string | undefined>>;
}

export interface TlsChannel {
  /** The reply's variables (`SSL_PROTOCOL`, `SSL_CIPHER`, ...); empty after `y`. */
  vars: Record<string, string>;
  /** The decrypted connection. end() sends close_notify; 'end' is the peer's. */
  stream: Duplex;
}

function fdFrom(env: Readonly<Record<string, string | undefined>>, name: string): number {
  const v = env[name];
  if (v === undefined || !/^\d+$/.test(v)) {
    throw new StartTlsError(v === undefined ? `${name} is not set: not run under a UCSPI-TLS helper` : `${name}=${v} is not an fd number`);
  }
  return Number(v);
}

/** The reply is complete: a lone NUL (no variables), or variables then an empty one. */
function replyLength(buf: Buffer): number | undefined {
  if (buf.length > 0 && buf[0] === 0) return 1;
  const i = buf.indexOf('\0\0');
  return i < 0 ? undefined : i + 2;
}

function flushed(w: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    // Writes complete in order: this callback runs once everything before it is out.
    w.write(Buffer.alloc(0), (e) => (e ? reject(e) : resolve()));
  });
}

export async function startTls(opts: StartTlsOptions = {}): Promise<TlsChannel> {
  const env = opts.env ?? process.env;
  const ctlFd = fdFrom(env, 'SSLCTLFD');
  const readFd = fdFrom(env, 'SSLREADFD');
  const writeFd = fdFrom(env, 'SSLWRITEFD');
  const info = opts.info ?? true;

  opts.input?.pause();
  const pending = (opts.lines?.buffered ?? 0) + (opts.lines === undefined ? opts.input?.readableLength ?? 0 : 0);
  if (pending > 0) throw new BufferedPlaintextError(pending);
  opts.lines?.detach();
  if (opts.ready !== undefined) {
    if (opts.output === undefined) throw new StartTlsError('ready needs output: where to write it');
    opts.output.write(opts.ready);
  }
  if (opts.output !== undefined) await flushed(opts.output);
  // Nothing may read or write the plaintext fds once the helper owns the connection.
  opts.input?.destroy();
  opts.output?.destroy();

  const ctl = new Socket({ fd: ctlFd, readable: true, writable: true, allowHalfOpen: true });
  const vars = await new Promise<Record<string, string>>((resolve, reject) => {
    let got: Buffer = Buffer.alloc(0);
    const done = (e: Error | undefined, v?: Record<string, string>): void => {
      ctl.removeAllListeners('data').removeAllListeners('end');
      if (e !== undefined) reject(e);
      else resolve(v!);
    };
    ctl.on('error', (e) => done(new StartTlsError(`control socket: ${e.message}`)));
    ctl.write(info ? 'Y' : 'y', (e) => {
      if (e) return done(new StartTlsError(`control socket: ${e.message}`));
      // After `y` there is nothing to wait for: helpers differ on when they close the socket.
      if (!info) done(undefined, {});
    });
    if (!info) return;
    ctl.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      const n = replyLength(got);
      if (n !== undefined) done(undefined, Object.fromEntries(decodeReply(got.subarray(0, n))));
    });
    ctl.on('end', () => done(new StartTlsError('TLS not started: the helper closed the control socket without a reply')));
  });
  if (ctlFd !== readFd && ctlFd !== writeFd) ctl.destroy();

  let stream: Duplex;
  if (readFd === writeFd) {
    stream = ctlFd === readFd ? ctl : new Socket({ fd: readFd, readable: true, writable: true, allowHalfOpen: true });
  } else {
    const r = new Socket({ fd: readFd, readable: true, writable: false, allowHalfOpen: true });
    const w = new Socket({ fd: writeFd, readable: false, writable: true, allowHalfOpen: true });
    stream = joinStreams(r, w);
  }
  return { vars, stream };
}
