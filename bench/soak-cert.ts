// `make soak`: the certificate renewed as ACME renews it: the same file name, a new serial,
// the same key (so the pair matches whenever a reload reads them), the new file renamed into place.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { renameSync } from 'node:fs';

/** Writes a new certificate for `key` to `cert`; returns its serial (hex, upper case). */
export function renew(cert: string, key: string): Promise<string> {
  // A positive serial with no leading zero byte, so every tool prints the same hex.
  const serial = `7${randomBytes(8).toString('hex').slice(1).toUpperCase()}`;
  const tmp = `${cert}.new`;
  return new Promise((res, rej) =>
    execFile(
      'openssl',
      ['req', '-new', '-x509', '-key', key, '-out', tmp, '-days', '30', '-subj', '/CN=bench.example.test', '-set_serial', `0x${serial}`],
      (e, _out, err) => {
        if (e !== null) return rej(new Error(`openssl req: ${err}`));
        renameSync(tmp, cert);
        res(serial);
      },
    ),
  );
}

/** The serial of the certificate in a PEM file, as openssl prints it. */
export function serialOf(cert: string): Promise<string> {
  return new Promise((res, rej) =>
    execFile('openssl', ['x509', '-in', cert, '-noout', '-serial'], (e, out, err) => (e !== null ? rej(new Error(`openssl x509: ${err}`)) : res(/serial=(\S+)/.exec(out)?.[1] ?? ''))),
  );
}
