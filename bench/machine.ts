// The machine line that heads every table, and ports nobody else uses.
import { spawnSync } from 'node:child_process';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { isListening } from './servers';

const GiB = 1024 * 1024 * 1024;

function output(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`;
}

/** The hardware, the kernel, the versions of what the rows run, and the load now. */
export function machine(rows: readonly { name: string; missing?: string }[]): string {
  const runs = (name: string): boolean => rows.some((r) => r.missing === undefined && r.name.includes(name));
  const stunnel = runs('stunnel') ? `, stunnel ${/stunnel (\S+)/.exec(output('stunnel4', ['-version']))?.[1] ?? '?'}` : '';
  const hitch = runs('hitch') ? `, hitch ${/hitch (\S+)/.exec(output('hitch', ['--version']))?.[1] ?? '?'}` : '';
  // The node the servers run: the first on PATH, as their `#!/usr/bin/env node` finds it.
  const [version, openssl] = output('node', ['-p', 'process.version + " " + process.versions.openssl']).trim().split(' ');
  const client = version === process.version ? '' : ` (the bench's client: Node ${process.version})`;
  const model = cpus()[0]?.model.trim() ?? '?';
  return (
    `machine: ${model}, ${cpus().length} cores, ${Math.round(totalmem() / GiB)} GiB, Linux ${release()}; ` +
    `Node ${version ?? '?'}, OpenSSL ${openssl ?? '?'}${client}${stunnel}${hitch}; load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`
  );
}

/** The first of 20 ports below the ephemeral range that nothing listens on. */
export function portBase(): number {
  for (let i = 0; i < 50; i++) {
    const base = 20000 + ((process.pid + i * 97) % 600) * 20;
    if (!Array.from({ length: 20 }, (_, k) => base + k).some(isListening)) return base;
  }
  throw new Error('no 20 free ports between 20000 and 32000');
}
