// The access rules' parts on their own: the cdb reader against files Debian's cdbmake and
// tcprules write, the rule lookup against Debian's tcprulescheck, the per-address count,
// the rules file read again when tcprules replaces it, and the options.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Access, addressLimit, AddressCounts } from '../src/server/access/access';
import { Cdb, CdbError, cdbHash } from '../src/server/access/cdb';
import { EXIT_USAGE } from '../src/contract/exit-codes';
import { parseServerArgs } from '../src/server/options';
import { findRule, parseRuleData, ruleKeys } from '../src/server/access/rule-lookup';
import { RulesFile } from '../src/server/access/rules-file';
import { tempDir } from './helpers';
import { prng } from './prng';
import { tcprules } from './tcprules';

/** A cdb written by cdbmake from these records, in this order. */
function cdbmake(dir: string, records: Array<[Buffer, Buffer]>, name = 'test.cdb'): string {
  const input = Buffer.concat([
    ...records.map(([k, d]) => Buffer.concat([Buffer.from(`+${k.length},${d.length}:`), k, Buffer.from('->'), d, Buffer.from('\n')])),
    Buffer.from('\n'),
  ]);
  const file = join(dir, name);
  const r = spawnSync('cdbmake', [file, `${file}.tmp`], { input });
  if (r.status !== 0) throw new Error(`cdbmake: ${r.stderr}`);
  return file;
}

/** Whether reading the file is refused, as damaged (and with nothing but that error). */
function refused(buf: Buffer): boolean {
  try {
    Cdb.from(buf);
    return false;
  } catch (e) {
    return e instanceof CdbError;
  }
}

/** What Debian's tcprulescheck says tcpserver does for an address, in our Rule's terms. */
function tcprulescheck(file: string, ip: string): { key: string | undefined; deny: boolean; env: Array<[string, string]> } {
  const r = spawnSync('tcprulescheck', [file], { env: { TCPREMOTEIP: ip }, encoding: 'utf8' });
  const out = r.stdout;
  const key = /^rule (.*):$/m.exec(out)?.[1];
  const env = [...out.matchAll(/^set environment variable ([^=\n]*)=(.*)$/gm)].map((m): [string, string] => [m[1]!, m[2]!]);
  return { key, deny: /^deny connection$/m.test(out), env };
}

t.test('cdb: every key of a cdbmake file found, the first of duplicates, absent keys not', async (t) => {
  const dir = tempDir(t);
  const rand = prng(7);
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
  const records: Array<[Buffer, Buffer]> = [[Buffer.alloc(0), Buffer.from('the empty key')]];
  for (let i = 0; i < 3000; i++) records.push([i % 3 === 0 ? bytes(1 + Math.floor(rand() * 40)) : Buffer.from(`10.${i >> 8}.${i & 255}.`), bytes(Math.floor(rand() * 30))]);
  records.push([Buffer.from('dup'), Buffer.from('first')], [Buffer.from('dup'), Buffer.from('second')]);
  const cdb = Cdb.from(readFileSync(cdbmake(dir, records)));

  const firsts = new Map<string, Buffer>();
  for (const [k, d] of records) if (!firsts.has(k.toString('hex'))) firsts.set(k.toString('hex'), d);
  let found = 0;
  for (const [hex, d] of firsts) if (cdb.get(Buffer.from(hex, 'hex'))?.equals(d)) found++;
  t.equal(found, firsts.size, `all ${firsts.size} distinct keys give their first record's data`);
  t.equal(cdb.get('dup')?.toString(), 'first', 'duplicates: the first, as cdbget and tcpserver take it');
  // cdbget wants the file itself on stdin (it seeks).
  const fd = openSync(join(dir, 'test.cdb'), 'r');
  const cdbget = spawnSync('cdbget', ['dup'], { stdio: [fd, 'pipe', 'pipe'] });
  closeSync(fd);
  t.equal(cdbget.stdout.toString(), 'first', 'cdbget agrees');
  t.equal(cdb.get('')?.toString(), 'the empty key');
  t.equal(cdb.get('10.0.0'), undefined, 'a key not there');
  t.equal(cdb.get('no such key at all'), undefined);

  const empty = Cdb.from(readFileSync(cdbmake(dir, [], 'empty.cdb')));
  t.equal(empty.get(''), undefined, 'an empty cdb finds nothing');
  t.equal(cdbHash(Buffer.alloc(0)), 5381, "djb's hash starts at 5381");
});

t.test('cdb: a file cut short or with bytes changed is refused or read in bounds, never a crash', async (t) => {
  const dir = tempDir(t);
  const file = cdbmake(dir, Array.from({ length: 200 }, (_, i): [Buffer, Buffer] => [Buffer.from(`192.168.${i}.`), Buffer.from(`+N=${i}\0`)]));
  const good = readFileSync(file);
  for (const cut of [0, 100, 2047, 2048, 2100, good.length - 1]) {
    t.ok(refused(good.subarray(0, cut)), `cut to ${cut} bytes: refused`);
  }
  t.ok(refused(Buffer.from('127.0.0.1:deny\n'.repeat(200))), 'a rules text file given instead: refused');

  const rand = prng(11);
  let rejected = 0;
  let others = 0;
  for (let i = 0; i < 2000; i++) {
    const bad = Buffer.from(good);
    for (let n = 0; n < 1 + Math.floor(rand() * 4); n++) bad[Math.floor(rand() * bad.length)] = Math.floor(rand() * 256);
    let cdb: Cdb;
    try {
      cdb = Cdb.from(bad);
    } catch (e) {
      if (e instanceof CdbError) rejected++;
      else others++;
      continue;
    }
    // Accepted (a changed data byte, say): every lookup stays in bounds.
    try {
      for (let k = 0; k < 200; k += 7) cdb.get(`192.168.${k}.`);
      cdb.get('');
    } catch {
      others++;
    }
  }
  t.equal(others, 0, 'no error but CdbError, no lookup out of bounds');
  t.ok(rejected > 100, `damaged files refused (${rejected} of 2000)`);
});

t.test("rule keys in tcpserver's order; IPv6 prefixes at ':' as ucspi-tcp-ipv6", async (t) => {
  t.same(ruleKeys('1.2.3.4'), ['1.2.3.4', '1.2.3.', '1.2.', '1.', '']);
  t.same(ruleKeys('2001:db8::1'), ['2001:db8::1', '2001:db8::', '2001:db8:', '2001:', '']);
  t.same(ruleKeys('::1'), ['::1', '::', ':', '']);
});

t.test('rule data: D denies, +NAME=value sets, anything else skipped as tcpserver skips it', async (t) => {
  const d = (s: string): Buffer => Buffer.from(s, 'utf8');
  t.same(parseRuleData(d('')), { deny: false, env: [] }, 'allow alone writes nothing');
  t.same(parseRuleData(d('D\0')), { deny: true, env: [] });
  t.same(parseRuleData(d('+RELAYCLIENT=\0+A=b=c\0')), { deny: false, env: [['RELAYCLIENT', ''], ['A', 'b=c']] });
  t.same(parseRuleData(d('+NOEQUALS\0+=x\0?\0Dx\0+LAST=1')), { deny: true, env: [] }, 'no =, no name, unknown, the first byte D; an unterminated last item');
  t.same(parseRuleData(d('+NAME=grüße\0')).env, [['NAME', 'grüße']], 'UTF-8 values as written');
});

t.test("the rule for an address is the one Debian's tcprulescheck names, with its settings", async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'rules.cdb');
  tcprules(file, [
    '# comment',
    '127.0.0.1:allow,RELAYCLIENT="",GREETING="hello world"',
    '127.0.0.2:deny',
    '127.:allow,TCPLOCALHOST="movie.edu"',
    '10.1.2.3-5:deny',
    '10.1.:allow,X=/a"b/',
    '10.:deny,WHY="denied anyway"',
    'joe@10.9.9.9:allow',
    '=mail.example:allow',
    ':allow,DEFAULT="yes",DEFAULT="twice"',
  ]);
  const cdb = Cdb.from(readFileSync(file));
  for (const ip of ['127.0.0.1', '127.0.0.2', '127.9.9.9', '10.1.2.3', '10.1.2.4', '10.1.2.6', '10.1.9.9', '10.9.9.9', '192.0.2.1', '1.2.3.4']) {
    const ours = findRule(cdb, ip);
    t.same(ours, tcprulescheck(file, ip), `${ip}: rule ${JSON.stringify(ours.key)}, ${ours.deny ? 'deny' : 'allow'}`);
  }
  tcprules(file, ['10.:deny']);
  const noDefault = Cdb.from(readFileSync(file));
  t.same(findRule(noDefault, '192.0.2.1'), { key: undefined, deny: false, env: [] }, 'no rule at all: allowed, as tcpserver does');
  t.same(findRule(noDefault, '192.0.2.1'), tcprulescheck(file, '192.0.2.1'));

  // IPv6 keys as ucspi-tcp-ipv6's tcprules writes them (Debian's IPv4 one refuses them), here by cdbmake.
  const v6 = Cdb.from(readFileSync(cdbmake(dir, [[Buffer.from('2001:db8::'), Buffer.from('+NET=doc\0')], [Buffer.from('::1'), Buffer.from('D\0')]])));
  t.same(findRule(v6, '2001:db8::25'), { key: '2001:db8::', deny: false, env: [['NET', 'doc']] });
  t.same(findRule(v6, '::1'), { key: '::1', deny: true, env: [] });
});

t.test('the rules file: read again when tcprules replaces it; missing with and without -X; damaged', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'rules.cdb');
  t.match(new RulesFile(file, false).check(), /^rules .*rules\.cdb: no such file/, 'missing without -X: unusable');
  const optional = new RulesFile(file, true);
  t.equal(optional.check(), undefined, 'missing with -X: usable');
  t.same(optional.lookup('127.0.0.1'), { ok: true, rule: { key: undefined, deny: false, env: [] } }, 'and every address allowed');

  tcprules(file, ['127.0.0.1:allow,N="1"']);
  t.same(optional.lookup('127.0.0.1'), { ok: true, rule: { key: '127.0.0.1', deny: false, env: [['N', '1']] } }, 'the file once it appears');
  tcprules(file, ['127.0.0.1:deny']);
  t.same(optional.lookup('127.0.0.1'), { ok: true, rule: { key: '127.0.0.1', deny: true, env: [] } }, 'the new file at the next lookup');

  truncateSync(file, 1000);
  const damaged = optional.lookup('127.0.0.1');
  t.match(damaged.ok ? '' : damaged.reason, /rules .*rules\.cdb: not a cdb file: 1000 bytes, shorter than a cdb header/, 'cut short: no rule, a reason');
  t.match(new RulesFile(file, true).check(), /not a cdb file/, 'at start too, -X or not');
  tcprules(file, [':allow']);
  t.same(optional.lookup('127.0.0.1'), { ok: true, rule: { key: '', deny: false, env: [] } }, 'repaired: used again');
  writeFileSync(file, readFileSync(file)); // the same bytes written in place
  t.same(optional.lookup('127.0.0.1').ok, true);
  t.equal(new RulesFile('/dev/zero', false).check(), 'rules /dev/zero: not a regular file', 'a device: refused, not read forever');
  t.equal(new RulesFile(dir, false).check(), `rules ${dir}: not a regular file`, 'a folder');
});

t.test('per-address count and limit: -C, a rule TCPCONNMAX over it, 0 no limit', async (t) => {
  const counts = new AddressCounts();
  counts.add('a');
  counts.add('a');
  counts.remove('a');
  t.equal(counts.count('a'), 1);
  counts.remove('a');
  t.equal(counts.size(), 0, 'an address with no connection is forgotten');

  t.same(addressLimit(2, []), { limit: 2, from: '-C 2' });
  t.same(addressLimit(undefined, []), { limit: undefined, from: '-C undefined' });
  t.same(addressLimit(2, [['TCPCONNMAX', '5'], ['TCPCONNMAX', '7']]), { limit: 7, from: 'TCPCONNMAX=7' }, 'the last setting');
  t.same(addressLimit(2, [['TCPCONNMAX', '0']]), { limit: undefined, from: 'TCPCONNMAX=0' });
  t.same(addressLimit(2, [['TCPCONNMAX', 'many']]), { invalid: 'many' });

  const dir = tempDir(t);
  const file = join(dir, 'rules.cdb');
  tcprules(file, ['10.0.0.9:allow,TCPCONNMAX="0"', '10.0.0.5:allow,TCPCONNMAX="x"', '10.:allow,TCPCONNMAX="1",RELAYCLIENT=""', ':allow']);
  const warned: string[] = [];
  const access = new Access(new RulesFile(file, false), 2, (l) => warned.push(l));
  const a1 = access.admit('192.0.2.1', 'c1');
  const a2 = access.admit('192.0.2.1', 'c2');
  const a3 = access.admit('192.0.2.1', 'c3');
  t.same([a1.ok && a1.env, a2.ok && a2.env, a3.ok], [{ TCPCONNNUM: '1' }, { TCPCONNNUM: '2' }, false], '-C 2: the third refused; TCPCONNNUM counts');
  t.equal(!a3.ok && a3.line, 'deny: c3: 2 connections from 192.0.2.1 already (-C 2)');
  if (a1.ok) {
    a1.release();
    a1.release();
  }
  t.ok(access.admit('192.0.2.1', 'c4').ok, 'one ended (released twice, counted once): let in again');
  t.notOk(access.admit('192.0.2.1', 'c5').ok);

  const b1 = access.admit('10.1.1.1', 'd1');
  t.same(b1.ok && b1.env, { TCPCONNNUM: '1', TCPCONNMAX: '1', RELAYCLIENT: '' }, "the rule's settings after TCPCONNNUM");
  const b2 = access.admit('10.1.1.1', 'd2');
  t.equal(!b2.ok && b2.line, 'deny: d2: 1 connection from 10.1.1.1 already (TCPCONNMAX=1)', 'the rule lowers the limit');
  t.ok(access.admit('10.1.1.2', 'd3').ok, 'per address, not per rule');
  for (let i = 0; i < 5; i++) t.ok(access.admit('10.0.0.9', `e${i}`).ok, `TCPCONNMAX=0: no limit (${i + 1})`);
  t.ok(access.admit('10.0.0.5', 'f1').ok && access.admit('10.0.0.5', 'f2').ok && !access.admit('10.0.0.5', 'f3').ok, 'TCPCONNMAX not a number: -C');
  t.same(warned, ['f1: TCPCONNMAX=x of rule 10.0.0.5 is not a number: ignored', 'f2: TCPCONNMAX=x of rule 10.0.0.5 is not a number: ignored', 'f3: TCPCONNMAX=x of rule 10.0.0.5 is not a number: ignored']);

  tcprules(file, ['10.:deny', ':allow']);
  const denied = access.admit('10.1.1.1', 'g1');
  t.equal(!denied.ok && denied.line, 'deny: g1 by rule 10.', 'deny names the rule');
  tcprules(file, [':deny']);
  const byDefault = access.admit('192.0.2.7', 'g2');
  t.equal(!byDefault.ok && byDefault.line, 'deny: g2 by the default rule');

  const noRules = new Access(undefined, undefined, () => {});
  const n = noRules.admit('192.0.2.1', 'h');
  t.same(n.ok && n.env, {}, 'without -x and -C: nothing added to the environment');
  const onlyC = new Access(undefined, 1, () => {});
  const c1 = onlyC.admit('192.0.2.1', 'i1');
  t.same(c1.ok && c1.env, { TCPCONNNUM: '1' }, '-C without -x');
  const c2 = onlyC.admit('192.0.2.1', 'i2');
  t.equal(!c2.ok && c2.line, 'deny: i2: 1 connection from 192.0.2.1 already (-C 1)');
});

t.test('options: -x FILE, -X, -C N', async (t) => {
  const ENV = { CERTFILE: '/c.pem' };
  const r = parseServerArgs(['-x', '/etc/rules.cdb', '-X', '-C', '3', '0', '25', 'app'], ENV, 1, 42);
  t.same(r.kind === 'run' && [r.config.rules, r.config.perAddress], [{ path: '/etc/rules.cdb', optional: true }, 3]);
  const long = parseServerArgs(['--rules', 'r.cdb', '--per-address', '1', '0', '25', 'app'], ENV, 1, 42);
  t.same(long.kind === 'run' && [long.config.rules, long.config.perAddress], [{ path: 'r.cdb', optional: false }, 1]);
  const none = parseServerArgs(['0', '25', 'app'], ENV, 1, 42);
  t.same(none.kind === 'run' && [none.config.rules, none.config.perAddress], [undefined, undefined], 'neither by default');
  const bad: Array<[string[], RegExp]> = [
    [['-X', '0', '25', 'app'], /-X goes with -x FILE/],
    [['-x', '', '0', '25', 'app'], /-x needs a file/],
    [['-C', '0', '0', '25', 'app'], /-C needs a whole number from 1, not '0'/],
    [['-C', 'two', '0', '25', 'app'], /-C needs a whole number/],
    [['-x', 'a', '-x', 'b', '0', '25', 'app'], /--rules given more than once/],
  ];
  for (const [argv, re] of bad) {
    const p = parseServerArgs(argv, ENV, 1, 42);
    t.equal(p.kind === 'error' && p.status, EXIT_USAGE, argv.join(' '));
    t.match(p.kind === 'error' ? p.message : '', re);
  }
});
