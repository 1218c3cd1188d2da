/**
 * The election (DESIGN.md sections 3 and 4): a pure function from a cluster
 * view to the owner of every VIP, with the flags an operator must see.
 *
 * Every node with the same view computes the same assignment: nodes are
 * processed in name order, VIPs in address order, and ties are broken by a
 * rendezvous hash that depends only on names. Rules, per VIP:
 *   1. BROKEN: no owner.
 *   2. Operator override, while that node is a live, healthy participant.
 *   3. The single preferred node: at once when no healthy node holds the VIP,
 *      else once it has been live for holdDownMs (preempt hold-down).
 *   4. Stickiness: the current holder keeps it.
 *   5. The least-loaded participant (VIPs assigned in this election), ties by
 *      rendezvous hash. Rules 1-4 run over all VIPs first, so their load counts.
 *      A VIP kept by its holder only while its preferred node's hold-down runs
 *      counts towards the preferred node: observers may disagree on whether
 *      the hold-down is over (each measures "live since" itself), and must not
 *      disagree on loads because of it (each side then found the other less
 *      loaded for a VIP that needed an owner, and nobody took it).
 * With rebalance 'on-join', VIPs kept by stickiness (or just placed) then move
 * one at a time from their most loaded participant to one with at least two
 * fewer VIPs, until no such move is left: a joining node gets its share, and a
 * balanced cluster is left alone.
 * Followers take their leader's owner.
 *
 * Cost: nodes whose declarations have equal content form one group, and
 * declarations are compared per group, so the usual cluster (one config)
 * costs O(VIPs) for the flags plus O(VIPs × nodes) only where a choice among
 * participants is made (least-loaded, rebalance).
 */
import { compareClaims } from './claim';
import { DeclarationIndex, describeServices, indexDeclaration, ipTable, nameTable } from './declaration-index';
import { fnv1a, rendezvousScore } from './hash';
import { ClusterView, NodeView, hasQuorum } from './view';

export type Rule =
  | 'broken'
  | 'no-quorum'
  | 'no-participant'
  | 'override'
  | 'preferred'
  | 'sticky'
  | 'least-loaded'
  | 'rebalance'
  | 'follow';

/** Which nodes said what, so an operator can fix the config. */
export interface Evidence {
  kind: 'preference' | 'services' | 'binding-name' | 'binding-address' | 'follow';
  /** One sentence: what is wrong, its effect, and the fix. */
  message: string;
  /** One entry per live node involved, sorted by node. */
  claims: Array<{ node: string; value: string }>;
}

export interface VipFlags {
  /** Live participants name different preferred nodes: preference ignored, normal election. */
  conflict?: Evidence;
  /** Participants declare different services on the IP: reported only, normal election. */
  unsafe?: Evidence;
  /** Binding name differs across nodes, one binding name maps to several IPs, or followers disagree: nobody manages the VIP. */
  broken?: Evidence;
}

export interface VipOutcome {
  ip: string;
  /** The node that must hold the VIP, or null. */
  owner: string | null;
  /** The rule that decided (for null owners: why there is none). */
  rule: Rule;
  flags: VipFlags;
  /**
   * Live nodes declaring the VIP, sorted. Shared between outcomes with the
   * same participants and frozen: copy it before changing it.
   */
  participants: string[];
  /** The one preferred node named by live participants (null if none, or in conflict). */
  preferred: string | null;
  /** Highest epoch advertised for the VIP by any node in the view (0 if none). */
  maxEpoch: number;
  /** When the preferred node's hold-down ends, if it was passed over for it. */
  holdDownUntil: number | null;
  /** Leader VIP when this one is a follower. */
  follows: string | null;
  /** Followers of this VIP (they travel with it), sorted. */
  followers: string[];
}

export interface Assignment {
  /** Every VIP declared by any node of the view, in address order. */
  vips: ReadonlyMap<string, VipOutcome>;
  /** False when quorum is required and missing: nothing is assigned. */
  quorum: boolean;
  /** Earliest time a hold-down ends and the election should run again; null if none pending. */
  nextWakeup: number | null;
  /**
   * The load each live node was counted with: the VIPs (leaders only) assigned to it, and those
   * kept by their holder only while its hold-down as their preferred node runs (rule 5).
   */
  load: ReadonlyMap<string, number>;
}

export interface ElectOptions {
  /** Preempt hold-down: a preferred node takes its VIP after being live this long. */
  holdDownMs: number;
  /** When set, only a side with a strict majority of these nodes holds VIPs. */
  quorum?: { knownNodes: Iterable<string> } | null;
  /** Default 'never'. */
  rebalance?: 'never' | 'on-join';
}

/** How this node reports a VIP: owned here, standby (someone else owns it), or unowned. */
export function vipState(outcome: VipOutcome, self: string): 'owned' | 'standby' | 'unowned' {
  if (outcome.owner === null) return 'unowned';
  return outcome.owner === self ? 'owned' : 'standby';
}

const RULES: Rule[] = ['broken', 'no-quorum', 'no-participant', 'override', 'preferred', 'sticky', 'least-loaded', 'rebalance', 'follow'];
const R_BROKEN = 0;
const R_NO_QUORUM = 1;
const R_NO_PARTICIPANT = 2;
const R_OVERRIDE = 3;
const R_PREFERRED = 4;
const R_STICKY = 5;
const R_LEAST_LOADED = 6;
const R_REBALANCE = 7;
const R_FOLLOW = 8;
const R_UNDECIDED = 255;

const F_CONFLICT = 1;
const F_UNSAFE = 2;
const F_BROKEN_NAME = 4;
const F_BROKEN_ADDRESS = 8;
const F_BROKEN_FOLLOW = 16;
const F_BROKEN = F_BROKEN_NAME | F_BROKEN_ADDRESS | F_BROKEN_FOLLOW;

/** Bounds the rebalance passes; each pass is linear and a few always suffice. */
const MAX_REBALANCE_PASSES = 32;

/** What explain() needs to know about one VIP's decision. */
export interface ElectionTrace {
  /** Loads of the eligible participants when the least-loaded or rebalance rule decided. */
  loads: Map<string, number> | null;
  /** Eligible holders considered by stickiness. */
  holders: string[];
  /** Owner before a rebalance move. */
  rebalancedFrom: string | null;
}

interface Internal {
  assignment: Assignment;
  trace: ElectionTrace | null;
}

/** Computes the owner of every VIP in `view`. */
export function elect(view: ClusterView, options: ElectOptions): Assignment {
  return electWithTrace(view, options, null).assignment;
}

/** When the election should run again because a hold-down ends (null: not needed). */
export function nextWakeup(view: ClusterView, options: ElectOptions): number | null {
  return elect(view, options).nextWakeup;
}

/** elect(), also recording how `traceIp` was decided (for explain). */
export function electWithTrace(view: ClusterView, options: ElectOptions, traceIp: string | null): Internal {
  const nodes: NodeView[] = [...view.nodes].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  for (let i = 1; i < nodes.length; i++) {
    if ((nodes[i] as NodeView).node === (nodes[i - 1] as NodeView).node) throw new Error(`view lists node ${JSON.stringify((nodes[i] as NodeView).node)} twice`);
  }
  const nodeCount = nodes.length;
  const live = nodes.map((n) => n.live);
  const nodeHash = nodes.map((n) => fnv1a(n.node));
  const nodeByNameId = new Map<number, number>();
  nodes.forEach((n, i) => nodeByNameId.set(nameTable.id(n.node), i));

  // Groups: nodes whose declarations have equal content share one index, so
  // declarations are compared per group (usually one) instead of per node.
  const groupIndex: DeclarationIndex[] = [];
  const groupLive: number[][] = [];
  const groupOf = new Int32Array(nodeCount);
  const groupByIndex = new Map<DeclarationIndex, number>();
  for (let i = 0; i < nodeCount; i++) {
    const ix = indexDeclaration((nodes[i] as NodeView).declaration);
    let g = groupByIndex.get(ix);
    if (g === undefined) {
      g = groupIndex.length;
      groupByIndex.set(ix, g);
      groupIndex.push(ix);
      groupLive.push([]);
    }
    groupOf[i] = g;
    if (live[i]) (groupLive[g] as number[]).push(i);
  }
  const groupCount = groupIndex.length;
  const idCount = ipTable.texts.length;

  // Per VIP, the groups declaring it, in compressed rows (only groups with a
  // live member participate; any group makes the VIP known).
  const present = new Uint8Array(idCount);
  const rowStart = new Int32Array(idCount + 1);
  for (let g = 0; g < groupCount; g++) {
    const vips = (groupIndex[g] as DeclarationIndex).vip;
    const participating = (groupLive[g] as number[]).length > 0;
    for (let k = 0; k < vips.length; k++) {
      const id = vips[k] as number;
      present[id] = 1;
      if (participating) rowStart[id + 1] = (rowStart[id + 1] as number) + 1;
    }
  }
  for (let id = 0; id < idCount; id++) rowStart[id + 1] = (rowStart[id + 1] as number) + (rowStart[id] as number);
  const fill = rowStart.slice(0, idCount);
  const rowGroup = new Int32Array(rowStart[idCount] as number);
  const rowSlot = new Int32Array(rowStart[idCount] as number);
  for (let g = 0; g < groupCount; g++) {
    if ((groupLive[g] as number[]).length === 0) continue;
    const vips = (groupIndex[g] as DeclarationIndex).vip;
    for (let k = 0; k < vips.length; k++) {
      const id = vips[k] as number;
      const at = fill[id] as number;
      rowGroup[at] = g;
      rowSlot[at] = k;
      fill[id] = at + 1;
    }
  }
  let universeSize = 0;
  for (let id = 0; id < idCount; id++) universeSize += present[id] as number;
  const order = new Int32Array(universeSize);
  for (let id = 0, o = 0; id < idCount; id++) if (present[id]) order[o++] = id;
  ipTable.sortByAddress(order);

  // Health: 'all', a set of VIP ids, or null. A node that cannot serve a
  // follower cannot serve its leader either: they move together.
  const unhealthyAll = new Uint8Array(nodeCount);
  const unhealthy: Array<Set<number> | null> = new Array(nodeCount).fill(null);
  let anyUnhealthy = false;
  for (let i = 0; i < nodeCount; i++) {
    const u = (nodes[i] as NodeView).unhealthy;
    if (u === 'all') {
      unhealthyAll[i] = 1;
      anyUnhealthy = true;
    } else if (u.size > 0) {
      const set = new Set<number>();
      for (const ip of u) {
        const id = ipTable.ids.get(ip);
        if (id !== undefined) set.add(id);
      }
      const ix = groupIndex[groupOf[i] as number] as DeclarationIndex;
      for (let k = 0; k < ix.vip.length; k++) {
        if ((ix.follows[k] as number) >= 0 && set.has(ix.vip[k] as number)) set.add(ix.follows[k] as number);
      }
      unhealthy[i] = set;
      anyUnhealthy = true;
    }
  }
  const healthy = (i: number, id: number): boolean => {
    if (!anyUnhealthy) return true;
    if (unhealthyAll[i] === 1) return false;
    const set = unhealthy[i];
    return set === null || set === undefined || !set.has(id);
  };

  // Holders (live only) and the highest epoch anyone advertised.
  const holders: Array<number[] | undefined> = new Array(idCount);
  const maxEpoch = new Float64Array(idCount);
  for (let i = 0; i < nodeCount; i++) {
    for (const [ip, epoch] of (nodes[i] as NodeView).holding) {
      const id = ipTable.ids.get(ip);
      if (id === undefined || id >= idCount) continue;
      if (epoch > (maxEpoch[id] as number)) maxEpoch[id] = epoch;
      if (live[i]) {
        const list = holders[id];
        if (list) list.push(i);
        else holders[id] = [i];
      }
    }
  }

  // Flags: compare the participating declarations of each VIP.
  const flags = new Uint8Array(idCount);
  const preferredName = new Int32Array(idCount).fill(-1);
  const leaderOf = new Int32Array(idCount).fill(-1);
  const vipOfBinding = new Map<number, number>();
  const multiAddressBindings = new Set<number>();
  const noteBinding = (b: number, id: number): void => {
    const seen = vipOfBinding.get(b);
    if (seen === undefined) vipOfBinding.set(b, id);
    else if (seen !== id) multiAddressBindings.add(b);
  };
  for (let o = 0; o < universeSize; o++) {
    const id = order[o] as number;
    const start = rowStart[id] as number;
    const end = rowStart[id + 1] as number;
    if (start === end) continue;
    const first = groupIndex[rowGroup[start] as number] as DeclarationIndex;
    const firstSlot = rowSlot[start] as number;
    let binding = first.binding[firstSlot] as number;
    let preferred = first.preferred[firstSlot] as number;
    const services = first.services[firstSlot] as number;
    const follows = first.follows[firstSlot] as number;
    let bits = 0;
    for (let r = start + 1; r < end; r++) {
      const ix = groupIndex[rowGroup[r] as number] as DeclarationIndex;
      const k = rowSlot[r] as number;
      const b = ix.binding[k] as number;
      const pr = ix.preferred[k] as number;
      if (ix.services[k] !== services) bits |= F_UNSAFE;
      if (ix.follows[k] !== follows) bits |= F_BROKEN_FOLLOW;
      if (b >= 0 && b !== binding) {
        if (binding < 0) binding = b;
        else {
          bits |= F_BROKEN_NAME;
          noteBinding(b, id);
        }
      }
      if (pr >= 0 && pr !== preferred) {
        if (preferred < 0) preferred = pr;
        else bits |= F_CONFLICT;
      }
    }
    if (binding >= 0) noteBinding(binding, id);
    flags[id] = bits;
    preferredName[id] = bits & F_CONFLICT ? -1 : preferred;
    leaderOf[id] = bits & F_BROKEN_FOLLOW ? -1 : follows;
  }
  if (multiAddressBindings.size > 0) {
    for (let o = 0; o < universeSize; o++) {
      const id = order[o] as number;
      for (let r = rowStart[id] as number, end = rowStart[id + 1] as number; r < end; r++) {
        const b = (groupIndex[rowGroup[r] as number] as DeclarationIndex).binding[rowSlot[r] as number] as number;
        if (b >= 0 && multiAddressBindings.has(b)) flags[id] = (flags[id] as number) | F_BROKEN_ADDRESS;
      }
    }
  }

  const quorum = options.quorum ? hasQuorum(view, options.quorum.knownNodes) : true;
  const traceId = traceIp === null ? -1 : (ipTable.ids.get(traceIp) ?? -1);
  const trace: ElectionTrace | null = traceId >= 0 ? { loads: null, holders: [], rebalancedFrom: null } : null;
  const owner = new Int32Array(idCount).fill(-1);
  const rule = new Uint8Array(idCount).fill(R_UNDECIDED);
  const holdDownUntil = new Map<number, number>();
  const load = new Int32Array(nodeCount);
  /** Where each VIP's load is counted: its owner, or its preferred node in hold-down (rule 5). */
  const loadAt = new Int32Array(idCount).fill(-1);
  const participates = (i: number, id: number): boolean => live[i] === true && (groupIndex[groupOf[i] as number] as DeclarationIndex).slotOf.has(id);
  const overrides = view.overrides;

  // Pass 1: the rules that do not depend on load.
  for (let o = 0; o < universeSize; o++) {
    const id = order[o] as number;
    const bits = flags[id] as number;
    if (bits & F_BROKEN) {
      rule[id] = R_BROKEN;
      continue;
    }
    if ((leaderOf[id] as number) >= 0) continue; // followers are placed with their leader below
    if (!quorum) {
      rule[id] = R_NO_QUORUM;
      continue;
    }
    if (!hasEligible(id)) {
      rule[id] = R_NO_PARTICIPANT;
      continue;
    }
    if (overrides && overrides.size > 0) {
      const target = overrides.get(ipTable.texts[id] as string);
      const i = target === undefined ? undefined : nodeByNameId.get(nameTable.id(target));
      if (i !== undefined && participates(i, id) && healthy(i, id)) {
        assign(id, i, R_OVERRIDE);
        continue;
      }
    }
    const held = holders[id];
    const pref = preferredName[id] as number;
    let preferredInHoldDown = -1;
    if (pref >= 0) {
      const i = nodeByNameId.get(pref);
      if (i !== undefined && participates(i, id) && healthy(i, id)) {
        // The hold-down guards against preempting a working holder with a node
        // that may flap again; with no healthy holder there is nothing to preempt.
        const until = (nodes[i] as NodeView).liveSince + options.holdDownMs;
        const holderServes = held !== undefined && held.some((h) => participates(h, id) && healthy(h, id));
        if (until <= view.now || !holderServes || (held as number[]).includes(i)) {
          assign(id, i, R_PREFERRED);
          continue;
        }
        holdDownUntil.set(id, until);
        preferredInHoldDown = i;
      }
    }
    if (held !== undefined) {
      let best = -1;
      for (const i of held) {
        if (!participates(i, id) || !healthy(i, id)) continue;
        if (id === traceId) trace?.holders.push((nodes[i] as NodeView).node);
        if (best < 0 || compareHolders(nodes, id, i, best) < 0) best = i;
      }
      if (best >= 0) assign(id, best, R_STICKY, preferredInHoldDown >= 0 ? preferredInHoldDown : best);
    }
  }

  // Pass 2: least-loaded participant, ties by rendezvous hash, then name.
  for (let o = 0; o < universeSize; o++) {
    const id = order[o] as number;
    if (rule[id] !== R_UNDECIDED || (leaderOf[id] as number) >= 0) continue;
    if (id === traceId && trace) trace.loads = loadsOf(id);
    assign(id, leastLoaded(id, -1), R_LEAST_LOADED);
  }

  // Pass 3: graceful rebalance, one VIP at a time, only where it evens the load.
  if (options.rebalance === 'on-join' && quorum) {
    for (let pass = 0; pass < MAX_REBALANCE_PASSES; pass++) {
      let moved = false;
      for (let o = 0; o < universeSize; o++) {
        const id = order[o] as number;
        const r = rule[id];
        if (r !== R_STICKY && r !== R_LEAST_LOADED && r !== R_REBALANCE) continue;
        const from = owner[id] as number;
        // Going to its preferred node once the hold-down ends (and counted there): not moved.
        if (loadAt[id] !== from) continue;
        // Only the most loaded participant gives VIPs away, so a VIP never
        // moves a→c just for another b→a to follow: moves stay minimal.
        if ((load[from] as number) < mostLoaded(id)) continue;
        const to = leastLoaded(id, from);
        if (to < 0 || (load[to] as number) + 1 >= (load[from] as number)) continue;
        if (id === traceId && trace) {
          trace.loads = loadsOf(id);
          trace.rebalancedFrom ??= (nodes[from] as NodeView).node;
        }
        load[from] = (load[from] as number) - 1;
        assign(id, to, R_REBALANCE);
        moved = true;
      }
      if (!moved) break;
    }
  }

  // Followers: held by their leader's owner when that node declares them too.
  const followers = new Map<number, number[]>();
  for (let o = 0; o < universeSize; o++) {
    const id = order[o] as number;
    const leader = leaderOf[id] as number;
    if (leader < 0 || rule[id] === R_BROKEN) continue;
    const list = followers.get(leader);
    if (list) list.push(id);
    else followers.set(leader, [id]);
    const leaderOwner = leader < idCount ? (owner[leader] as number) : -1;
    rule[id] = R_FOLLOW;
    if (leaderOwner >= 0 && participates(leaderOwner, id)) owner[id] = leaderOwner;
  }

  // The outcomes. Participant lists are shared between VIPs with the same
  // participating groups (frozen, so nobody can change one through another).
  const participantLists = new Map<string, readonly string[]>();
  const noParticipants: readonly string[] = Object.freeze([]);
  const participantsOf = (id: number): readonly string[] => {
    const start = rowStart[id] as number;
    const end = rowStart[id + 1] as number;
    if (start === end) return noParticipants;
    let key = String(rowGroup[start]);
    for (let r = start + 1; r < end; r++) key += `,${rowGroup[r]}`;
    let list = participantLists.get(key);
    if (!list) {
      const members: number[] = [];
      for (let r = start; r < end; r++) members.push(...(groupLive[rowGroup[r] as number] as number[]));
      list = Object.freeze(members.sort((a, b) => a - b).map((i) => (nodes[i] as NodeView).node));
      participantLists.set(key, list);
    }
    return list;
  };
  const outcomes = new Map<string, VipOutcome>();
  let wakeup: number | null = null;
  for (let o = 0; o < universeSize; o++) {
    const id = order[o] as number;
    const ip = ipTable.texts[id] as string;
    const until = holdDownUntil.get(id) ?? null;
    if (until !== null && rule[id] !== R_BROKEN && (wakeup === null || until < wakeup)) wakeup = until;
    const bits = flags[id] as number;
    const leader = leaderOf[id] as number;
    const ownerIndex = owner[id] as number;
    const followerIds = followers.get(id);
    outcomes.set(ip, {
      ip,
      owner: ownerIndex === -1 ? null : (nodes[ownerIndex] as NodeView).node,
      rule: RULES[rule[id] as number] as Rule,
      flags: bits === 0 ? {} : evidenceOf(id, bits, nodes, participantRows(id), multiAddressBindings),
      participants: participantsOf(id) as string[],
      preferred: preferredName[id] === -1 ? null : (nameTable.texts[preferredName[id] as number] as string),
      maxEpoch: maxEpoch[id] as number,
      holdDownUntil: until,
      follows: leader >= 0 ? (ipTable.texts[leader] as string) : null,
      followers: followerIds ? followerIds.map((f) => ipTable.texts[f] as string) : [],
    });
  }
  const loads = new Map<string, number>();
  nodes.forEach((n, i) => {
    if (live[i]) loads.set(n.node, load[i] as number);
  });
  return { assignment: { vips: outcomes, quorum, nextWakeup: wakeup, load: loads }, trace };

  function assign(id: number, i: number, how: number, countAt = i): void {
    owner[id] = i;
    rule[id] = how;
    loadAt[id] = countAt;
    load[countAt] = (load[countAt] as number) + 1;
  }

  function hasEligible(id: number): boolean {
    for (let r = rowStart[id] as number, end = rowStart[id + 1] as number; r < end; r++) {
      for (const i of groupLive[rowGroup[r] as number] as number[]) if (healthy(i, id)) return true;
    }
    return false;
  }

  /**
   * The eligible participant of `id` with the least load (except `skip`),
   * ties by the higher rendezvous score, then the lower name; -1 if none.
   */
  function leastLoaded(id: number, skip: number): number {
    let best = -1;
    let bestLoad = 0;
    let bestScore = 0;
    const vipHash = ipTable.hashes[id] as number;
    // UNSAFE (participants declare different services): among the eligible, only those that
    // carry the most services are chosen, so clients find every service of the VIP where it is.
    const need = ((flags[id] as number) & F_UNSAFE) !== 0 ? mostServices(id, skip) : 0;
    for (let r = rowStart[id] as number, end = rowStart[id + 1] as number; r < end; r++) {
      if (((groupIndex[rowGroup[r] as number] as DeclarationIndex).serviceCount[rowSlot[r] as number] as number) < need) continue;
      for (const i of groupLive[rowGroup[r] as number] as number[]) {
        if (i === skip || !healthy(i, id)) continue;
        const l = load[i] as number;
        if (best >= 0 && l > bestLoad) continue;
        const score = rendezvousScore(vipHash, nodeHash[i] as number);
        if (best < 0 || l < bestLoad || score > bestScore || (score === bestScore && i < best)) {
          best = i;
          bestLoad = l;
          bestScore = score;
        }
      }
    }
    return best;
  }

  /** The most services any eligible participant of `id` (except `skip`) declares on it. */
  function mostServices(id: number, skip: number): number {
    let most = 0;
    for (let r = rowStart[id] as number, end = rowStart[id + 1] as number; r < end; r++) {
      const count = (groupIndex[rowGroup[r] as number] as DeclarationIndex).serviceCount[rowSlot[r] as number] as number;
      if (count <= most) continue;
      for (const i of groupLive[rowGroup[r] as number] as number[]) {
        if (i !== skip && healthy(i, id)) {
          most = count;
          break;
        }
      }
    }
    return most;
  }

  /** The highest load among the eligible participants of `id`. */
  function mostLoaded(id: number): number {
    let max = 0;
    for (let r = rowStart[id] as number, end = rowStart[id + 1] as number; r < end; r++) {
      for (const i of groupLive[rowGroup[r] as number] as number[]) {
        if (healthy(i, id) && (load[i] as number) > max) max = load[i] as number;
      }
    }
    return max;
  }

  function loadsOf(id: number): Map<string, number> {
    const out = new Map<string, number>();
    for (let r = rowStart[id] as number, end = rowStart[id + 1] as number; r < end; r++) {
      for (const i of groupLive[rowGroup[r] as number] as number[]) {
        if (healthy(i, id)) out.set((nodes[i] as NodeView).node, load[i] as number);
      }
    }
    return out;
  }

  /** Live participants of `id` with their declaration slot, sorted by name (rare path). */
  function participantRows(id: number): Array<{ node: NodeView; slot: number }> {
    const rows: Array<{ i: number; slot: number }> = [];
    for (let r = rowStart[id] as number, end = rowStart[id + 1] as number; r < end; r++) {
      for (const i of groupLive[rowGroup[r] as number] as number[]) rows.push({ i, slot: rowSlot[r] as number });
    }
    return rows.sort((a, b) => a.i - b.i).map((r) => ({ node: nodes[r.i] as NodeView, slot: r.slot }));
  }
}

/** Orders two live holders of the same VIP by their claims (see claim.ts). */
function compareHolders(nodes: NodeView[], id: number, a: number, b: number): number {
  const ip = ipTable.texts[id] as string;
  const claim = (i: number) => {
    const n = nodes[i] as NodeView;
    const own = n.declaration.vips.find((v) => v.ip === ip);
    return { node: n.node, epoch: n.holding.get(ip) ?? 0, preferred: own !== undefined && own.preferred === n.node };
  };
  return compareClaims(claim(a), claim(b));
}

/** Builds the evidence for a flagged VIP (rare path: strings allowed here). */
function evidenceOf(
  id: number,
  bits: number,
  nodes: NodeView[],
  rows: Array<{ node: NodeView; slot: number }>,
  multiAddressBindings: Set<number>,
): VipFlags {
  const ip = ipTable.texts[id] as string;
  const out: VipFlags = {};
  const vipOf = (row: { node: NodeView; slot: number }) => row.node.declaration.vips[row.slot] as NonNullable<NodeView['declaration']['vips'][number]>;
  if (bits & F_CONFLICT) {
    const claims = rows.map((r) => ({ node: r.node.node, value: vipOf(r).preferred ?? '(none)' }));
    const names = [...new Set(rows.map((r) => vipOf(r).preferred).filter((n): n is string => n !== null))].sort();
    out.conflict = {
      kind: 'preference',
      message: `live participants name different preferred nodes for ${ip} (${names.join(', ')}): preference ignored, normal election; make vips['${ip}'].preferred the same on every node`,
      claims,
    };
  }
  if (bits & F_UNSAFE) {
    out.unsafe = {
      kind: 'services',
      message: `participants declare different services on ${ip}: normal election, but whichever node holds it runs only its own services; declare the same listeners and bindings on every node`,
      claims: rows.map((r) => {
        const v = vipOf(r);
        return { node: r.node.node, value: describeServices(v.binding, v.ports, v.follows) };
      }),
    };
  }
  if (bits & F_BROKEN_NAME) {
    out.broken = {
      kind: 'binding-name',
      message: `${ip} is declared under different binding names; mail could leave from the wrong IP, so nobody manages it; give ${ip} the same binding name on every node`,
      claims: rows.filter((r) => vipOf(r).binding !== null).map((r) => ({ node: r.node.node, value: vipOf(r).binding as string })),
    };
  } else if (bits & F_BROKEN_ADDRESS) {
    const names = new Set(rows.map((r) => vipOf(r).binding).filter((b): b is string => b !== null && multiAddressBindings.has(nameTable.ids.get(b) ?? -1)));
    const claims: Evidence['claims'] = [];
    for (const n of nodes) {
      if (!n.live) continue;
      for (const v of n.declaration.vips) if (v.binding !== null && names.has(v.binding)) claims.push({ node: n.node, value: `${v.binding} = ${v.ip}` });
    }
    out.broken = {
      kind: 'binding-address',
      message: `binding ${[...names].map((b) => JSON.stringify(b)).join(', ')} maps to different IPs on different nodes; mail could leave from the wrong IP, so nobody manages ${ip}; give each binding name one IP across the cluster`,
      claims,
    };
  } else if (bits & F_BROKEN_FOLLOW) {
    out.broken = {
      kind: 'follow',
      message: `nodes disagree on what ${ip} follows; two nodes could hold it at once, so nobody manages it; make the listener's follow the same on every node`,
      claims: rows.map((r) => ({ node: r.node.node, value: vipOf(r).follows === null ? 'elected on its own' : `follows ${vipOf(r).follows}` })),
    };
  }
  return out;
}
