// SO_REUSEPORT through net.Server#listen({ reusePort }): added in Node.js 23.1.0 and
// backported to 22.12.0 (nodejs/node#55408). Older versions ignore the option and the
// second server on a port fails with EADDRINUSE, so the server refuses it before listening. Pure.

export const REUSE_PORT_NEEDS = 'Node.js 22.12 or later';

/** Why `--reuse-port` cannot work on this Node.js version (`process.versions.node`), or undefined. */
export function reusePortRefusal(nodeVersion: string): string | undefined {
  const [major = 0, minor = 0] = nodeVersion.split('.').map(Number);
  const ok = major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
  return ok ? undefined : `--reuse-port needs ${REUSE_PORT_NEEDS} (SO_REUSEPORT); this is Node.js ${nodeVersion}: use a systemd socket instead`;
}
