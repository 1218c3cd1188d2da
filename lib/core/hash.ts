/**
 * Cheap 32-bit hashing for the rendezvous tie-break. Not cryptographic on
 * purpose: an election at 4,096 VIPs × 32 nodes evaluates it ~130,000 times,
 * so each string is hashed once (FNV-1a) and pairs are combined with integer
 * mixing only. Every node computes the same numbers, which is all it needs.
 */

/** FNV-1a over the UTF-16 code units of `text`, as an unsigned 32-bit integer. */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Rendezvous (highest-random-weight) score of a (VIP, node) pair from their
 * FNV-1a hashes: the participant with the highest score wins a tie. Uses the
 * MurmurHash3 finaliser so that similar names still spread evenly.
 */
export function rendezvousScore(vipHash: number, nodeHash: number): number {
  let h = (vipHash ^ Math.imul(nodeHash, 0x9e3779b1)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
