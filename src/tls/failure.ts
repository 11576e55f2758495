// Why a handshake failed, in the few buckets the server's figures count: decided where the
// handshake fails and carried with its error, never read back from the log line. Pure.

export const FAILURE_REASONS = ['timeout', 'client gone', 'protocol', 'no shared cipher/version', 'certificate required', 'other'] as const;

export type FailureReason = (typeof FAILURE_REASONS)[number];

/** A handshake that failed: the message is its log line, the reason its bucket. */
export class HandshakeError extends Error {
  constructor(
    message: string,
    readonly reason: FailureReason,
  ) {
    super(message);
  }
}

/** The bucket of whatever a handshake rejected with; 'other' for what no failure site named. */
export function failureOf(e: unknown): FailureReason {
  return e instanceof HandshakeError ? e.reason : 'other';
}

/**
 * OpenSSL's reasons when client and server have no version, cipher, group or signature in
 * common, as the words of Node's `ERR_SSL_…` codes (OpenSSL's reason, upper case).
 */
const NO_SHARED = [
  'NO_SHARED_CIPHER', 'UNSUPPORTED_PROTOCOL', 'VERSION_TOO_LOW', 'WRONG_VERSION_NUMBER', 'NO_SUITABLE_SIGNATURE', 'NO_SUITABLE_KEY_SHARE',
  'NO_SUITABLE_DIGEST', 'NO_SHARED_GROUP', 'NO_SHARED_SIGNATURE', 'INAPPROPRIATE_FALLBACK', 'NO_CIPHER',
];
/** Not TLS, an alert from the client, a malformed record. */
const PROTOCOL = ['ALERT_', 'UNEXPECTED_MESSAGE', 'DECODE_ERROR', 'BAD_RECORD', 'RECORD_LAYER', 'PACKET_LENGTH', 'HTTP_REQUEST', 'HTTPS_PROXY', 'UNKNOWN_PROTOCOL'];

/**
 * The bucket of an error the TLS socket or the client stream raised during the handshake:
 * Node's code for it (`ERR_SSL_` and OpenSSL's reason, or an errno code).
 */
export function errorReason(e: Error): FailureReason {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'client gone';
  if (typeof code !== 'string' || !code.startsWith('ERR_SSL_')) return 'other';
  // Each word matched from its start: `_` before every word of the reason.
  const has = (w: string): boolean => `_${code.slice('ERR_SSL_'.length)}`.includes(`_${w}`);
  if (has('CERTIFICATE_REQUIRED') || has('PEER_DID_NOT_RETURN_A_CERTIFICATE')) return 'certificate required';
  if (NO_SHARED.some(has)) return 'no shared cipher/version';
  if (PROTOCOL.some(has)) return 'protocol';
  return 'other';
}
