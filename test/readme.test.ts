// Every command in README.md and HACKING.md, run as written. The commands are the ```sh
// blocks, found by the heading above them; each heading has a runner below that knows the
// block's commands, substitutes only the ports and the paths of files it must, and runs
// them. A block without a runner, or a command a runner does not know, fails the test: the
// documents and the test cannot drift apart. (examples/README.md's block is run by
// examples.test.ts.) Also: the README stays short and opens with the two set-up commands,
// links between the documents lead somewhere, and the README's figures are HACKING.md's.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { CLIENT_USAGE } from '../src/client/options';
import { USAGE } from '../src/helper/options';
import { USAGE as SERVER_USAGE } from '../src/server/options';
import { freePort, ROOT, run, tempDir, WITHOUT_TEST_HOOKS } from './helpers';
import { Job, listening } from './group';
import { anchors, commandsOf, fences, indentedCode, links, shellBlocks, type ShellBlock } from './readme';

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const HACKING = readFileSync(join(ROOT, 'HACKING.md'), 'utf8');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** As after `make install`: the executables in PATH. */
const PATH = `${join(ROOT, 'bin')}:${process.env.PATH}`;

type Runner = (t: Test, commands: string[]) => Promise<void>;

/** The block's commands must be these, in this order: a new one needs its runner changed. */
function expectCommands(t: Test, commands: string[], patterns: RegExp[]): void {
  t.equal(commands.length, patterns.length, `${patterns.length} commands: ${JSON.stringify(commands)}`);
  patterns.forEach((p, i) => t.match(commands[i] ?? '', p, `command ${i + 1} is the one the runner knows`));
}

/** Where the commands' files and ports go on this machine. */
interface Place {
  dir: string;
  ports: Record<string, number>;
}

async function place(t: Test): Promise<Place> {
  return { dir: tempDir(t), ports: { '587': await freePort(), '465': await freePort() } };
}

/** Only the paths of the certificate and key, the well-known ports, and tcpserver's "any address". */
function here(p: Place, command: string): string {
  let c = command.replaceAll('/etc/ssl/private/', `${p.dir}/`).replaceAll('/etc/ssl/', `${p.dir}/`);
  for (const [port, local] of Object.entries(p.ports)) {
    c = c.replace(new RegExp(`(tcpserver|ucspi-tls-server) (-\\S+ )*0 ${port} `), (m) => m.replace(` 0 ${port} `, ` 127.0.0.1 ${local} `));
    c = c.replaceAll(`127.0.0.1:${port}`, `127.0.0.1:${local}`).replaceAll(`127.0.0.1 ${port} `, `127.0.0.1 ${local} `);
  }
  return c;
}

/** `apt-get install …`: make check installs the same packages. */
function packagesInstalled(t: Test, command: string): void {
  const testDeps = /^test-deps:\n\t(.*)$/m.exec(readFileSync(join(ROOT, 'Makefile'), 'utf8'))![1]!;
  for (const pkg of command.replace(/^apt-get install /, '').split(' ')) t.match(testDeps, new RegExp(`\\b${pkg}\\b`), `make check installs ${pkg}`);
}

/** A command ending in `&`: started as a job of its own, stopped at the end of the test. */
async function background(t: Test, command: string, port: number): Promise<Job> {
  // As an operator runs it: without the test runner's hooks (a server's workers, as nobody,
  // could not load them from a private checkout).
  const job = new Job(WITHOUT_TEST_HOOKS[0]!, [...WITHOUT_TEST_HOOKS.slice(1), 'sh', '-c', command.replace(/ &$/, '')], { PATH });
  t.teardown(() => job.stop());
  await listening(port);
  return job;
}

async function quickStart(t: Test, p: Place, commands: string[]): Promise<Job> {
  expectCommands(t, commands, [/^apt-get install /, /^openssl req /, /^CERTFILE=\S+ KEYFILE=\S+ UCSPITLS=1 tcpserver .* &$/, /^swaks /]);
  const [install, cert, server, client] = commands as [string, string, string, string];
  packagesInstalled(t, install);
  t.equal((await run('sh', ['-c', here(p, cert)], { PATH })).status, 0, 'the certificate is made');
  const srv = await background(t, here(p, server), p.ports['587']!);
  const r = await run('sh', ['-c', here(p, client)], { PATH });
  t.equal(r.status, 0, `swaks: ${r.err}`);
  t.match(r.out, /-> STARTTLS\n<- {2}220 /, 'STARTTLS offered (UCSPITLS=1) and taken');
  t.match(r.out, /<~ {2}250 Received \d+ bytes/, 'swaks ends with 250 Received … bytes, as the README says');
  const log = await srv.output(/TLS ended/);
  t.match(log, /^ucspi-tls-wrap: pid \d+: TLS started: TLSv1\.3 TLS_AES_256_GCM_SHA384$/m, 'the line the README promises');
  t.match(log, /^mailfront\[\d+\]: RCPT TO:<postmaster@example\.org>$/m, "mailfront's lines for the message");
  t.match(log, /^ucspi-tls-wrap: pid \d+: TLS ended: \d+ bytes to client, \d+ bytes to app$/m);
  return srv;
}

async function stopped(t: Test, job: Job): Promise<void> {
  t.ok(await job.stop(), 'the server and everything it started stopped: nothing left');
}

/** What `make -n TARGET` would run: for the targets that are the test suite or take minutes. */
function dryRun(t: Test, command: string): string {
  const r = spawnSync('sh', ['-c', command.replace(/^make /, 'make -n ')], { cwd: ROOT, encoding: 'utf8' });
  t.equal(r.status, 0, `${command}: a target make knows (${r.stderr})`);
  return r.stdout;
}

const runners: Record<string, Runner> = {
  // The first lines: the two commands that do all set-up on a fresh machine.
  'ucspi-tls-wrap': async (t, commands) => {
    expectCommands(t, commands, [/^make demo$/, /^make check$/]);
    const port = await freePort();
    const demo = new Job('sh', ['-c', commands[0]!], { PATH: process.env.PATH, PORT: String(port) }, ROOT);
    t.teardown(() => demo.stop());
    const out = await demo.output(/^ {2}swaks .*\n/m, 120000);
    await listening(port);
    const swaks = /^ {2}(swaks .*)$/m.exec(out)![1]!;
    const r = await run('sh', ['-c', swaks], { PATH: process.env.PATH });
    t.equal(r.status, 0, `the swaks line make demo prints: ${r.err}`);
    t.match(r.out, /<~ {2}250 2\.0\.0 \d+ bytes sha256=[0-9a-f]{64}\n ~> QUIT\n<~ {2}221 bye\n/, 'the message is taken with 250');
    t.ok(await demo.stop(), 'make demo stops with its group, nothing left');
    // make check is this very suite: what it would run.
    const check = dryRun(t, commands[1]!);
    t.match(check, /install-debian-packages .*\bmailfront\b/, 'it installs the test packages');
    t.match(check, /with-node \$r node_modules\/\.bin\/tap build\/test\/\*\.test\.js /m, 'and runs every test file, on each runtime');
  },
  Install: async (t, commands) => {
    if (commands[0] === 'npm pack') {
      expectCommands(t, commands, [/^npm pack$/, new RegExp(`^npm install -g \\./ucspi-tls-wrap-${VERSION.replaceAll('.', '\\.')}\\.tgz$`)]);
      const dir = tempDir(t);
      const tarball = join(ROOT, `ucspi-tls-wrap-${VERSION}.tgz`);
      t.teardown(() => rmSync(tarball, { force: true }));
      const pack = spawnSync('sh', ['-c', commands[0]], { cwd: ROOT, encoding: 'utf8', env: { ...process.env } });
      t.equal(pack.status, 0, pack.stderr);
      t.ok(existsSync(tarball), 'npm pack leaves the tarball the next command names');
      t.equal(spawnSync('git', ['check-ignore', '-q', tarball], { cwd: ROOT }).status, 0, 'git ignores it');
      // npm's prefix, the path it installs under, is the only change; its cache, not the network, when it can.
      const env = { ...process.env, npm_config_prefix: dir, npm_config_prefer_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false' };
      const install = spawnSync('sh', ['-c', commands[1]!], { cwd: ROOT, encoding: 'utf8', env, timeout: 120000 });
      t.equal(install.status, 0, install.stderr);
      t.equal(spawnSync(join(dir, 'bin', 'ucspi-tls-wrap'), ['-V'], { encoding: 'utf8' }).stdout, `ucspi-tls-wrap ${VERSION}\n`);
      t.ok(existsSync(join(dir, 'share', 'man', 'man1', 'ucspi-tls-wrap.1')), 'the man page under npm\'s prefix');
      return;
    }
    expectCommands(t, commands, [/^make$/, /^make install$/, /^make uninstall$/]);
    const stage = tempDir(t);
    for (const c of commands) {
      // DESTDIR: the path everything goes under, the only change.
      const r = spawnSync('sh', ['-c', `${c} DESTDIR=${stage}`], { cwd: ROOT, encoding: 'utf8' });
      t.equal(r.status, 0, `${c}: ${r.stderr}`);
      const bin = join(stage, 'usr', 'local', 'bin', 'ucspi-tls-wrap');
      if (c === 'make install') {
        t.equal(spawnSync(bin, ['-V'], { encoding: 'utf8' }).stdout, `ucspi-tls-wrap ${VERSION}\n`, 'installed in /usr/local/bin');
        t.ok(existsSync(join(stage, 'usr', 'local', 'share', 'man', 'man1', 'ucspi-tls-wrap.1')));
        t.ok(existsSync(join(stage, 'usr', 'local', 'share', 'doc', 'ucspi-tls-wrap', 'examples', 'README.md')));
      }
      if (c === 'make uninstall') {
        t.notOk(existsSync(bin), 'removed again');
        t.notOk(existsSync(join(stage, 'usr', 'local', 'lib', 'ucspi-tls-wrap')));
      }
    }
  },
  // Built here and read; installing it system-wide is make check-deb's (test/package/).
  'Install/Debian package': async (t, commands) => {
    expectCommands(t, commands, [/^make deb$/, /^dpkg -i build\/deb\/\S+\.deb$/]);
    const build = spawnSync('sh', ['-c', commands[0]!], { cwd: ROOT, encoding: 'utf8' });
    t.equal(build.status, 0, `make deb: ${build.stderr}`);
    const deb = join(ROOT, commands[1]!.replace(/^dpkg -i /, ''));
    t.ok(existsSync(deb), 'make deb leaves the file the next command names');
    const fields = spawnSync('dpkg-deb', ['-f', deb, 'Package', 'Version', 'Depends'], { encoding: 'utf8' }).stdout;
    t.match(fields, new RegExp(`^Package: ucspi-tls-wrap\nVersion: ${VERSION.replaceAll('.', '\\.')}\nDepends: nodejs \\(>= 20\\)`), 'the package, its version, nodejs 20 or later');
    // dpkg's own dry run: the dependencies are met here, and nothing is installed.
    const dry = spawnSync('sh', ['-c', commands[1]!.replace(/^dpkg -i /, 'dpkg --dry-run -i ')], { cwd: ROOT, encoding: 'utf8' });
    t.equal(dry.status, 0, `dpkg --dry-run -i: ${dry.stderr}`);
  },
  'Quick start': async (t, commands) => {
    await stopped(t, await quickStart(t, await place(t), commands));
  },
  'Quick start/Implicit TLS (ports 465, 993, 995)': async (t, commands) => {
    const p = await place(t);
    const quick = shellBlocks(README).find((b) => b.section === 'Quick start' && b.subsection === undefined)!;
    // The quick start's certificate, then this block's server and client.
    await run('sh', ['-c', here(p, commandsOf(quick.code)[1]!)], { PATH });
    expectCommands(t, commands, [/^CERTFILE=\S+ KEYFILE=\S+ tcpserver .* --implicit .* &$/, /^swaks --tls-on-connect /]);
    const srv = await background(t, here(p, commands[0]!), p.ports['465']!);
    const r = await run('sh', ['-c', here(p, commands[1]!)], { PATH });
    t.equal(r.status, 0, `swaks: ${r.err}`);
    t.notMatch(r.out, /STARTTLS/, 'TLS from the first byte');
    t.match(r.out, /=== TLS started with cipher TLSv1\.3:/);
    t.match(r.out, /<~ {2}250 Received \d+ bytes/, 'mailfront (with accept) takes the message');
    t.match(await srv.output(/TLS ended/), /^ucspi-tls-wrap: pid \d+: TLS started: TLSv1\.3 /m);
    await stopped(t, srv);
  },
  'Quick start/The resident server: `ucspi-tls-server`': async (t, commands) => {
    const p = await place(t);
    const quick = shellBlocks(README).find((b) => b.section === 'Quick start' && b.subsection === undefined)!;
    await run('sh', ['-c', here(p, commandsOf(quick.code)[1]!)], { PATH });
    expectCommands(t, commands, [/^CERTFILE=\S+ KEYFILE=\S+ UCSPITLS=1 ucspi-tls-server -v 0 587 .* &$/, /^swaks --tls /]);
    t.notMatch(here(p, commands[0]!), / 0 587 /, 'the server on this test\'s port');
    const srv = await background(t, here(p, commands[0]!), p.ports['587']!);
    const r = await run('sh', ['-c', here(p, commands[1]!)], { PATH });
    t.equal(r.status, 0, `swaks: ${r.err}`);
    t.match(r.out, /-> STARTTLS\n<- {2}220 /, 'STARTTLS offered and taken');
    t.match(r.out, /<~ {2}250 Received \d+ bytes/, 'swaks ends with 250 Received … bytes');
    const log = await srv.output(/: end: /);
    const end = /^ucspi-tls-server: pid (\d+): end: exit 0, tls, \d+ bytes to client, \d+ bytes to app, [\d.]+ s$/m.exec(log);
    t.ok(end, `the end line the README promises: ${log}`);
    t.match(log, new RegExp(`^ucspi-tls-server: pid ${end?.[1] ?? 'none'}: start: `, 'm'), 'a start line for the same pid');
    await stopped(t, srv);
  },
  'Quick start/The client side: `ucspi-tls-client`': async (t, commands) => {
    const p = await place(t);
    const quick = shellBlocks(README).find((b) => b.section === 'Quick start' && b.subsection === undefined)!;
    const srv = await quickStart(t, p, commandsOf(quick.code));
    expectCommands(t, commands, [/^CAFILE=\S+ tcpclient .* ucspi-tls-client -k localhost sh -c '/]);
    const r = await run('sh', ['-c', here(p, commands[0]!)], { PATH });
    t.equal(r.status, 0, r.err);
    const tlsAt = r.err.indexOf('SSL_PROTOCOL=');
    t.ok(tlsAt > r.err.indexOf('220 2.0.0 Ready to start TLS'), 'the reply after the 220 to STARTTLS');
    t.match(r.err, /^SSL_PROTOCOL=TLSv1\.3$/m);
    t.match(r.err, /^SSL_SERVER_VERIFY=SUCCESS$/m, 'the certificate checked against CAFILE');
    t.match(r.err, /^SSL_SERVER_S_DN=CN=localhost$/m);
    t.match(r.err.slice(tlsAt), /^250 PIPELINING\r?\n221 2\.0\.0 /m, 'EHLO and QUIT answered through TLS');
    t.notMatch(r.err.slice(tlsAt), /STARTTLS/, 'no STARTTLS offered inside TLS');
    await stopped(t, srv);
  },
  Performance: async (t, commands) => {
    expectCommands(t, commands, [/^make bench$/]);
    t.match(dryRun(t, commands[0]!), /with-node \$r node build\/bench\/bench\.js /m, 'make bench runs the benchmark (it takes minutes: not run here)');
  },
};

/** HACKING.md's blocks. */
const hackingRunners: Record<string, Runner> = {
  'Building and testing': async (t, commands) => {
    expectCommands(t, commands, [/^node_modules\/\.bin\/tap build\/test\/\S+\.test\.js$/, /^make soak SOAK_SECONDS=60$/]);
    // In a folder that mirrors the checkout, with a .tap of its own: the suite's own tap run
    // keeps its state in the checkout's .tap while this one runs.
    const checkout = tempDir(t);
    for (const n of ['node_modules', 'build']) symlinkSync(join(ROOT, n), join(checkout, n));
    for (const n of ['package.json', '.taprc']) copyFileSync(join(ROOT, n), join(checkout, n));
    const one = spawnSync('sh', ['-c', commands[0]!], { cwd: checkout, encoding: 'utf8', timeout: 120000 });
    t.equal(one.status, 0, `one test file, as written${one.status === 0 ? '' : `: ${one.stdout.slice(-400)}${one.stderr.slice(-400)}`}`);
    t.match(one.stdout, /^ok 1 - build\/test\/\S+\.test\.js/m, 'the file passed');
    t.match(dryRun(t, commands[1]!), /SOAK_SECONDS=60 scripts\/with-node \$r \S*tap -t 0 build\/test\/hostile-\*\.test\.js /m, 'make soak runs the hostile suite for SOAK_SECONDS');
  },
};

const key = (b: ShellBlock): string => (b.subsection !== undefined ? `${b.section}/${b.subsection}` : b.section);

const documents: [string, string, Record<string, Runner>][] = [
  ['README.md', README, runners],
  ['HACKING.md', HACKING, hackingRunners],
];

for (const [name, text, byHeading] of documents) {
  t.test(`${name}: every command block has a runner, and every runner a block`, async (t) => {
    t.same([...new Set(shellBlocks(text).map(key))].sort(), Object.keys(byHeading).sort());
    t.same(indentedCode(text), [], 'no indented code blocks: commands go in ```sh blocks, output in ```text');
    for (const f of fences(text)) t.ok(['sh', 'ts', 'text'].includes(f.info), `line ${f.line}: a fence says what it holds (${f.info || 'nothing'})`);
  });
  for (const block of shellBlocks(text)) {
    const runner = byHeading[key(block)];
    if (runner === undefined) continue; // the test above fails
    t.test(`${name} line ${block.line}, under "${key(block)}": ${commandsOf(block.code).join(' ; ').slice(0, 80)}`, (t) => runner(t, commandsOf(block.code)));
  }
}

t.test('the README is for operators: at most 350 lines, and the two set-up commands first', async (t) => {
  const lines = README.replace(/\n$/, '').split('\n');
  t.ok(lines.length <= 350, `${lines.length} lines`);
  t.equal(lines[0], '# ucspi-tls-wrap', 'the title');
  t.equal(lines[1], '', 'then nothing');
  const first = shellBlocks(README)[0];
  t.equal(first?.line, 3, 'then the first block of commands');
  t.same(commandsOf(first?.code ?? ''), ['make demo', 'make check'], 'make demo and make check');
  t.match(README, /\]\(HACKING\.md\)/, 'the rest is in HACKING.md, and the README says so');
});

t.test('links between the documents lead to a file and a heading that exist', async (t) => {
  let checked = 0;
  for (const doc of ['README.md', 'HACKING.md', 'examples/README.md']) {
    const text = readFileSync(join(ROOT, doc), 'utf8');
    for (const { target, line } of links(text)) {
      if (/^[a-z]+:/.test(target)) continue; // a web address: not ours to check here
      const [path, anchor] = target.split('#') as [string, string | undefined];
      const file = path === '' ? join(ROOT, doc) : join(ROOT, dirname(doc), path);
      const where = `${doc}:${line} ${target}`;
      t.ok(existsSync(file) && relative(ROOT, file).split('/')[0] !== '..', `${where}: the file is in the checkout`);
      if (anchor !== undefined) t.ok(existsSync(file) && anchors(readFileSync(file, 'utf8')).has(anchor), `${where}: the heading exists`);
      checked++;
    }
  }
  t.ok(checked >= 8, `${checked} links checked`);
});

t.test('-q is described the same way in --help, the README and the man pages', async (t) => {
  const readme = /^\| `-q`, `--quiet` \| (.+) \|$/m.exec(README)?.[1];
  const help = /^ {2}-q, --quiet +(.+)$/m.exec(USAGE)?.[1];
  const clientHelp = /^ {2}-q, --quiet +(.+)$/m.exec(CLIENT_USAGE)?.[1];
  const serverHelp = /^ {2}-q, --quiet +(.+)$/m.exec(SERVER_USAGE)?.[1];
  const pages = ['ucspi-tls-wrap.1.md', 'ucspi-tls-client.1.md', 'ucspi-tls-server.1.md'].map((p) => /^\* `-q`, `--quiet`: (.+)$/m.exec(readFileSync(join(ROOT, 'man', p), 'utf8'))?.[1]);
  const plain = (s: string | undefined): string => (s ?? '(missing)').replace(/\.$/, '').toLowerCase();
  t.equal(plain(readme), 'log only fatal errors');
  for (const [what, text] of [['--help', help], ['ucspi-tls-client --help', clientHelp], ['man ucspi-tls-wrap', pages[0]], ['man ucspi-tls-client', pages[1]], ['ucspi-tls-server --help', serverHelp], ['man ucspi-tls-server', pages[2]]] as const) {
    t.equal(plain(text), plain(readme), what);
  }
});

/** The benchmark's tables in a document: after each `machine: …; Node vNN.…` line, rows by name, cells by column. */
function benchRuns(text: string): Map<string, Map<string, Map<string, string>>> {
  const runs = new Map<string, Map<string, Map<string, string>>>();
  const lines = text.split('\n');
  lines.forEach((l, i) => {
    const m = /^machine: .*; Node v(\d+)\./.exec(l);
    if (m === null) return;
    const start = lines.findIndex((x, j) => j > i && x.startsWith('|'));
    runs.set(m[1]!, table(lines, start));
  });
  return runs;
}

/** The same, every run in the order the document has them (newest first in bench/RESULTS.md). */
function benchRunsInOrder(text: string): Array<[string, Map<string, Map<string, string>>]> {
  const out: Array<[string, Map<string, Map<string, string>>]> = [];
  const lines = text.split('\n');
  lines.forEach((l, i) => {
    const m = /^machine: .*; Node v(\d+)\./.exec(l);
    if (m === null) return;
    const start = lines.findIndex((x, j) => j > i && x.startsWith('|'));
    out.push([m[1]!, table(lines, start)]);
  });
  return out;
}

/** The README's short column names, as the bench's table names them. */
const COLUMNS: Record<string, string> = { 'banner ms': 'banner ms', 'CPU ms': 'CPU ms/session', 'sessions/s': 'sessions/s (16 at once)', 'idle KiB': 'idle KiB/conn' };

/** A Markdown table from its header line: each row's cells by the header's names. */
function table(lines: string[], start: number): Map<string, Map<string, string>> {
  const cells = (l: string): string[] => l.split('|').slice(1, -1).map((c) => c.trim());
  const header = cells(lines[start] ?? '');
  const rows = new Map<string, Map<string, string>>();
  for (let i = start + 2; lines[i]?.startsWith('|') === true; i++) {
    const row = cells(lines[i]!);
    rows.set(row[0]!, new Map(header.slice(1).map((h, k) => [h, row[k + 1] ?? ''])));
  }
  return rows;
}

t.test('bench/RESULTS.md keeps the runs, HACKING.md the current tables, the README a few of their figures', async (t) => {
  for (const [name, text] of [['README.md', README], ['HACKING.md', HACKING]] as const) {
    t.notMatch(text, /The run before|Before the code cache|Before the work on speed/, `no history in ${name}`);
  }
  t.match(readFileSync(join(ROOT, 'bench', 'RESULTS.md'), 'utf8'), /Before the work on speed/);
  const runs = benchRuns(HACKING);
  t.same([...runs.keys()], ['20', '26'], 'one run on each runtime CI tests whole');
  t.equal((HACKING.match(/^\| ucspi-tls-wrap \(STARTTLS\) /gm) ?? []).length, runs.size, 'one table of figures per run');
  t.same([...benchRuns(README).keys()], [], 'no full run in the README');
  // The README's one table: the server's rows of the last runs in bench/RESULTS.md, one per
  // runtime, side by side; each header cell after "Node NN:" names a column of that run.
  const results = readFileSync(join(ROOT, 'bench', 'RESULTS.md'), 'utf8');
  const latest = new Map<string, Map<string, Map<string, string>>>();
  for (const [runtime, run] of benchRunsInOrder(results)) if (!latest.has(runtime)) latest.set(runtime, run);
  const lines = README.split('\n');
  const start = lines.findIndex((l) => /^\| \| Node \d+: banner ms \|/.test(l));
  t.ok(start > 0, 'the README has its short table');
  const header = lines[start]!.split('|').slice(2, -1).map((c) => c.trim());
  let runtime = '';
  const columns = header.map((h) => {
    const m = /^Node (\d+): (.+)$/.exec(h);
    if (m !== null) runtime = m[1]!;
    return { runtime, column: COLUMNS[m !== null ? m[2]! : h] ?? h };
  });
  t.same([...new Set(columns.map((c) => c.runtime))], ['26', '20'], 'Node 26 and Node 20');
  let rows = 0;
  for (let i = start + 2; lines[i]?.startsWith('|') === true; i++, rows++) {
    const cells = lines[i]!.split('|').slice(1, -1).map((c) => c.trim());
    const row = cells[0]!;
    cells.slice(1).forEach((figure, k) => {
      const { runtime: r, column } = columns[k]!;
      t.equal(figure, latest.get(r)?.get(row)?.get(column), `${row}, ${column}: the figure of the last Node ${r} run in bench/RESULTS.md`);
    });
  }
  t.ok(rows >= 4, `${rows} rows`);
});
