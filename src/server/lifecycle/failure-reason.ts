// Why a handshake failed, in the few buckets the live figures count (see figures.ts),
// from the log line the session writes for it (src/tls/handshake.ts, src/tls/accept.ts). Pure.

export const FAILURE_REASONS = ['timeout', 'client gone', 'protocol', 'no shared cipher/version', 'certificate required', 'other'] as const;

export type FailureReason = (typeof FAILURE_REASONS)[number];

const RULES: Array<[RegExp, FailureReason]> = [
  // The server's own TLS policy, not the client: never a client's failure to count elsewhere.
  [/^handshake not started: TLS policy/, 'other'],
  [/^handshake timed out/, 'timeout'],
  [/^client certificate refused|peer did not return a certificate|certificate required/, 'certificate required'],
  [/client closed the connection|connection reset by client|client went away|the client connection is gone/, 'client gone'],
  // OpenSSL's reasons when client and server have no version, cipher, group or signature in common.
  [/no shared cipher|unsupported protocol|version too low|wrong version number|no suitable (signature|key share|digest)|no shared (group|signature)|inappropriate fallback|no cipher/i, 'no shared cipher/version'],
  // Not TLS at all, a refused server name, an alert from the client, a malformed record.
  [/not a TLS ClientHello|^handshake refused|alert|unexpected message|decode error|bad record|record layer|packet length|http request|https proxy|unknown protocol/i, 'protocol'],
];

export function failureReason(logLine: string): FailureReason {
  for (const [re, reason] of RULES) if (re.test(logLine)) return reason;
  return 'other';
}
