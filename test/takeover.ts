// A restart under load, for the lifecycle tests: clients connecting in a steady stream,
// each running a short plaintext session, while an old ucspi-tls-server drains and a new
// one takes over the port. Used in-process and by apps/reuse-port-takeover.ts.
import { connect } from 'node:net';
import { sleep } from './helpers';

/** A light app (dash, no report files): many sessions a second on a shared machine. */
export const QUICK_APP = ['/bin/sh', '-c', 'printf "220 takeover\\r\\n"; while IFS= read -r l; do case "$l" in QUIT*) printf "221 bye\\r\\n"; exit 0;; *) printf "250 ok\\r\\n";; esac; done'];

/** What one connection attempt got: the whole session, or where and how it failed. */
export type Outcome = { ok: true } | { ok: false; why: string };

/** Banner, EHLO, QUIT, then the server's EOF: every byte the app sends, in order. */
export function quickSession(port: number, ms = 20000): Promise<Outcome> {
  return new Promise((resolve) => {
    const sock = connect({ port, host: '127.0.0.1' });
    let got = '';
    let step = 0;
    const done = (o: Outcome): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => done({ ok: false, why: `no answer after ${ms} ms: had ${JSON.stringify(got)}` }), ms);
    sock.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (step === 0 && got === '220 takeover\r\n') {
        step = 1;
        sock.write('EHLO client.example\r\n');
      } else if (step === 1 && got === '220 takeover\r\n250 ok\r\n') {
        step = 2;
        sock.write('QUIT\r\n');
      }
    });
    sock.on('end', () => done(step === 2 && got === '220 takeover\r\n250 ok\r\n221 bye\r\n' ? { ok: true } : { ok: false, why: `closed after ${JSON.stringify(got)}` }));
    sock.on('error', (e: NodeJS.ErrnoException) => done({ ok: false, why: `${e.code ?? e.message} after ${JSON.stringify(got)}` }));
  });
}

/** A session started every `everyMs` for `forMs`; resolves with every outcome once all are over. */
export async function steadyStream(port: number, everyMs: number, forMs: number): Promise<Outcome[]> {
  const runs: Array<Promise<Outcome>> = [];
  const until = performance.now() + forMs;
  while (performance.now() < until) {
    runs.push(quickSession(port));
    await sleep(everyMs);
  }
  return Promise.all(runs);
}

/** The failures, counted by how they failed: what a test reports when one is lost. */
export function failures(outcomes: Outcome[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const o of outcomes) if (!o.ok) out[o.why] = (out[o.why] ?? 0) + 1;
  return out;
}
