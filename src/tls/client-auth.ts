// The verdict on the client's certificate, in mod_ssl's SSL_CLIENT_VERIFY terms. Pure.
import type { ClientCertMode } from './config';

/** OpenSSL's X509_verify_cert_error_string for the codes Node reports, as mod_ssl shows them. */
const REASONS: Record<string, string> = {
  UNABLE_TO_GET_ISSUER_CERT: 'unable to get issuer certificate',
  UNABLE_TO_GET_CRL: 'unable to get certificate CRL',
  CERT_SIGNATURE_FAILURE: 'certificate signature failure',
  CRL_SIGNATURE_FAILURE: 'CRL signature failure',
  CERT_NOT_YET_VALID: 'certificate is not yet valid',
  CERT_HAS_EXPIRED: 'certificate has expired',
  CRL_NOT_YET_VALID: 'CRL is not yet valid',
  CRL_HAS_EXPIRED: 'CRL has expired',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed certificate',
  SELF_SIGNED_CERT_IN_CHAIN: 'self-signed certificate in certificate chain',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'unable to get local issuer certificate',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'unable to verify the first certificate',
  CERT_CHAIN_TOO_LONG: 'certificate chain too long',
  CERT_REVOKED: 'certificate revoked',
  INVALID_CA: 'invalid CA certificate',
  PATH_LENGTH_EXCEEDED: 'path length constraint exceeded',
  INVALID_PURPOSE: 'unsupported certificate purpose',
  CERT_UNTRUSTED: 'certificate not trusted',
  CERT_REJECTED: 'certificate rejected',
};

export function reasonText(code: string): string {
  return REASONS[code] ?? code.toLowerCase().replace(/_/g, ' ');
}

export interface Verdict {
  /** SSL_CLIENT_VERIFY: NONE, SUCCESS or FAILED:reason. */
  verify: string;
  /** false: the connection ends before any application data. */
  accept: boolean;
}

/**
 * @param chainLength certificates from the client's leaf to the trust anchor, both counted
 * @param error Node's authorizationError code, when OpenSSL's verification failed
 */
export function clientVerdict(
  mode: ClientCertMode,
  hasCert: boolean,
  error: string | undefined,
  chainLength: number,
  verifyDepth: number | undefined,
): Verdict {
  if (!hasCert) return { verify: 'NONE', accept: mode !== 'require' };
  let failure = error === undefined ? undefined : reasonText(error);
  // VERIFYDEPTH counts the intermediates between the leaf and the anchor, as OpenSSL's does.
  if (failure === undefined && verifyDepth !== undefined && chainLength - 2 > verifyDepth) {
    failure = reasonText('CERT_CHAIN_TOO_LONG');
  }
  if (failure === undefined) return { verify: 'SUCCESS', accept: true };
  // -Y passes an unverified certificate on for the app to judge (a pinned hash, say).
  return { verify: `FAILED:${failure}`, accept: mode !== 'require' };
}
