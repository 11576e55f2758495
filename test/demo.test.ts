// The demo (demo/run, which `make demo` runs): a mail server one can mail through with
// STARTTLS. The line it prints is run as printed; swaks, Python's smtplib and openssl
// s_client send messages, and the size and SHA-256 it answers are those of what was sent.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort, Lines, ROOT, run, startTls, tempDir } from './helpers';
import { Job, listening } from './group';

interface Demo {
  job: Job;
  port: number;
  /** The commands it tells the user to try. */
  printed: string[];
}

async function demo(t: Test): Promise<Demo> {
  const port = await freePort();
  const job = new Job('sh', [join(ROOT, 'demo', 'run')], { PATH: process.env.PATH, PORT: String(port) });
  t.teardown(() => job.stop());
  const out = await job.output(/^ {2}openssl .*\n/m);
  await listening(port);
  return { job, port, printed: out.split('\n').filter((l) => l.startsWith('  ')).map((l) => l.slice(2)) };
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

t.test('the swaks line the demo prints, run as printed: the message is taken with 250', async (t) => {
  const d = await demo(t);
  const swaks = d.printed.find((c) => c.startsWith('swaks '));
  t.equal(swaks, `swaks --tls --server 127.0.0.1:${d.port} --to postmaster@example.org`, 'the line names the port');
  const r = await run('sh', ['-c', swaks!], { PATH: process.env.PATH });
  t.equal(r.status, 0, `swaks exit 0: ${r.err}`);
  t.match(r.out, /-> STARTTLS\n<- {2}220 2\.0\.0 go ahead\n=== TLS started with cipher TLSv1\.3:/, 'STARTTLS, then TLS 1.3');
  const replies = r.out.split('\n').filter((l) => l.startsWith('<~ '));
  const data = /^<~ {2}250 2\.0\.0 (\d+) bytes sha256=([0-9a-f]{64})$/.exec(replies.at(-2) ?? '');
  t.ok(data, `the last reply before QUIT's is 250 for the message: ${replies.at(-2)}`);
  t.equal(replies.at(-1), '<~  221 bye');
  // What swaks sent between DATA's 354 and the dot, as it shows it, CR LF each line.
  const shown = r.out.split('\n<~  354 end with <CRLF>.<CRLF>\n')[1]!.split('\n');
  const sent = shown.slice(0, shown.indexOf(' ~> .')).map((l) => l.replace(/^ ~> /, '').replace(/\r$/, ''));
  t.ok(sent.length > 5 && shown.includes(' ~> .'), 'the message, up to the dot');
  const body = Buffer.from(sent.map((l) => `${l.startsWith('.') ? l.slice(1) : l}\r\n`).join(''));
  t.equal(data![1], String(body.length), 'the size is that of the message swaks sent');
  t.equal(data![2], sha256(body), 'and so is the SHA-256');
  const log = await d.job.output(/smtp-demo: message from/);
  t.match(log, new RegExp(`^smtp-demo: message from <[^>]+> to <postmaster@example\\.org>: ${data![1]} bytes sha256=${data![2]}$`, 'm'), 'the demo logs the message');
  t.match(log, /^ucspi-tls-wrap: pid \d+: TLS started: TLSv1\.3 /m, 'and the helper the session');
  t.ok(await d.job.stop(), 'stopped, nothing of it left running');
});

t.test("Python's smtplib: starttls, sendmail, data; every byte counted", async (t) => {
  const d = await demo(t);
  const dir = tempDir(t);
  const marker = randomBytes(8).toString('hex');
  const lines = ['From: alice@example.org', 'To: bob@example.org', 'Subject: Grüße', '', `marker ${marker}`, '.a line that starts with a dot', '..two', 'ünïcödé'];
  for (let i = 0; i < 2000; i++) lines.push(randomBytes(40).toString('base64'));
  const message = Buffer.from(`${lines.join('\r\n')}\r\n`);
  writeFileSync(join(dir, 'message'), message);
  const script = `
import smtplib, ssl, sys
msg = open(sys.argv[2], 'rb').read()
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=20)
s.starttls(context=ssl._create_unverified_context())
print('tls', s.sock.version())
print('refused', s.sendmail('alice@example.org', ['bob@example.org', 'carol@example.org'], msg))
s.ehlo(); s.mail('alice@example.org'); s.rcpt('bob@example.org')
code, reply = s.data(msg)
print('data', code, reply.decode())
s.quit()
`;
  const r = spawnSync('/usr/bin/python3', ['-c', script, String(d.port), join(dir, 'message')], { encoding: 'utf8', timeout: 30000 });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^tls TLSv1\.3$/m);
  t.match(r.stdout, /^refused \{\}$/m, 'sendmail: no recipient refused');
  t.match(r.stdout, new RegExp(`^data 250 2\\.0\\.0 ${message.length} bytes sha256=${sha256(message)}$`, 'm'), 'size and SHA-256 of the bytes sent');
  const log = await d.job.output(/smtp-demo: message from[^]*smtp-demo: message from/);
  t.match(log, new RegExp(`^smtp-demo: message from <alice@example\\.org> to <bob@example\\.org>, <carol@example\\.org>: ${message.length} bytes sha256=${sha256(message)}$`, 'm'), 'sendmail\'s, logged');
  t.match(log, new RegExp(`^smtp-demo: message from <alice@example\\.org> to <bob@example\\.org>: ${message.length} bytes sha256=${sha256(message)}$`, 'm'), 'data\'s, logged');
});

t.test('the openssl s_client line it prints, with a session typed in', async (t) => {
  const d = await demo(t);
  const sClient = d.printed.find((c) => c.startsWith('openssl '))!;
  t.match(sClient, new RegExp(`-connect 127\\.0\\.0\\.1:${d.port} `));
  const typed = 'EHLO me\nMAIL FROM:<me@example.org>\nRCPT TO:<you@example.org>\nDATA\nhello\n.\nTLS\nQUIT\n';
  const r = spawnSync('sh', ['-c', sClient], { input: typed, encoding: 'utf8', timeout: 30000 });
  t.equal(r.status, 0, r.stderr);
  t.equal(
    r.stdout.replace(/\r/g, ''),
    ['250-demo', '250 HELP', '250 2.1.0 sender <me@example.org> ok', '250 2.1.5 recipient <you@example.org> ok', '354 end with <CRLF>.<CRLF>',
      `250 2.0.0 7 bytes sha256=${sha256(Buffer.from('hello\r\n'))}`, '250 TLSv1.3 TLS_AES_256_GCM_SHA384 sni=localhost', '221 bye', ''].join('\n'),
    'each reply, through TLS',
  );
});

t.test('SMTP order: MAIL before EHLO, DATA before RCPT, and after STARTTLS EHLO again', async (t) => {
  const d = await demo(t);
  const sock = connect({ port: d.port, host: '127.0.0.1' });
  const plain = new Lines(sock);
  await plain.reply('220');
  const ask = async (lines: Lines, w: { write(s: string): unknown }, command: string): Promise<string> => {
    w.write(`${command}\r\n`);
    const got = await lines.line();
    return got;
  };
  t.equal(await ask(plain, sock, 'MAIL FROM:<a@b.example>'), '503 5.5.1 EHLO first');
  t.equal(await ask(plain, sock, 'HELO me'), '250 demo');
  t.equal(await ask(plain, sock, 'RCPT TO:<c@d.example>'), '503 5.5.1 MAIL first');
  t.equal(await ask(plain, sock, 'MAIL FROM:a@b.example'), '501 5.5.4 syntax: MAIL FROM:<address>');
  t.equal(await ask(plain, sock, 'MAIL FROM:<a@b.example> SIZE=10'), '250 2.1.0 sender <a@b.example> ok', 'parameters after the path are taken');
  t.equal(await ask(plain, sock, 'MAIL FROM:<a@b.example>'), '503 5.5.1 a transaction is open: RSET first');
  t.equal(await ask(plain, sock, 'DATA'), '503 5.5.1 RCPT first');
  t.equal(await ask(plain, sock, 'RSET'), '250 2.0.0 reset');
  t.equal(await ask(plain, sock, 'VRFY x'), '502 5.5.2 try EHLO, STARTTLS, MAIL, RCPT, DATA, RSET, NOOP, QUIT (and TLS: the session)');
  sock.end('QUIT\r\n');
  t.equal(await plain.line(), '221 bye');

  const tls = await startTls(d.port, { servername: 'localhost' });
  const secure = new Lines(tls as unknown as import('node:net').Socket);
  t.equal(await ask(secure, tls, 'MAIL FROM:<a@b.example>'), '503 5.5.1 EHLO first', 'what was said before TLS is forgotten');
  tls.write('EHLO me\r\n');
  t.same(await secure.reply('250'), ['250-demo', '250 HELP'], 'no STARTTLS inside TLS');
  t.equal(await ask(secure, tls, 'STARTTLS'), '503 5.5.1 TLS not available now');
  tls.end('QUIT\r\n');
  t.equal(await secure.line(), '221 bye');
});

t.test('PORT that is no number: one line, exit 100, nothing started', async (t) => {
  const r = spawnSync('sh', [join(ROOT, 'demo', 'run')], { env: { PATH: process.env.PATH, PORT: '25x' }, encoding: 'utf8', timeout: 10000 });
  t.equal(r.status, 100);
  t.equal(r.stderr, "demo: PORT must be a port number, not '25x'\n");
  t.equal(r.stdout, '');
});
