/**
 * What this node must do, given the election: the safe order of address
 * changes (DESIGN.md section 5).
 *
 * - Releases come before acquires, followers released before their leader and
 *   acquired after it.
 * - A node acquires a VIP only when it is the computed owner and no other live
 *   node still advertises holding it (the holder releases first; the next view
 *   lets this node acquire).
 * - A holder that is not the computed owner releases at once; when two live
 *   nodes advertise the same VIP the one that is not the owner releases.
 * - BROKEN VIPs are released by whoever holds them.
 */
import type { Assignment, VipOutcome } from './elect';
import type { ClusterView } from './view';

export type ReleaseReason =
  /** Another node is the computed owner. */
  | 'not-owner'
  /** The VIP is BROKEN: nobody manages it. */
  | 'broken'
  /** Quorum is required and this side lacks it. */
  | 'no-quorum'
  /** No node can own it (this node is unhealthy for it, say). */
  | 'unowned'
  /** No live node declares it any more (config changed). */
  | 'not-declared';

export type Action =
  | { type: 'release'; ip: string; reason: ReleaseReason; detail: string }
  | { type: 'acquire'; ip: string; epoch: number };

function releaseReason(outcome: VipOutcome | undefined): { reason: ReleaseReason; detail: string } {
  if (!outcome) return { reason: 'not-declared', detail: 'no node declares this VIP any more' };
  if (outcome.rule === 'broken') return { reason: 'broken', detail: outcome.flags.broken?.message ?? 'BROKEN' };
  if (outcome.rule === 'no-quorum') return { reason: 'no-quorum', detail: 'this side of the cluster has no quorum' };
  if (outcome.owner === null) return { reason: 'unowned', detail: `no eligible owner (${outcome.rule})` };
  return { reason: 'not-owner', detail: `${outcome.owner} is the owner (${outcome.rule})` };
}

/**
 * The actions `self` must take. `lastKnownEpochs` (ip → highest epoch this node
 * ever saw) keeps epochs increasing when the previous holder's advertisement
 * is gone.
 */
export function plan(self: string, view: ClusterView, assignment: Assignment, lastKnownEpochs?: ReadonlyMap<string, number>): Action[] {
  const me = view.nodes.find((n) => n.node === self);
  const held = me ? me.holding : new Map<string, number>();
  const releases: Array<{ action: Action; follower: boolean }> = [];
  for (const ip of held.keys()) {
    const outcome = assignment.vips.get(ip);
    if (outcome && outcome.owner === self) continue;
    const { reason, detail } = releaseReason(outcome);
    releases.push({ action: { type: 'release', ip, reason, detail }, follower: outcome?.follows != null });
  }
  // Followers first: a follower's listeners never outlive the leader's address here.
  releases.sort((a, b) => Number(b.follower) - Number(a.follower));

  const heldElsewhere = new Set<string>();
  for (const n of view.nodes) {
    if (n.live && n.node !== self) for (const ip of n.holding.keys()) heldElsewhere.add(ip);
  }
  const leaders: Action[] = [];
  const followers: Action[] = [];
  for (const outcome of assignment.vips.values()) {
    if (outcome.owner !== self || held.has(outcome.ip) || heldElsewhere.has(outcome.ip)) continue;
    const epoch = Math.max(outcome.maxEpoch, lastKnownEpochs?.get(outcome.ip) ?? 0) + 1;
    (outcome.follows === null ? leaders : followers).push({ type: 'acquire', ip: outcome.ip, epoch });
  }
  return [...releases.map((r) => r.action), ...leaders, ...followers];
}
