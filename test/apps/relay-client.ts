// A client app for the tests, run under tcpclient and ucspi-tls-client, written with the
// app-side module. MODE=smtp: banner, EHLO, STARTTLS, then NOOP (and DATA of $BULK bytes)
// and QUIT through TLS. MODE=direct: TLS at once, one line out, one line back.
// It records in $REPORT: vars.json, answer, data (sent and acknowledged digests), error.
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex, Writable } from 'node:stream';
import { LineReader, plaintextStreams, startTls } from '../../src/app-side';

const R = process.env.REPORT ?? '.';
const record = (name: string, text: string): void => writeFileSync(join(R, name), text);

async function main(): Promise<void> {
  const plain = plaintextStreams('client');
  let lines = new LineReader(plain.input);
  let out: Writable | Duplex = plain.output;
  const send = (l: string): boolean => out.write(`${l}\r\n`);
  const expect = async (code: string): Promise<string> => {
    for (;;) {
      const l = await lines.line();
      if (l === null) throw new Error(`connection ended while waiting for ${code}`);
      if (l.startsWith(`${code} `)) return l;
      if (!l.startsWith(`${code}-`)) throw new Error(`expected ${code}, got ${l}`);
    }
  };

  if (process.env.MODE !== 'direct') {
    await expect('220');
    send('EHLO client.test');
    await expect('250');
    send('STARTTLS');
    await expect('220');
  }
  const tls = await startTls({ info: process.env.INFO !== 'y', lines, input: plain.input, output: plain.output });
  record('vars.json', JSON.stringify(tls.vars));
  lines = new LineReader(tls.stream);
  out = tls.stream;

  if (process.env.MODE === 'direct') {
    send('hello over tls');
    record('answer', (await lines.line()) ?? '<eof>');
  } else {
    send('TLS');
    record('answer', await expect('250'));
    const bulk = Number(process.env.BULK ?? '0');
    if (bulk > 0) {
      // A whole transaction, started over with EHLO after STARTTLS as RFC 3207 asks.
      for (const [command, code] of [['EHLO client.test', '250'], ['MAIL FROM:<relay@client.test>', '250'], ['RCPT TO:<postmaster@mail.example.test>', '250']] as const) {
        send(command);
        await expect(code);
      }
      send('DATA');
      await expect('354');
      const h = createHash('sha256');
      let sent = 0;
      while (sent < bulk) {
        const line = Buffer.from(`${randomBytes(57).toString('base64')}\r\n`);
        h.update(line);
        sent += line.length;
        if (!out.write(line)) await new Promise((r) => out.once('drain', r));
      }
      send('.');
      const ack = await expect('250');
      record('data', `${sent} bytes sha256=${h.digest('hex')}\n${ack}\n`);
    }
    send('QUIT');
    await expect('221');
  }
  out.end();
}

main().catch((e: Error) => {
  record('error', `${e.constructor.name}: ${e.message}`);
  process.exit(3);
});
