import { randomBytes } from 'node:crypto';

/**
 * A boot id that orders restarts of one node: wall-clock ms at start in the high 48 bits,
 * 16 random bits below (two starts in the same millisecond still differ). A restarted node
 * has a higher incarnation than before as long as its clock did not go back.
 */
export function newIncarnation(nowMs: number = Date.now()): bigint {
  return (BigInt(Math.floor(nowMs)) << 16n) | BigInt(randomBytes(2).readUInt16BE(0));
}
