// After TICKETKEYFILE is rotated (a reload): tickets are made with the new key, and a ticket
// made with the previous key still resumes once, the client then getting a ticket under the
// new key (as nginx and HAProxy do with their lists of keys). Node takes a single ticket key,
// so this uses its context's ticket callback (see runtime/ticket-callback.ts): without it,
// the new key alone applies and older tickets mean a full handshake.
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:tls';
import { setTicketKeyCallback } from '../runtime/ticket-callback';

/** OpenSSL's answers: not ours (full handshake), good, good but issue a fresh ticket. */
const UNKNOWN = 0;
const GOOD = 1;
const RENEW = 2;

const PART = 16;

/** Node's ticket key layout: the name, the HMAC key, the AES key, 16 bytes each. */
function parts(key: Buffer): { name: Buffer; hmac: Buffer; aes: Buffer } {
  return { name: key.subarray(0, PART), hmac: key.subarray(PART, 2 * PART), aes: key.subarray(2 * PART, 3 * PART) };
}

/**
 * What the callback returns to Node: [answer, hmac key, aes key, name, iv]. Encrypting: the
 * current key, a fresh IV. Decrypting: the key the ticket names, if it is one of the two.
 * Pure but for the IV.
 */
export function ticketKeyAnswer(name: Buffer, iv: Buffer, enc: boolean, current: Buffer, previous: Buffer): [number, Buffer, Buffer, Buffer, Buffer] {
  const now = parts(current);
  if (enc) return [GOOD, now.hmac, now.aes, now.name, randomBytes(PART)];
  if (name.equals(now.name)) return [GOOD, now.hmac, now.aes, name, iv];
  const before = parts(previous);
  if (name.equals(before.name)) return [RENEW, before.hmac, before.aes, name, iv];
  // Node checks the keys' lengths even for a ticket it will not decrypt.
  return [UNKNOWN, now.hmac, now.aes, name, iv];
}

/** Accept tickets of the previous key too on this server; false when this Node cannot. */
export function acceptPreviousTicketKey(server: Server, current: Buffer, previous: Buffer): boolean {
  return setTicketKeyCallback(server, (name, iv, enc) => ticketKeyAnswer(name, iv, enc, current, previous));
}
