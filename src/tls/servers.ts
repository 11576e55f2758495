// One tls.Server per server name (identity), never listening: the helper hands it the one
// client connection. A Server rather than a bare TLSSocket because Node offers OCSP
// stapling, ticket keys and the client certificate verdict only through it. The name's
// certificates (one per key type) all go into its one context: OpenSSL picks the one the
// client can use, from everything the client offered (suites, signature algorithms, groups).
import { constants, createHash } from 'node:crypto';
import { createServer, type Server, type TlsOptions } from 'node:tls';
import type { Credentials, IdentityCredentials } from './credentials';
import type { TlsConfig } from './config';
import { defaultGroups } from './groups';
import { acceptPreviousTicketKey } from './ticket-rotation';

export function serverOptions(identity: IdentityCredentials, creds: Credentials, c: TlsConfig, contextId: string): TlsOptions {
  const o: TlsOptions = {
    cert: identity.pairs.map((p) => p.cert),
    key: identity.pairs.map((p) => p.key),
    minVersion: c.minVersion,
    maxVersion: c.maxVersion,
    // Node takes the TLS 1.3 suites in the same string and sorts them out.
    ciphers: `${c.ciphers}:${c.cipherSuites}`,
    ecdhCurve: c.groups ?? defaultGroups(),
    dhparam: creds.dhparam ?? 'auto',
    // The client picks among what we allow, as Mozilla's profile has it.
    honorCipherOrder: false,
    // Our own timer covers the whole handshake, from before the ClientHello.
    handshakeTimeout: 0,
    // A client may not renegotiate (TLS 1.2): OpenSSL answers no_renegotiation, so a client
    // cannot make the helper run handshake after handshake, and the variables the app got stay true.
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
    // A ticket from one policy must not resume a session under another.
    sessionIdContext: createHash('sha256').update(contextId).digest('hex').slice(0, 32),
    // Without a `ca`, Node parses its whole bundled root store into every context (about
    // 20 ms and some MiB per connection). A server needs no roots: its chain comes from
    // CERTFILE, and client certificates are checked against CAFILE/CADIR alone.
    ca: [],
  };
  if (c.clientCert !== 'none') {
    o.requestCert = true;
    // Required: OpenSSL refuses a missing certificate with its own alert, Node drops one
    // that fails verification. Optional: the verdict is ours (see client-auth).
    o.rejectUnauthorized = c.clientCert === 'require';
    if (creds.ca !== undefined) o.ca = creds.ca;
    if (creds.crl !== undefined) o.crl = creds.crl;
  }
  if (creds.ticketKeys !== undefined) o.ticketKeys = creds.ticketKeys;
  if (c.alpn !== undefined) o.ALPNProtocols = c.alpn;
  return o;
}

/** Builds each identity's server once, when first needed. */
export class ServerCache {
  private readonly built = new Map<IdentityCredentials, Server>();

  constructor(
    private readonly creds: Credentials,
    private readonly config: TlsConfig,
  ) {}

  get(identity: IdentityCredentials): Server {
    let s = this.built.get(identity);
    if (s === undefined) {
      const id = `${identity.name ?? ''}\0${this.config.clientCert}\0${this.config.caFile ?? ''}\0${this.config.caDir ?? ''}`;
      s = createServer(serverOptions(identity, this.creds, this.config, id));
      // Node asks for the response before OpenSSL picks the certificate, so a name with
      // OCSP has a single pair (see credentials).
      const { ticketKeys, previousTicketKeys } = this.creds;
      if (ticketKeys !== undefined && previousTicketKeys !== undefined && !ticketKeys.equals(previousTicketKeys)) {
        acceptPreviousTicketKey(s, ticketKeys, previousTicketKeys);
      }
      const ocsp = identity.pairs[0]?.ocsp;
      if (ocsp !== undefined) s.on('OCSPRequest', (_cert, _issuer, done: (e: Error | null, r?: Buffer) => void) => done(null, ocsp));
      this.built.set(identity, s);
    }
    return s;
  }
}
