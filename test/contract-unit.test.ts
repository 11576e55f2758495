// The contract's own room: the reply codec, the fd numbers, the exit codes, the verbosity
// and the flags every program shares, checked as values and as the three programs and
// their man pages show them.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT_CANNOT_RUN, EXIT_CONFIG, EXIT_NO_TLS, EXIT_NOT_FOUND, EXIT_USAGE } from '../src/contract/exit-codes';
import { CTL_FD, FD_VARIABLES, fdVariables, NET_READ_FD, NET_WRITE_FD, READ_FD, WRITE_FD } from '../src/contract/fds';
import { handshakeTimeout, parseFlags, repeated } from '../src/contract/flags';
import { decodeReply, encodeReply } from '../src/contract/reply';
import { verbosityOf } from '../src/contract/verbosity';
import { VERSION } from '../src/version';
import { APP, CLIENT, HELPER, ROOT, SERVER, WITHOUT_TEST_HOOKS } from './helpers';

const PROGRAMS = [
  ['ucspi-tls-wrap', HELPER],
  ['ucspi-tls-client', CLIENT],
  ['ucspi-tls-server', SERVER],
] as const;

function run(program: string, args: string[]): { status: number | null; out: string; err: string } {
  const [cmd, ...pre] = WITHOUT_TEST_HOOKS as [string, ...string[]];
  const r = spawnSync(cmd, [...pre, program, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30000 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

function manSection(name: string, heading: string): string {
  const text = readFileSync(join(ROOT, 'man', `${name}.1.md`), 'utf8');
  const from = text.indexOf(`## ${heading}`);
  if (from < 0) throw new Error(`${name}.1.md has no ${heading}`);
  const to = text.indexOf('\n## ', from + 1);
  return text.slice(from, to < 0 ? undefined : to);
}

t.test('the Y reply: VAR=value and a NUL each, then one more NUL', async (t) => {
  const b = encodeReply([['A', '1'], ['B', 'x=y']]);
  t.equal(b.toString('latin1'), 'A=1\0B=x=y\0\0');
  t.equal(encodeReply([]).toString('hex'), '00', 'no variables: one NUL');
  t.same([...decodeReply(b)], [['A', '1'], ['B', 'x=y']]);
  t.equal(encodeReply([['A', 'a\0b']]).toString('latin1'), 'A=ab\0\0', 'a NUL cannot break the framing');
  for (const bad of ['A=B', '', 'A\0']) t.throws(() => encodeReply([[bad, '1']]), `no variable named ${JSON.stringify(bad)}`);
  const utf8 = encodeReply([['SSL_CLIENT_S_DN_CN', 'Jürgen']]);
  t.same([...decodeReply(utf8)], [['SSL_CLIENT_S_DN_CN', 'Jürgen']], 'UTF-8 both ways');
  t.same([...decodeReply(Buffer.from('A=1\0\0B=2\0\0'))], [['A', '1']], 'the reply ends at the empty variable');
});

t.test('the fds: 3, 4, 5 named to the app; 6 and 7 from tcpclient', async (t) => {
  t.same([CTL_FD, READ_FD, WRITE_FD, NET_READ_FD, NET_WRITE_FD], [3, 4, 5, 6, 7]);
  t.same(fdVariables(), { SSLCTLFD: '3', SSLREADFD: '4', SSLWRITEFD: '5' });
  t.same(Object.keys(fdVariables()), [...FD_VARIABLES]);
  for (const [name] of PROGRAMS) {
    for (const [v, fd] of Object.entries(fdVariables())) t.match(readFileSync(join(ROOT, 'man', `${name}.1.md`), 'utf8'), `\`${v}\` (${fd})`, `${name}(1) names ${v} ${fd}`);
  }
  t.match(manSection('ucspi-tls-client', 'DESCRIPTION'), `fds ${NET_READ_FD} (read) and ${NET_WRITE_FD} (write)`);
});

t.test('the exit codes each man page lists are the ones the programs use', async (t) => {
  for (const [name] of PROGRAMS) {
    const s = manSection(name, 'EXIT STATUS');
    t.match(s, `* \`${EXIT_USAGE}\`: usage error`, `${name}: ${EXIT_USAGE}`);
    t.match(s, `* \`${EXIT_CONFIG}\`: configuration or system error`, `${name}: ${EXIT_CONFIG}`);
    t.match(s, `\`${EXIT_CANNOT_RUN}\`, \`${EXIT_NOT_FOUND}\``, `${name}: ${EXIT_CANNOT_RUN}, ${EXIT_NOT_FOUND}`);
  }
  t.match(manSection('ucspi-tls-wrap', 'EXIT STATUS'), `* \`${EXIT_NO_TLS}\`: with \`--implicit\``);
});

t.test('each program: an unknown option and a bad -t are usage errors, in the same words', async (t) => {
  for (const [name, bin] of PROGRAMS) {
    const unknown = run(bin, ['--no-such-option', APP]);
    t.equal(unknown.status, EXIT_USAGE, `${name} --no-such-option`);
    t.match(unknown.err, new RegExp(`^${name}: pid \\d+: fatal: unknown option --no-such-option`), name);
    const timeout = run(bin, ['-t', 'soon', APP]);
    t.equal(timeout.status, EXIT_USAGE, `${name} -t soon`);
    t.match(timeout.err, `fatal: --timeout needs a number of seconds, not 'soon'`, name);
    const twice = run(bin, ['-t', '1', '-t', '2', APP]);
    t.equal(twice.status, EXIT_USAGE, `${name} -t twice`);
    t.match(twice.err, 'fatal: --timeout given more than once', name);
  }
});

t.test('each program takes every shared flag: -v -q -e -t, then -V', async (t) => {
  for (const [name, bin] of PROGRAMS) {
    for (const flags of [['-v', '-q', '-e', '-t', '5', '-V'], ['--verbose', '--quiet', '--keep-env', '--timeout', '0.5', '--version']]) {
      const r = run(bin, flags);
      t.equal(r.status, 0, `${name} ${flags.join(' ')}`);
      t.equal(r.out, `${name} ${VERSION}\n`);
      t.equal(r.err, '');
    }
    const help = run(bin, ['-h']);
    t.equal(help.status, 0);
    t.match(help.out, new RegExp(`^usage: ${name} `));
  }
});

t.test('ucspi-tls-client without a connection on fds 6 and 7: a configuration error', async (t) => {
  const r = run(CLIENT, ['-k', 'mail.example.test', APP]);
  t.equal(r.status, EXIT_CONFIG);
  t.match(r.err, `no connection on fds ${NET_READ_FD} and ${NET_WRITE_FD}`);
});

t.test('the pure parts: flags, time limit, verbosity', async (t) => {
  t.same(parseFlags(['-x', 'app']), { unknown: '-x' });
  const a = parseFlags(['-vq', '-t', '2.5', 'app', '-v'], { boolean: ['own'] });
  if ('unknown' in a) throw new Error('parsed');
  t.same(a._, ['app', '-v'], 'the first word that is not an option ends the flags');
  t.equal(verbosityOf(a), 0, '-q wins over -v');
  t.equal(verbosityOf({ verbose: true }), 2);
  t.equal(verbosityOf({}), 1);
  t.equal(handshakeTimeout(a.timeout), 2500);
  t.equal(handshakeTimeout(undefined), 30000);
  t.same(handshakeTimeout('-1'), { usage: "--timeout needs a number of seconds, not '-1'" });
  t.equal(repeated({ timeout: ['1', '2'] }, ['uid', 'timeout']), '--timeout given more than once');
  t.equal(repeated({ timeout: '1' }, ['timeout']), undefined);
});
