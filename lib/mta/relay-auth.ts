// Credentials of the node-to-node relay. Every node can derive every node's
// password from the shared cluster secret, so no per-node secrets need to be
// distributed, and a password proves its holder knows the cluster secret.
//
//   key      = HKDF-SHA256(secret, salt = "", info = "mta-vip relay v1", 32 bytes)
//   password = base64url(HMAC-SHA256(key, node name))
//   user     = node name

import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

const RELAY_INFO = 'mta-vip relay v1';

/** The relay key derived from the cluster secret. */
export function deriveRelayKey(secret: string | Buffer): Buffer {
  if (secret.length === 0) throw new TypeError('the cluster secret must not be empty');
  return Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), RELAY_INFO, 32));
}

/** The relay password of `node` (the SMTP AUTH user is the node name itself). */
export function relayPassword(key: Buffer, node: string): string {
  return createHmac('sha256', key).update(node, 'utf8').digest('base64url');
}

/** SMTP AUTH credentials `node` presents when relaying to a peer. */
export function relayCredentials(key: Buffer, node: string): { user: string; pass: string } {
  return { user: node, pass: relayPassword(key, node) };
}

/** True when `password` is `user`'s relay password (constant-time comparison). */
export function checkRelayPassword(key: Buffer, user: string, password: string): boolean {
  const expected = Buffer.from(relayPassword(key, user));
  const given = Buffer.from(password);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
