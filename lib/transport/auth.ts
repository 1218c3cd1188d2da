import { createHmac, timingSafeEqual } from 'node:crypto';
import { codedError, ErrorCodes } from '../errors';

/** Length of the HMAC-SHA256 tag that ends every packet. */
export const MAC_BYTES = 32;

/** Shortest cluster secret accepted, in bytes. */
export const MIN_SECRET_BYTES = 16;

/**
 * Signs and verifies packets with HMAC-SHA256 over the whole packet (header and
 * body); the tag is appended as the last 32 bytes.
 */
export class PacketAuthenticator {
  private readonly key: Buffer;

  /** @throws Error with code `ESECRET` when the secret is missing or shorter than 16 bytes. */
  constructor(secret: Buffer | string | undefined) {
    const key = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
    if (!key || !Buffer.isBuffer(key) || key.length < MIN_SECRET_BYTES) {
      throw codedError(
        ErrorCodes.SECRET,
        `mta-vip membership needs a cluster secret of at least ${MIN_SECRET_BYTES} bytes ` +
          `(got ${key && Buffer.isBuffer(key) ? key.length : 'none'}): every node must share it, e.g. 32 random bytes`,
      );
    }
    this.key = Buffer.from(key);
  }

  /** Returns the tag for `unsigned` (everything except the tag). */
  tag(unsigned: Buffer): Buffer {
    return createHmac('sha256', this.key).update(unsigned).digest();
  }

  /** Writes the tag into the last 32 bytes of `packet`, covering all bytes before it. */
  sign(packet: Buffer): void {
    const end = packet.length - MAC_BYTES;
    this.tag(packet.subarray(0, end)).copy(packet, end);
  }

  /** True when the last 32 bytes are the tag of the rest; constant time in the tag comparison. */
  verify(packet: Buffer): boolean {
    if (packet.length <= MAC_BYTES) return false;
    const end = packet.length - MAC_BYTES;
    const expected = this.tag(packet.subarray(0, end));
    return timingSafeEqual(expected, packet.subarray(end));
  }
}
