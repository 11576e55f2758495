// The secure context, built from credentials read earlier.
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Credentials } from './credentials';
import type { Config } from './options';

export function buildContext(creds: Credentials, c: Config): SecureContext {
  return createSecureContext({
    cert: creds.cert,
    key: creds.key,
    minVersion: 'TLSv1.2',
    ...(c.ciphers !== undefined ? { ciphers: c.ciphers } : {}),
    ...(creds.dhparam !== undefined ? { dhparam: creds.dhparam } : {}),
  });
}
