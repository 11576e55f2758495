// The demo's mail server: a whole SMTP transaction (EHLO, STARTTLS, MAIL, RCPT, DATA, QUIT)
// that keeps nothing. Each message is answered, and logged on stderr, with its size and
// SHA-256, so a client can check what arrived. It links no TLS library: the app-side module
// does the UCSPI-TLS part. Under the implicit-TLS mode it starts with TLS up (SSL_PROTOCOL set).
import { createHash } from 'node:crypto';
import type { Duplex, Writable } from 'node:stream';
import { BufferedPlaintextError, LineReader, plaintextStreams, startTls } from '../src/app-side';

/** RFC 5321's limit on recipients a server must take; more is refused, not stored anyway. */
const MAX_RECIPIENTS = 100;

interface Transaction {
  from: string;
  to: string[];
}

/** The address in `MAIL FROM:<a>` / `RCPT TO:<a>` (parameters after it ignored), or undefined. */
function pathArgument(line: string, verb: 'MAIL FROM' | 'RCPT TO'): string | undefined {
  const m = new RegExp(`^${verb}:\\s*<([^<>\\s]*)>(\\s.*)?$`, 'i').exec(line);
  return m?.[1];
}

async function main(): Promise<void> {
  const plain = plaintextStreams('server');
  let lines = new LineReader(plain.input);
  let out: Writable | Duplex = plain.output;
  let vars: Record<string, string> | undefined = process.env.SSL_PROTOCOL !== undefined ? { ...process.env } as Record<string, string> : undefined;
  const canStartTls = vars === undefined && process.env.SSLCTLFD !== undefined;
  const say = (s: string): void => void out.write(`${s}\r\n`);
  const log = (s: string): void => void process.stderr.write(`smtp-demo: ${s}\n`);
  let greeted = false;
  let tx: Transaction | undefined;

  say(`220 demo ESMTP (${vars === undefined ? 'plaintext until STARTTLS' : 'TLS'})`);
  for (;;) {
    const line = await lines.line();
    if (line === null) break;
    const verb = (line.split(' ')[0] ?? '').toUpperCase();
    if (verb === 'EHLO' || verb === 'HELO') {
      greeted = true;
      tx = undefined;
      if (verb === 'HELO') {
        say('250 demo');
        continue;
      }
      say('250-demo');
      if (vars === undefined && canStartTls) say('250-STARTTLS');
      say('250 HELP');
    } else if (verb === 'STARTTLS') {
      if (vars !== undefined || !canStartTls) {
        say('503 5.5.1 TLS not available now');
        continue;
      }
      try {
        const tls = await startTls({ lines, input: plain.input, output: plain.output, ready: '220 2.0.0 go ahead\r\n' });
        vars = tls.vars;
        lines = new LineReader(tls.stream);
        out = tls.stream;
        // RFC 3207: after the handshake the client starts over with EHLO.
        greeted = false;
        tx = undefined;
        log(`TLS: ${vars.SSL_PROTOCOL} ${vars.SSL_CIPHER}`);
      } catch (e) {
        if (!(e instanceof BufferedPlaintextError)) throw e;
        // Commands pipelined after STARTTLS were sent in the clear: never act on them.
        say('554 5.5.1 pipelined input after STARTTLS');
        break;
      }
    } else if (verb === 'MAIL') {
      const from = pathArgument(line, 'MAIL FROM');
      if (!greeted) say('503 5.5.1 EHLO first');
      else if (tx !== undefined) say('503 5.5.1 a transaction is open: RSET first');
      else if (from === undefined) say('501 5.5.4 syntax: MAIL FROM:<address>');
      else {
        tx = { from, to: [] };
        say(`250 2.1.0 sender <${from}> ok`);
      }
    } else if (verb === 'RCPT') {
      const to = pathArgument(line, 'RCPT TO');
      if (tx === undefined) say('503 5.5.1 MAIL first');
      else if (to === undefined || to === '') say('501 5.5.4 syntax: RCPT TO:<address>');
      else if (tx.to.length >= MAX_RECIPIENTS) say('452 4.5.3 too many recipients');
      else {
        tx.to.push(to);
        say(`250 2.1.5 recipient <${to}> ok`);
      }
    } else if (verb === 'DATA') {
      if (tx === undefined || tx.to.length === 0) {
        say(`503 5.5.1 ${tx === undefined ? 'MAIL' : 'RCPT'} first`);
        continue;
      }
      // The message until a lone dot, dot-unstuffed, each line ended by CR LF.
      say('354 end with <CRLF>.<CRLF>');
      const h = createHash('sha256');
      let size = 0;
      for (;;) {
        const l = await lines.line();
        if (l === null) return void out.end();
        if (l === '.') break;
        const b = Buffer.from(`${l.startsWith('.') ? l.slice(1) : l}\r\n`);
        h.update(b);
        size += b.length;
      }
      const sum = h.digest('hex');
      log(`message from <${tx.from}> to ${tx.to.map((a) => `<${a}>`).join(', ')}: ${size} bytes sha256=${sum}${vars === undefined ? ' (no TLS)' : ''}`);
      say(`250 2.0.0 ${size} bytes sha256=${sum}`);
      tx = undefined;
    } else if (verb === 'TLS') {
      say(vars === undefined ? '250 plaintext' : `250 ${vars.SSL_PROTOCOL} ${vars.SSL_CIPHER} sni=${vars.SSL_TLS_SNI ?? 'none'}`);
    } else if (verb === 'RSET') {
      tx = undefined;
      say('250 2.0.0 reset');
    } else if (verb === 'NOOP') {
      say('250 ok');
    } else if (verb === 'QUIT') {
      say('221 bye');
      break;
    } else {
      say('502 5.5.2 try EHLO, STARTTLS, MAIL, RCPT, DATA, RSET, NOOP, QUIT (and TLS: the session)');
    }
  }
  out.end();
}

main().catch((e: Error) => {
  process.stderr.write(`smtp-demo: ${e.message}\n`);
  process.exit(1);
});
