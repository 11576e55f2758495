// Every executable has a man page, built from its Markdown, and man(1) renders it without
// a troff warning at the widths a terminal has.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_CIPHERS, DEFAULT_CIPHERSUITES } from '../src/tls/config';
import { ROOT } from './helpers';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>; man: string[] };
const mustShow: Record<string, string[]> = {
  'ucspi-tls-wrap': ['--implicit', '--require-client-cert', 'SSLCTLFD', 'EXIT STATUS', '98'],
  'ucspi-tls-client': ['--servername', '--insecure', 'SSL_SERVER_VERIFY', 'tcpclient', 'EXIT STATUS'],
  'ucspi-tls-server': ['--implicit', '--concurrency', 'TLS_UID', 'LISTEN_FDS', 'THE PROCESS MODEL', 'SIGNALS', 'EXIT STATUS'],
};
const PAGES = [...Object.keys(pkg.bin).map((b) => `${b}.1`), 'ucspi-tls.7'];
const WIDTHS = [60, 80, 100, 132];

/** The page as man(1) shows it at a width, without overstriking, and what troff said on stderr. */
function render(page: string, width = 100): { status: number | null; text: string; warnings: string } {
  const r = spawnSync('man', ['-l', join(ROOT, 'man', page)], {
    encoding: 'utf8',
    env: { ...process.env, MANWIDTH: String(width), MAN_KEEP_STDERR: '1' },
  });
  return { status: r.status, text: r.stdout.replace(/.\x08/g, ''), warnings: r.stderr };
}

t.same(Object.keys(pkg.bin), Object.keys(mustShow), 'each executable is checked here');
for (const name of Object.keys(pkg.bin)) {
  t.test(`man -l man/${name}.1`, async (t) => {
    const r = render(`${name}.1`);
    t.equal(r.status, 0, r.warnings);
    t.match(r.text, new RegExp(`^NAME\\n\\s+${name} - `, 'm'));
    t.match(r.text, /^SYNOPSIS$/m);
    for (const word of mustShow[name]!) t.ok(r.text.includes(word), `shows ${word}`);
  });
}

t.test('man -l man/ucspi-tls.7: the protocol for app authors', async (t) => {
  const r = render('ucspi-tls.7');
  t.equal(r.status, 0, r.warnings);
  t.match(r.text, /^NAME\n\s+ucspi-tls - /m);
  for (const heading of ['THE FILE DESCRIPTORS', 'THE COMMANDS', 'THE REPLY', 'SUCCESS AND FAILURE', 'CLOSING']) {
    t.match(r.text, new RegExp(`^${heading}$`, 'm'), `has ${heading}`);
  }
  for (const word of ['SSLCTLFD', 'SSLREADFD', 'SSLWRITEFD', 'close_notify', 'CVE-2011-0411']) t.ok(r.text.includes(word), `shows ${word}`);
});

for (const page of PAGES) {
  t.test(`${page}: no troff warning at ${WIDTHS.join(', ')} columns, nor from groff -ww`, async (t) => {
    for (const width of WIDTHS) t.equal(render(page, width).warnings, '', `man -l at ${width} columns: nothing on stderr`);
    // -ww: every warning groff has; -k: the page's UTF-8 through preconv, as man does it.
    const g = spawnSync('groff', ['-ww', '-k', '-man', '-Tutf8', '-z', join(ROOT, 'man', page)], { encoding: 'utf8' });
    t.equal(g.status, 0);
    t.equal(g.stderr, '', 'groff -ww: nothing on stderr');
  });
}

t.test('the default cipher lists in the page are the ones the helper uses', async (t) => {
  const text = render('ucspi-tls-wrap.1').text;
  const listAfter = (heading: RegExp): string => {
    const at = text.search(heading);
    t.ok(at >= 0, `the page has ${heading}`);
    const lines = text.slice(at).split('\n').slice(1);
    const names: string[] = [];
    for (const l of lines) {
      if (!/^\s+[A-Z0-9_-]+$/.test(l)) break;
      names.push(l.trim());
    }
    return names.join(':');
  };
  t.equal(listAfter(/The default CIPHERS,/), DEFAULT_CIPHERS);
  t.equal(listAfter(/The default CIPHERSUITES,/), DEFAULT_CIPHERSUITES);
});

t.test('package.json names every page for npm, and every executable has one', async (t) => {
  t.same([...pkg.man].sort(), PAGES.map((p) => `./man/${p}`).sort());
});
