/**
 * Binary encodings of the small documents a node shares besides its declaration:
 *   holdings    repeated { family (1: 4|6) | address (4|16) | epoch (8, u64 ≤ 2^53-1) }
 *   neighbours  repeated { family (1: 4|6) | address (4|16) | MAC (6) }
 *   moves       repeated { family (1: 4|6) | address (4|16) | node length (1: 1..64)
 *                          | node (UTF-8) | seq (6, u48) }, at most 64 entries
 * Entries are sorted by address so one content has one encoding (and one digest).
 * Decoders return null on any inconsistency instead of throwing.
 */
import { bytesToIp, canonicalIp, ipToBytes } from './address';
import { MAX_NAME_BYTES } from './codec';

export interface Neighbour {
  address: string;
  mac: string;
}

/** An operator move of one VIP: the node it should go to, and the issuer's sequence (newer wins). */
export interface Move {
  node: string;
  seq: number;
}

/** Most moves one node announces (moves are rare operator commands, not state). */
export const MAX_MOVES = 64;
/** Largest sequence of a move: it travels as an unsigned 48-bit integer. */
export const MAX_MOVE_SEQ = 2 ** 48 - 1;

function entryKey(address: string): Buffer {
  const bytes = ipToBytes(address);
  return Buffer.concat([Buffer.from([bytes.length === 4 ? 4 : 6]), bytes]);
}

function sortByKey<T>(entries: Array<{ key: Buffer; value: T }>): Array<{ key: Buffer; value: T }> {
  return entries.sort((a, b) => Buffer.compare(a.key, b.key));
}

/** Encodes VIP → epoch. @throws on a non-IP key or an epoch that is not a safe non-negative integer. */
export function encodeHoldings(holdings: ReadonlyMap<string, number>): Buffer {
  const entries = sortByKey(
    [...holdings].map(([ip, epoch]) => {
      if (!Number.isSafeInteger(epoch) || epoch < 0) throw new Error(`epoch of ${ip} must be a non-negative safe integer`);
      return { key: entryKey(ip), value: epoch };
    }),
  );
  const parts: Buffer[] = [];
  for (const { key, value } of entries) {
    const epoch = Buffer.alloc(8);
    epoch.writeBigUInt64BE(BigInt(value));
    parts.push(key, epoch);
  }
  return Buffer.concat(parts);
}

export function decodeHoldings(bytes: Buffer): Map<string, number> | null {
  const out = new Map<string, number>();
  let at = 0;
  while (at < bytes.length) {
    const address = readAddress(bytes, at);
    if (!address) return null;
    at = address.next;
    if (at + 8 > bytes.length) return null;
    const epoch = bytes.readBigUInt64BE(at);
    at += 8;
    if (epoch > BigInt(Number.MAX_SAFE_INTEGER) || out.has(address.ip)) return null;
    out.set(address.ip, Number(epoch));
  }
  return out;
}

/**
 * Encodes at most `max` neighbours (entries whose address or MAC does not parse are skipped).
 * @returns the bytes and how many valid entries were left out by the cap.
 */
export function encodeNeighbours(neighbours: readonly Neighbour[], max: number): { bytes: Buffer; truncated: number } {
  const unique = new Map<string, { key: Buffer; value: Buffer }>();
  for (const { address, mac } of neighbours) {
    const ip = canonicalIp(address);
    const macBytes = parseMac(mac);
    if (ip === null || macBytes === null || unique.has(ip)) continue;
    unique.set(ip, { key: entryKey(ip), value: macBytes });
  }
  const sorted = sortByKey([...unique.values()]);
  const kept = sorted.slice(0, max);
  return { bytes: Buffer.concat(kept.flatMap(({ key, value }) => [key, value])), truncated: sorted.length - kept.length };
}

export function decodeNeighbours(bytes: Buffer): Neighbour[] | null {
  const out: Neighbour[] = [];
  let at = 0;
  while (at < bytes.length) {
    const address = readAddress(bytes, at);
    if (!address) return null;
    at = address.next;
    if (at + 6 > bytes.length) return null;
    out.push({ address: address.ip, mac: formatMac(bytes.subarray(at, at + 6)) });
    at += 6;
  }
  return out;
}

/**
 * Encodes VIP → move. One content has one encoding whatever the map's order or the addresses'
 * spelling (entries sorted by address bytes).
 * @throws on a non-IP key (or two spellings of one address), an empty or longer than 64-byte
 * node name, a sequence that is not an integer in 0..2^48-1, or more than MAX_MOVES entries.
 */
export function encodeMoves(moves: ReadonlyMap<string, Move>): Buffer {
  if (moves.size > MAX_MOVES) throw new Error(`mta-vip membership: at most ${MAX_MOVES} moves (got ${moves.size})`);
  const unique = new Map<string, { key: Buffer; value: Buffer }>();
  for (const [address, move] of moves) {
    const ip = canonicalIp(address);
    if (ip === null) throw new Error(`mta-vip membership: move of "${address}": not an IP address`);
    if (unique.has(ip)) throw new Error(`mta-vip membership: two moves of ${ip}`);
    const node = Buffer.from(String(move.node), 'utf8');
    if (node.length < 1 || node.length > MAX_NAME_BYTES) throw new Error(`mta-vip membership: move of ${ip}: node name must be 1..${MAX_NAME_BYTES} bytes of UTF-8`);
    if (!Number.isInteger(move.seq) || move.seq < 0 || move.seq > MAX_MOVE_SEQ) throw new Error(`mta-vip membership: move of ${ip}: seq must be an integer in 0..2^48-1`);
    const value = Buffer.alloc(1 + node.length + 6);
    value.writeUInt8(node.length, 0);
    node.copy(value, 1);
    value.writeUIntBE(move.seq, 1 + node.length, 6);
    unique.set(ip, { key: entryKey(ip), value });
  }
  return Buffer.concat(sortByKey([...unique.values()]).flatMap(({ key, value }) => [key, value]));
}

/**
 * Decodes a moves document; null unless it is exactly what encodeMoves would produce for its
 * content: addresses strictly ascending, names of 1..64 bytes of valid UTF-8, at most MAX_MOVES.
 * Keys come back in canonical spelling.
 */
export function decodeMoves(bytes: Buffer): Map<string, Move> | null {
  const out = new Map<string, Move>();
  let previousKey: Buffer | null = null;
  let at = 0;
  while (at < bytes.length) {
    if (out.size === MAX_MOVES) return null;
    const address = readAddress(bytes, at);
    if (!address) return null;
    const key = bytes.subarray(at, address.next);
    if (previousKey !== null && Buffer.compare(previousKey, key) >= 0) return null;
    previousKey = key;
    at = address.next;
    const nodeLength = bytes[at];
    if (nodeLength === undefined || nodeLength < 1 || nodeLength > MAX_NAME_BYTES || at + 1 + nodeLength + 6 > bytes.length) return null;
    const raw = bytes.subarray(at + 1, at + 1 + nodeLength);
    const node = raw.toString('utf8');
    // Invalid UTF-8 would decode to U+FFFD: a name that does not re-encode to its bytes is refused.
    if (!Buffer.from(node, 'utf8').equals(raw)) return null;
    at += 1 + nodeLength;
    out.set(address.ip, { node, seq: bytes.readUIntBE(at, 6) });
    at += 6;
  }
  return out;
}

/** Largest encoded move entry (IPv6 + longest name + seq). */
export const MAX_MOVE_ENTRY_BYTES = 1 + 16 + 1 + MAX_NAME_BYTES + 6;

/** Largest encoded neighbour entry (IPv6 + MAC), to bound documents by entry count. */
export const MAX_NEIGHBOUR_ENTRY_BYTES = 1 + 16 + 6;
/** Largest encoded holdings entry (IPv6 + epoch). */
export const MAX_HOLDING_ENTRY_BYTES = 1 + 16 + 8;

function readAddress(bytes: Buffer, at: number): { ip: string; next: number } | null {
  const family = bytes[at];
  const length = family === 4 ? 4 : family === 6 ? 16 : 0;
  if (length === 0 || at + 1 + length > bytes.length) return null;
  const ip = bytesToIp(bytes.subarray(at + 1, at + 1 + length));
  return ip === null ? null : { ip, next: at + 1 + length };
}

function parseMac(mac: string): Buffer | null {
  const parts = mac.split(/[:-]/);
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{1,2}$/.test(p))) return null;
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

function formatMac(bytes: Buffer): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
}
