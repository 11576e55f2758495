// A tiny SMTP-like app for the demo: plaintext until STARTTLS, then the same dialogue over
// TLS through the helper. It links no TLS library: the app-side module does the protocol.
// Under the implicit-TLS mode it starts with TLS already up (SSL_PROTOCOL is set).
import { createHash } from 'node:crypto';
import type { Duplex, Writable } from 'node:stream';
import { BufferedPlaintextError, LineReader, plaintextStreams, startTls } from '../src/app-side';

async function main(): Promise<void> {
  const plain = plaintextStreams('server');
  let lines = new LineReader(plain.input);
  let out: Writable | Duplex = plain.output;
  let vars: Record<string, string> | undefined = process.env.SSL_PROTOCOL !== undefined ? { ...process.env } as Record<string, string> : undefined;
  const canStartTls = vars === undefined && process.env.SSLCTLFD !== undefined;
  const say = (s: string): void => void out.write(`${s}\r\n`);

  say(`220 demo ESMTP (${vars === undefined ? 'plaintext until STARTTLS' : 'TLS'})`);
  for (;;) {
    const line = await lines.line();
    if (line === null) break;
    const verb = line.split(' ')[0]!.toUpperCase();
    if (verb === 'EHLO' || verb === 'HELO') {
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
      } catch (e) {
        if (!(e instanceof BufferedPlaintextError)) throw e;
        // Commands pipelined after STARTTLS were sent in the clear: never act on them.
        say('554 5.5.1 pipelined input after STARTTLS');
        break;
      }
    } else if (verb === 'TLS') {
      say(vars === undefined ? '250 plaintext' : `250 ${vars.SSL_PROTOCOL} ${vars.SSL_CIPHER} sni=${vars.SSL_TLS_SNI ?? 'none'}`);
    } else if (verb === 'DATA') {
      // The message until a lone dot, dot-unstuffed; the answer names its size and SHA-256.
      say('354 end with <CRLF>.<CRLF>');
      const h = createHash('sha256');
      let size = 0;
      for (;;) {
        const l = await lines.line();
        if (l === null || l === '.') break;
        const b = Buffer.from(`${l.startsWith('.') ? l.slice(1) : l}\r\n`);
        h.update(b);
        size += b.length;
      }
      say(`250 2.0.0 ${size} bytes sha256=${h.digest('hex')}`);
    } else if (verb === 'NOOP') {
      say('250 ok');
    } else if (verb === 'QUIT') {
      say('221 bye');
      break;
    } else {
      say('502 try EHLO, STARTTLS, TLS, DATA, NOOP, QUIT');
    }
  }
  out.end();
}

main().catch((e: Error) => {
  process.stderr.write(`smtp-demo: ${e.message}\n`);
  process.exit(1);
});
