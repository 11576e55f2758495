// Every file the TLS policy names, read and checked in one place: at the helper's start,
// and at the server's (which a reload may call again). Throws a CredentialsError whose
// message is the one line to log.
import { CredentialsError, readCredentials, type Credentials } from './credentials';
import type { TlsConfig } from './config';

export { CredentialsError } from './credentials';

export function loadCredentials(tls: TlsConfig): Credentials {
  const creds = readCredentials(tls);
  if (tls.customAlgorithms) {
    // Loaded only when needed: it loads OpenSSL, a few milliseconds before the helper's app.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const refused = (require('./algorithm-check') as typeof import('./algorithm-check')).checkAlgorithms(tls, creds);
    if (refused !== undefined) throw new CredentialsError(refused);
  }
  return creds;
}
