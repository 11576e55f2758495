// How fatal conditions are worded (pure), and what the documents' tests read from Markdown:
// command blocks, links and headings' anchors.
import t from 'tap';
import { cannotRunMessage, errnoWords, errorWords, keyDefaultMessage, logFileMessage, usageMessage } from '../src/messages';
import { anchors, commandsOf, fences, indentedCode, links, shellBlocks, slug } from './readme';

t.test('errno codes in words', async (t) => {
  t.equal(errnoWords('ENOENT'), 'no such file');
  t.equal(errnoWords('EACCES'), 'permission denied');
  t.equal(errnoWords('EISDIR'), 'is a directory');
  t.equal(errnoWords('EWEIRD'), 'EWEIRD', 'an unknown code as it is');
  t.equal(errnoWords(undefined), 'error');
  t.equal(errorWords(Object.assign(new Error('EPERM, Operation not permitted'), { code: 'EPERM' })), 'operation not permitted');
  t.equal(errorWords(new Error('plain')), 'plain');
});

t.test('usage errors point to --help', async (t) => {
  t.equal(usageMessage('no app to run', 'ucspi-tls-wrap'), 'no app to run (see ucspi-tls-wrap --help)');
});

t.test('an app that cannot run', async (t) => {
  t.equal(cannotRunMessage('mailfront', 'ENOENT', '/usr/bin:/bin'), 'cannot run mailfront: not found in PATH /usr/bin:/bin');
  t.equal(cannotRunMessage('mailfront', 'ENOENT', undefined), 'cannot run mailfront: not found in PATH (unset)');
  t.equal(cannotRunMessage('/opt/x', 'ENOENT', '/bin'), 'cannot run /opt/x: no such file', 'a path is not looked up');
  t.equal(cannotRunMessage('x', 'EACCES', '/bin'), 'cannot run x: permission denied');
});

t.test('the log file', async (t) => {
  t.equal(logFileMessage('/var/log/a/b.log', 'ENOENT', '/var/log/a', false), 'cannot open log file /var/log/a/b.log: no such directory /var/log/a');
  t.equal(logFileMessage('/var/log/a/b.log', 'ENOENT', '/var/log/a', true), 'cannot open log file /var/log/a/b.log: no such file', 'a dangling link, say');
  t.equal(logFileMessage('/var/log/a/b.log', 'EACCES', '/var/log/a', true), 'cannot open log file /var/log/a/b.log: permission denied');
});

t.test('a key read from CERTFILE because KEYFILE is unset', async (t) => {
  const m = 'KEYFILE /etc/ssl/mail.pem: no private key in the file';
  t.equal(keyDefaultMessage(m, {}), "CERTFILE /etc/ssl/mail.pem: no private key in the file, and KEYFILE is not set (KEYFILE defaults to CERTFILE): set KEYFILE to the key's file");
  t.equal(keyDefaultMessage(m, { KEYFILE: '' }), keyDefaultMessage(m, {}), 'empty is unset');
  t.equal(keyDefaultMessage(m, { KEYFILE: '/etc/ssl/mail.pem' }), m, 'KEYFILE named that file itself');
  t.match(keyDefaultMessage('KEYFILE:a.test /x.pem: no private key in the file', { KEYFILE: '/k' }), /^CERTFILE:a\.test \/x\.pem: .*KEYFILE:a\.test is not set/);
  t.equal(keyDefaultMessage('CERTFILE /x: no certificate in the file', {}), 'CERTFILE /x: no certificate in the file', 'other messages unchanged');
});

t.test('shell blocks under their headings', async (t) => {
  const md = [
    '# title', '```sh', 'make demo   # a comment', '```', '## Install', 'text', '```ts', '## not a heading', '```',
    '### Sub', '```sh', 'a \\', '  b', '', '# only a comment', 'c  # note', '```', '## Next', '    indented', '',
  ].join('\n');
  const blocks = shellBlocks(md);
  t.same(blocks.map((b) => [b.section, b.subsection, b.line]), [['title', undefined, 2], ['Install', 'Sub', 11]]);
  t.same(commandsOf(blocks[0]!.code), ['make demo']);
  t.same(commandsOf(blocks[1]!.code), ['a b', 'c']);
  t.same(fences(md).map((f) => f.info), ['sh', 'ts', 'sh']);
  t.same(indentedCode(md), [19]);
  t.throws(() => shellBlocks('```sh\nx\n'), /unclosed/);
  t.same(commandsOf("x sh -c '\n  a  # inside quotes, for the inner shell\n  b'  # after\ny \"#no\" \\# z\n"), [
    "x sh -c '\n  a  # inside quotes, for the inner shell\n  b'",
    'y "#no" \\# z',
  ], 'a quoted string across lines is one command; only an unquoted word-start # is a comment');
  t.throws(() => commandsOf("echo 'open"), /unclosed/);
});

t.test('links and the anchors GitHub gives headings', async (t) => {
  t.equal(slug("Runtimes: node options and Node's internals"), 'runtimes-node-options-and-nodes-internals');
  t.equal(slug('ucspi-tls-wrap or ucspi-tls-server?'), 'ucspi-tls-wrap-or-ucspi-tls-server');
  t.equal(slug('The resident server: `ucspi-tls-server`'), 'the-resident-server-ucspi-tls-server');
  t.equal(slug('Implicit TLS (ports 465, 993, 995)'), 'implicit-tls-ports-465-993-995');
  const md = ['# A b', '## Same', '```sh', '## not a heading [x](no.md)', '```', '### Same', 'see [here](b.md#c) and `[code](no.md)`, [top](#a-b)'].join('\n');
  t.same([...anchors(md)], ['a-b', 'same', 'same-1']);
  t.same(links(md), [{ target: 'b.md#c', line: 7 }, { target: '#a-b', line: 7 }], 'none from a fence or a code span');
});
