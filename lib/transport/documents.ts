/**
 * Binary encodings of the two small documents a node shares besides its declaration:
 *   holdings    repeated { family (1: 4|6) | address (4|16) | epoch (8, u64 ≤ 2^53-1) }
 *   neighbours  repeated { family (1: 4|6) | address (4|16) | MAC (6) }
 * Entries are sorted by address so one content has one encoding (and one digest).
 * Decoders return null on any inconsistency instead of throwing.
 */
import { bytesToIp, canonicalIp, ipToBytes } from './address';

export interface Neighbour {
  address: string;
  mac: string;
}

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
