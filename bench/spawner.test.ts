// The spawners that bench/spawn.ts compares (make bench builds the C one first): each answers
// every request byte with the exit status of the start it made, and ends at EOF.
import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './servers';

function answers(argv: string[], requests: number): Promise<{ out: Buffer; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ out: Buffer.concat(chunks), code }));
    child.stdin.end('x'.repeat(requests));
  });
}

const spawners: [string, string[]][] = [
  ['C, posix_spawn', [join(ROOT, 'build', 'bench', 'spawner')]],
  ['Node, small', [process.execPath, join(ROOT, 'bench', 'node-spawner'), '0']],
  ['Node, with a heap of 8 MiB', [process.execPath, join(ROOT, 'bench', 'node-spawner'), '8']],
];

for (const [name, argv] of spawners) {
  t.test(name, async (t) => {
    t.same(await answers([...argv, '/bin/true'], 3), { out: Buffer.from('r\0\0\0'), code: 0 }, 'ready, three starts of status 0, then the end');
    t.same(await answers([...argv, '/bin/sh', '-c', 'exit 7'], 2), { out: Buffer.from('r\x07\x07'), code: 0 }, "each start's own status");
    t.same(await answers([...argv, '/nonexistent/app'], 1), { out: Buffer.from('r\xff', 'latin1'), code: 0 }, 'could not start: 255');
  });
}
