// Every executable has a man page, built from its Markdown, and man(1) renders it.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './helpers';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>; man: string[] };
const mustShow: Record<string, string[]> = {
  'ucspi-tls-wrap': ['--implicit', '--require-client-cert', 'SSLCTLFD', 'EXIT STATUS', '98'],
  'ucspi-tls-client': ['--servername', '--insecure', 'SSL_SERVER_VERIFY', 'tcpclient', 'EXIT STATUS'],
  'ucspi-tls-server': ['--implicit', '--concurrency', 'TLS_UID', 'LISTEN_FDS', 'THE PROCESS MODEL', 'SIGNALS', 'EXIT STATUS'],
};

t.same(Object.keys(pkg.bin), Object.keys(mustShow), 'each executable is checked here');
for (const name of Object.keys(pkg.bin)) {
  t.test(`man -l man/${name}.1`, async (t) => {
    const r = spawnSync('man', ['-l', join(ROOT, 'man', `${name}.1`)], { encoding: 'utf8', env: { ...process.env, MANWIDTH: '100' } });
    t.equal(r.status, 0, r.stderr);
    const text = r.stdout.replace(/.\x08/g, '');
    t.match(text, new RegExp(`^NAME\\n\\s+${name} - `, 'm'));
    t.match(text, /^SYNOPSIS$/m);
    for (const word of mustShow[name]!) t.ok(text.includes(word), `shows ${word}`);
  });
}

t.test('man -l man/ucspi-tls.7: the protocol for app authors', async (t) => {
  const r = spawnSync('man', ['-l', join(ROOT, 'man', 'ucspi-tls.7')], { encoding: 'utf8', env: { ...process.env, MANWIDTH: '100' } });
  t.equal(r.status, 0, r.stderr);
  const text = r.stdout.replace(/.\x08/g, '');
  t.match(text, /^NAME\n\s+ucspi-tls - /m);
  for (const heading of ['THE FILE DESCRIPTORS', 'THE COMMANDS', 'THE REPLY', 'SUCCESS AND FAILURE', 'CLOSING']) {
    t.match(text, new RegExp(`^${heading}$`, 'm'), `has ${heading}`);
  }
  for (const word of ['SSLCTLFD', 'SSLREADFD', 'SSLWRITEFD', 'close_notify', 'CVE-2011-0411']) t.ok(text.includes(word), `shows ${word}`);
});

t.test('package.json names every page for npm, and every executable has one', async (t) => {
  const pages = [...Object.keys(pkg.bin).map((b) => `./man/${b}.1`), './man/ucspi-tls.7'];
  t.same([...pkg.man].sort(), pages.sort());
});
