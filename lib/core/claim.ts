/**
 * Claims on a VIP and their epochs (DESIGN.md section 5).
 *
 * Every change of holder carries an epoch, per VIP and strictly increasing
 * across the cluster, so a stale holder is recognised at once after a merge.
 * When two nodes hold the same VIP their views may differ, so the clash is
 * settled by an order that needs no agreement on the view.
 */
import type { ClusterView } from './view';

export interface Claim {
  node: string;
  /** Epoch the node acquired the VIP with. */
  epoch: number;
  /** The claimant's own config names it as the VIP's preferred node. */
  preferred: boolean;
}

/**
 * Orders two claims on the same VIP: negative when `a` is better. Better is the
 * higher epoch, then the preferred node, then the lower node name.
 */
export function compareClaims(a: Claim, b: Claim): number {
  if (a.epoch !== b.epoch) return b.epoch - a.epoch;
  if (a.preferred !== b.preferred) return a.preferred ? -1 : 1;
  if (a.node === b.node) return 0;
  return a.node < b.node ? -1 : 1;
}

/** The better of two claims on the same VIP; a holder that sees a better claim than its own releases. */
export function betterClaim(a: Claim, b: Claim): Claim {
  return compareClaims(a, b) <= 0 ? a : b;
}

/** Highest epoch any node in the view (live or dead) advertises for `ip`; 0 when none. */
export function maxAdvertisedEpoch(view: ClusterView, ip: string): number {
  let max = 0;
  for (const n of view.nodes) {
    const epoch = n.holding.get(ip);
    if (epoch !== undefined && epoch > max) max = epoch;
  }
  return max;
}

/**
 * The epoch a node acquiring `ip` takes: one more than anything advertised for
 * it and than the last epoch this node knew (which survives the holder's death).
 */
export function nextEpoch(view: ClusterView, ip: string, lastKnown = 0): number {
  return Math.max(maxAdvertisedEpoch(view, ip), lastKnown) + 1;
}
