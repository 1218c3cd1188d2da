/**
 * The runtime's decisions as a pure engine, shaped like etcd raft's RawNode:
 * inputs go in through step() (time, the peer table, link and address events,
 * foreign claims, results of operations, operator commands), and ready() hands
 * out the effects to run (publish holdings, probe, add addresses and start
 * services, announce, drain and remove, watch the wire, wake me at T) and the
 * events to deliver. No I/O, no timers, no clock: time comes in every input.
 * The same engine runs under the driver (lib/runtime/driver.ts) in namespaces
 * and in the deterministic cluster simulation (test/sim).
 *
 * A step only records; ready() runs the election once for every step since the
 * last ready(), so a burst of inputs (a heartbeat carrying several changes,
 * a batch of operations ending) costs one election.
 */
import { elect, explain, plan, type Assignment, type ClusterView, type Explanation, type NodeDeclaration, type ResolvedConfig, type ResolvedVip, type VipOutcome } from '../core';
import type { BindingInfo } from '../mta/types';
import { bindingChanges, bindingInfos } from './binding-infos';
import { betterClaimOn, declarationsDueBy, electOptions, knownHosts, outcomeEvents } from './election-inputs';
import type { Effect, EngineEvent, EngineInput, EnginePeer, Publication, Ready } from './engine-io';
import { HealthBook, type HealthProblem, type UnhealthyReason } from './health';
import { OperatorMoves } from './operator-moves';
import { buildView, type DeclarationCache } from './view-builder';
import { mayHaveAddress, isBusy, nextState, type VipState } from './vip-lifecycle';
import { cidrOf, VipOperations, type OperationContext, type Slot } from './vip-operations';

/**
 * At most this many VIPs are handed over (released to a live owner) at once; see reconcile.
 * Measured (300 VIPs, 3 trials each): a window of 64 made each VIP's failback outage longer
 * (p50 580-630 ms against 430-490 ms unpaced) — the new owner then acquires in more, smaller
 * batches, each with its own probe — so the window only bounds a stampede of more than this.
 */
export const RELEASE_CHUNK = 256;

/** Back from a cut link: the way of a peer's heartbeat, beyond its period (see rejoinAfterCut). */
const REJOIN_SLACK_MS = 10;

export interface EngineOptions {
  /** After a listen or address failure, the VIP is tried again this much later. */
  retryUnhealthyMs: number;
  /** Longest a live peer whose declaration has not arrived holds up acquisitions. */
  declarationWaitMs: number;
}

export interface EngineVip {
  vip: ResolvedVip;
  state: VipState;
  epoch: number;
  outcome: VipOutcome | undefined;
  problem: HealthProblem | undefined;
}

export class VipEngine {
  readonly node: string;
  private readonly slots = new Map<string, Slot>();
  private readonly health = new HealthBook();
  private readonly lastKnownEpochs = new Map<string, number>();
  /** The highest epoch any peer ever advertised per VIP (lastKnownEpochs also counts our own). */
  private readonly heardEpochs = new Map<string, number>();
  private readonly knownNodes = new Set<string>();
  private readonly counts = new Map<string, number>();
  private readonly operations: VipOperations;
  private readonly moves = new OperatorMoves();
  /** Re-announcements due after a foreign claim: ip → time. */
  private readonly reannounceAt = new Map<string, number>();
  /** When each interface went down (for how long a link was away). */
  private readonly linkDownAt = new Map<string, number>();
  private readonly sniffed = new Map<string, string>();
  /** Failed acquisitions in a row per VIP (the back-off's exponent). */
  private readonly failures = new Map<string, number>();
  /** Cluster addresses whose host refuses our heartbeats now: their node process is gone. */
  private refusedAddresses = new Set<string>();
  private peers: readonly EnginePeer[] = [];
  private assignment: Assignment | null = null;
  private lastOutcomes = new Map<string, VipOutcome>();
  private bindingMap = new Map<string, BindingInfo>();
  private neighbours: Array<{ address: string; mac: string }> = [];
  private now = 0;
  private started = false;
  private closing = false;
  /**
   * Since when our peers have heard us without a gap, as best we can tell: boot, or our return
   * from a stall or a cut in which they declared us dead (their hold-down for a preferred node
   * counts from there, and so must ours, or we think the hold-down over while they do not).
   */
  private liveSince = 0;
  /** While a link is down: whether our membership declared a peer dead meanwhile. */
  private peerDownDuringCut = false;
  /** Releases told to end their drain (another node holds the VIP too); forgotten when idle. */
  private readonly hurried = new Set<string>();
  private settleUntil = Infinity;
  /**
   * Back from a cut link, settling also needs every live peer's documents current, until this
   * time at the latest (see rejoinAfterCut).
   */
  private currentBy = -Infinity;
  private nextReannounceAll: number | null = null;
  private declarationsDue: number | null = null;
  private lastWake: number | null = null;
  private electionDue = false;
  private publishDue = false;
  private effects: Effect[] = [];
  private events: EngineEvent[] = [];

  constructor(
    readonly config: ResolvedConfig,
    private readonly declaration: NodeDeclaration,
    private readonly cache: DeclarationCache,
    private readonly options: EngineOptions,
  ) {
    this.node = config.node;
    this.knownNodes.add(this.node);
    for (const vip of config.vips) this.slots.set(vip.ip, { vip, state: 'idle', epoch: 0 });
    this.operations = new VipOperations(this.operationContext());
    this.bindingMap = this.computeBindings(this.view(0));
  }

  // --- inputs ----------------------------------------------------------------

  step(input: EngineInput): void {
    this.now = Math.max(this.now, input.now);
    this.electionDue = true;
    switch (input.type) {
      case 'start':
        this.started = true;
        this.liveSince = this.now;
        if (input.leftoversRemoved) this.count('leftover_aliases_removed_total', input.leftoversRemoved);
        for (const link of input.links) this.health.setLink(link.ifname, link.usable);
        // Settle: until one dead-after period has passed we have not heard from every live
        // peer, and could take a VIP another node holds.
        this.settleUntil = this.now + this.config.timers.deadAfterMs;
        if (this.config.announce.reannounceMs > 0) this.nextReannounceAll = this.now + this.config.announce.reannounceMs;
        this.publishDue = true;
        return;
      case 'tick':
        // The wake-up timer fired (perhaps early: libuv measures from its cached loop time, which
        // lags behind after a long turn): hand out the next wake-up again, even an unchanged one.
        this.lastWake = Number.NaN;
        return;
      case 'peers':
        this.peers = input.peers;
        // At every input, not only at the next election: a claim and its release can both arrive
        // before the election runs, and the epoch must still be outbid.
        this.rememberEpochs();
        // The cluster changed: a host that answered our probe may have let the VIP go. The
        // back-off of 'held-on-wire' is for a holder we cannot hear at all (we hear nothing then).
        if (input.change) this.clearHeldOnWire();
        if (input.change?.kind === 'up') {
          this.knownNodes.add(input.change.node);
          // A peer is back (a partition healed, a restart): while we could not hear each other,
          // clients may have followed its announcements. Once any clash has settled, say again
          // what we hold.
          for (const slot of this.slots.values()) if (slot.state === 'held') this.reannounceSoon(slot.vip.ip);
          this.emit({ name: 'peer-up', args: [{ node: input.change.node, address: input.change.address }] });
        } else if (input.change?.kind === 'down') {
          this.count('peer_down_total');
          if (this.linkDownAt.size > 0) this.peerDownDuringCut = true;
          this.emit({ name: 'peer-down', args: [{ node: input.change.node, address: input.change.address, reason: input.change.reason }] });
        }
        return;
      case 'refused': {
        const fresh = input.addresses.some((a) => !this.refusedAddresses.has(a));
        this.refusedAddresses = new Set(input.addresses);
        // A host newly proven without its node process: an answer we backed off from may be its leftover.
        if (fresh) this.clearHeldOnWire();
        return;
      }
      case 'stall':
        this.count('stalls_total');
        // Our own stall (GC, SIGSTOP, a blocked loop) past dead-after: what we know is stale, and
        // peers have declared us dead and may hold our VIPs by now (the guardian removed our
        // addresses before they could). Rejoin as standby: release, listen, then elect again.
        this.resettle();
        // Peers declared us dead: to them we are live again from now (hold-downs count from here).
        this.liveSince = this.now;
        this.emit({ name: 'stall', args: [{ lagMs: input.lagMs }] });
        for (const slot of this.slots.values()) {
          if (slot.state === 'held') this.release(slot, 'stale', `this process did not run for ${Math.round(input.lagMs)} ms: its claim is stale`, true);
        }
        return;
      case 'link':
        return this.onLink(input.ifname, input.usable);
      case 'address-removed': {
        const slot = this.slots.get(input.address);
        // Removed by someone else (an operator, a network manager): put back, or given up.
        if (slot && slot.vip.interface === input.ifname && !this.closing) this.operations.addressLost(slot);
        return;
      }
      case 'foreign-claim':
        return this.onForeignClaim(input.address, input.mac, input.kind);
      case 'neighbours':
        if (JSON.stringify(input.list) !== JSON.stringify(this.neighbours)) {
          this.neighbours = input.list.map((n) => ({ address: n.address, mac: n.mac }));
          this.publishDue = true;
        }
        return;
      case 'done':
        return this.operations.done(input.result);
      case 'ready':
        return this.onReady(input.ip, input.ready, input.detail);
      case 'close':
        if (this.closing) return;
        this.closing = true;
        // Leaving: first tell peers we will serve nothing, so every VIP we release is elected
        // elsewhere at once, instead of staying unowned while the plain services drain.
        for (const vip of this.config.vips) this.health.fail(vip.ip, 'shutdown', 'cluster.close()', Infinity);
        this.publishNow();
        return;
    }
  }

  /**
   * Planned move: pins `ip` to `node` (a live participant), or clears this node's pin with
   * null. `wallMs` orders pins cluster-wide (the newest wins). Throws naming what is wrong.
   */
  move(ip: string, node: string | null, now: number, wallMs: number): { ip: string; node: string | null; from: string | null; seq: number } {
    if (!this.started) throw new Error('move: start() the cluster first');
    this.now = Math.max(this.now, now);
    const result = this.moves.move(ip, node, this.assignment?.vips.get(ip), wallMs);
    this.count('moves_total');
    this.publishDue = true;
    this.electionDue = true;
    return result;
  }

  /** The effects to run and events to deliver since the last call; runs the election first when an input came. */
  ready(): Ready {
    if (this.started && this.electionDue) {
      this.electionDue = false;
      this.reconcile();
    }
    if (this.started && !this.closing) this.dueAnnouncements();
    if (this.publishDue) this.publishNow();
    this.updateSniffers();
    const wake = this.closing ? null : this.nextWake();
    if (wake !== this.lastWake) {
      this.lastWake = wake;
      this.effects.push({ type: 'wake', at: wake });
    }
    const out = { effects: this.effects, events: this.events };
    this.effects = [];
    this.events = [];
    return out;
  }

  // --- queries ---------------------------------------------------------------

  /** After close: true once every VIP is idle and no operation is in flight. */
  get quiescent(): boolean {
    return this.operations.idle && [...this.slots.values()].every((s) => s.state === 'idle');
  }

  isSettled(now: number): boolean {
    return now >= this.settleUntil && (now >= this.currentBy || this.peersCurrent());
  }

  /** What we hold of every live peer matches its latest heartbeat. */
  private peersCurrent(): boolean {
    return this.peers.every((p) => !p.live || p.leaving || p.complete !== false);
  }

  get quorum(): boolean {
    return this.assignment?.quorum ?? true;
  }

  /** Every managed VIP: its state here, the election's outcome and any health problem. */
  vips(): EngineVip[] {
    return [...this.slots.values()].map((s) => ({
      vip: s.vip,
      state: s.state,
      epoch: s.epoch,
      outcome: this.assignment?.vips.get(s.vip.ip),
      problem: this.health.problem(s.vip.ip, s.vip.interface),
    }));
  }

  /** This node's state for `ip`, or undefined when it is not a managed VIP here. */
  stateOf(ip: string): VipState | undefined {
    return this.slots.get(ip)?.state;
  }

  outcome(ip: string): VipOutcome | undefined {
    return this.assignment?.vips.get(ip);
  }

  binding(name: string): BindingInfo | undefined {
    return this.bindingMap.get(name);
  }

  bindings(): BindingInfo[] {
    return [...this.bindingMap.values()];
  }

  counters(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }

  /** The cluster as this node sees it at `now` (the election's input). */
  view(now: number): ClusterView {
    const unhealthy = this.health.unhealthy(this.config.vips);
    const overrides = this.moves.inForce(this.node, this.peers);
    return buildView(now, { node: this.node, declaration: this.declaration, liveSince: this.liveSince, holding: this.holdings(), unhealthy }, this.peers, this.cache, overrides);
  }

  explain(ip: string, now: number): Explanation | null {
    return explain(this.view(now), ip, electOptions(this.config, this.knownNodes, this.peers));
  }

  // --- the election ------------------------------------------------------------

  private reconcile(): void {
    const t = this.now;
    if (this.closing) {
      // No more elections, but whatever is held goes, and sends still in flight here (a relay
      // waiting for a binding's new holder) must learn where their binding went.
      // A VIP another live node holds too (a partition just healed) goes at once, as any
      // release that would only keep two holders on the wire (the chaos campaign: a node
      // stopped right after a merge drained for 5 s next to the other holder).
      const view = this.view(t);
      for (const slot of this.slots.values()) {
        if (slot.state === 'held') this.release(slot, 'shutdown', 'cluster.close()', heldElsewhere(view, this.node, slot.vip.ip) || this.health.isLinkDown(slot.vip.interface));
      }
      this.hurryReleasesHeldElsewhere(view);
      this.refreshBindings(view);
      return;
    }
    if (this.health.expire(t)) this.publishDue = true;
    // A live peer whose declaration we do not know yet (it just joined, or we just did) is left
    // out of the view, and what its heartbeats say it holds cannot be read: acquiring now could
    // take every VIP it holds (a joining standby did, 1,000 at once). Wait for its declaration.
    this.declarationsDue = declarationsDueBy(this.peers, t, this.options.declarationWaitMs);
    const settled = this.isSettled(t) && this.declarationsDue === null;
    const view = this.view(t);
    const assignment = elect(view, electOptions(this.config, this.knownNodes, this.peers));
    this.assignment = assignment;
    if (settled && this.moves.dropStale(assignment)) this.publishDue = true;
    for (const event of outcomeEvents(this.node, new Set(this.slots.keys()), this.lastOutcomes, assignment)) this.emit(event);
    this.lastOutcomes = new Map(assignment.vips);
    this.refreshBindings(view);

    // Until settled (boot, link back up, after a stall) only releases go ahead.
    const actions: Array<{ type: 'release'; ip: string; reason: string; detail: string } | { type: 'acquire'; ip: string; epoch: number }> = plan(
      this.node,
      view,
      assignment,
      this.lastKnownEpochs,
    ).filter((a) => settled || a.type === 'release');
    // Clash: views may differ (asymmetric loss), so a holder also yields to a better claim it
    // hears, by an order that needs no agreement on the view.
    for (const slot of this.slots.values()) {
      if (slot.state !== 'held') continue;
      const clash = betterClaimOn(this.node, slot.vip, slot.epoch, view);
      if (clash) {
        this.count('clashes_total');
        this.emit({ name: 'conflict', args: [{ ip: slot.vip.ip, kind: 'clash', node: clash, message: `${clash} holds ${slot.vip.ip} with a better claim (epoch/preference/name): releasing` }] });
        actions.unshift({ type: 'release', ip: slot.vip.ip, reason: 'clash', detail: `${clash} has a better claim` });
      } else if (assignment.vips.get(slot.vip.ip)?.owner === this.node && heldElsewhere(view, this.node, slot.vip.ip)) {
        // We keep it and the other holder yields, but clients may have followed its last
        // announcement (made while we could not hear it): say so last, once it has released.
        this.reannounceSoon(slot.vip.ip);
      }
    }
    const acquisitions: Array<{ slot: Slot; epoch: number }> = [];
    let releasing = 0;
    for (const slot of this.slots.values()) if (slot.state === 'releasing') releasing++;
    for (const action of actions) {
      const slot = this.slots.get(action.ip);
      if (!slot || isBusy(slot.state)) continue;
      if (action.type === 'release') {
        if (slot.state === 'held') {
          // No drain when it would only prolong two holders or cannot reach anyone: a lost
          // clash, another live node already holding it, or our link down (sessions cannot
          // finish over it, and peers took the VIP over when we went silent).
          const urgent = action.reason === 'clash' || heldElsewhere(view, this.node, slot.vip.ip) || this.health.isLinkDown(slot.vip.interface);
          // A hand-over (the owner is another live node: a failback, a rebalance) goes a chunk
          // at a time; the rest stay served here meanwhile. All at once, every VIP was out from
          // the moment its listener closed until the new owner had brought up all of them.
          if (!urgent && action.reason === 'not-owner' && releasing >= RELEASE_CHUNK) continue;
          this.release(slot, action.reason, action.detail, urgent);
          releasing++;
        }
      } else if (slot.state === 'idle') {
        acquisitions.push({ slot, epoch: action.epoch });
        this.lastKnownEpochs.set(action.ip, Math.max(action.epoch, this.lastKnownEpochs.get(action.ip) ?? 0));
      }
    }
    if (acquisitions.length) this.startAcquisitions(acquisitions);
    this.hurryReleasesHeldElsewhere(view);
  }

  /** Releases `slot`; an urgent release does not drain, so it is never told to hurry. */
  private release(slot: Slot, reason: string, detail: string, urgent: boolean): void {
    this.operations.release(slot, reason, detail, urgent);
    if (urgent) this.hurried.add(slot.vip.ip);
  }

  /**
   * A release that began draining (a shutdown, a hand-over) while nobody else held the VIP, and
   * another live node holds it now (a partition healed meanwhile): its drain only keeps two
   * holders on the wire, so it ends now, as it would have begun had we known (the chaos
   * campaign: a node stopped as a partition healed drained 5 s next to the other holder).
   */
  private hurryReleasesHeldElsewhere(view: ClusterView): void {
    for (const ip of this.hurried) if (this.slots.get(ip)?.state !== 'releasing') this.hurried.delete(ip);
    for (const slot of this.slots.values()) {
      if (slot.state !== 'releasing' || this.hurried.has(slot.vip.ip) || !heldElsewhere(view, this.node, slot.vip.ip)) continue;
      this.hurried.add(slot.vip.ip);
      this.count('releases_hurried_total');
      this.effects.push({ type: 'hurry', ip: slot.vip.ip });
    }
  }

  /**
   * Epochs only grow: the highest epoch any node ever advertised for each of our VIPs is kept,
   * so a takeover from a holder that died (whose holdings leave the view) or restarted still
   * outbids its claim, and a clash after a merge is won by the newer claim.
   */
  private rememberEpochs(): void {
    for (const peer of this.peers) {
      for (const [ip, epoch] of peer.holdings) {
        if (!this.slots.has(ip)) continue;
        if (epoch > (this.lastKnownEpochs.get(ip) ?? 0)) this.lastKnownEpochs.set(ip, epoch);
        if (epoch > (this.heardEpochs.get(ip) ?? 0)) this.heardEpochs.set(ip, epoch);
      }
    }
  }

  /** Overridable in the simulation's invariant tests (to show an invariant catches its fault). */
  private startAcquisitions(batch: Array<{ slot: Slot; epoch: number }>): void {
    this.operations.acquire(batch);
  }

  private operationContext(): OperationContext {
    return {
      config: this.config,
      now: () => this.now,
      slot: (ip) => this.slots.get(ip) as Slot,
      transition: (slot, transition) => void (slot.state = nextState(slot.state, transition, slot.vip.ip)),
      effect: (effect) => void this.effects.push(effect),
      emit: (event) => this.emit(event),
      count: (name, by) => this.count(name, by),
      markUnhealthy: (ip, reason, detail, linkWentDown) => this.markUnhealthy(ip, reason, detail, linkWentDown),
      publishNow: () => this.publishNow(),
      publishSoon: () => void (this.publishDue = true),
      bindingsChanged: () => this.refreshBindings(this.view(this.now)),
      knownHosts: (family) => knownHosts(this.peers, family),
      // The MAC is that of a peer whose process is proven gone: each node shares its own MAC as
      // the neighbour entry of its cluster address.
      // The MAC is that of a host whose node process is proven gone: a peer that went down on
      // an ICMP refusal (each node shares its own MAC as the neighbour entry of its cluster
      // address), or a cluster address that refuses our heartbeats whose MAC our kernel knows.
      // Only current evidence counts (the membership drops a refusal after dead-after without
      // a new one): a peer that refused once and restarted where we cannot hear it is alive.
      leftoverExpected: (_ip, mac) => {
        const same = (other: string): boolean => other.toLowerCase() === mac.toLowerCase();
        if (this.peers.some((p) => this.refusedAddresses.has(p.address) && p.neighbours.some((n) => n.address === p.address && same(n.mac)))) return true;
        return this.neighbours.some((n) => this.refusedAddresses.has(n.address) && same(n.mac));
      },
      acquiredOk: (ip) => void this.failures.delete(ip),
      highestHeardEpoch: (ip) => this.heardEpochs.get(ip) ?? 0,
      claimed: (ip, epoch) => void this.lastKnownEpochs.set(ip, Math.max(epoch, this.lastKnownEpochs.get(ip) ?? 0)),
    };
  }

  /**
   * The VIP failed here: unhealthy (peers elect someone else) until a back-off ends that doubles
   * with each failure in a row, capped at 16 times its base, so a node that cannot serve a VIP
   * (a port taken, an address refused) does not take it back and drop it on a fixed cycle.
   */
  private markUnhealthy(ip: string, reason: UnhealthyReason, detail: string, linkWentDown = false): void {
    let delay: number;
    let text: string;
    if (linkWentDown) {
      // Not this VIP's failure: no back-off, not counted (the chaos campaign: a VIP whose link
      // went down during its acquisition, or whose IPv6 address the kernel flushed at link down,
      // stayed unelectable here 10 s after the link was back, and unserved when this was its
      // last declarer). Link-down health keeps it off this node while the link is down.
      delay = this.config.timers.deadAfterMs;
      text = `${detail} (its link went down; retried in ${delay} ms)`;
    } else {
      const failures = (this.failures.get(ip) ?? 0) + 1;
      this.failures.set(ip, failures);
      // A holder we cannot hear may vanish without a sign (its host lost power, its link went
      // down): look again every dead-after period, as a silence is judged, not ever more rarely.
      // (Every two periods, the chaos campaign saw a muted holder whose link then went down
      // leave its VIP unserved 393 ms.) Other failures double.
      delay = reason === 'held-on-wire' ? this.config.timers.deadAfterMs : this.options.retryUnhealthyMs * 2 ** Math.min(failures - 1, 4);
      text = `${detail} (failure ${failures} in a row; retried in ${Math.round(delay)} ms)`;
    }
    this.health.fail(ip, reason, text, this.now + delay);
    this.emit({ name: 'unhealthy', args: [{ ip, reason, detail: text }] });
    this.publishDue = true;
  }

  // --- other inputs ------------------------------------------------------------

  private onLink(ifname: string, usable: boolean): void {
    if (!this.health.setLink(ifname, usable)) return;
    this.count('link_changes_total');
    // After a blip shorter than dead-after minus a heartbeat nobody can have declared us dead,
    // and our view is still current: take our VIPs back at once. After a longer cut, peers may
    // have taken them meanwhile and we heard nothing of it: rejoin first (rejoinAfterCut).
    const downFor = this.now - (this.linkDownAt.get(ifname) ?? -Infinity);
    if (!usable) {
      if (this.linkDownAt.size === 0) this.peerDownDuringCut = false;
      this.linkDownAt.set(ifname, this.now);
    } else this.linkDownAt.delete(ifname);
    if (usable) {
      if (downFor >= this.config.timers.deadAfterMs - this.config.timers.heartbeatMs) this.rejoinAfterCut();
      // We declared peers dead while cut off: heartbeats go out on the same wall-clock
      // boundaries everywhere, so their silence of us was as long, and they declared us dead
      // too. To them we are live from now: so we are to ourselves (the chaos campaign: a
      // preferred node back from a 1 s cut thought its hold-down over while its peers did not;
      // each then counted the preferred VIP on its own side, found the other less loaded for a
      // third VIP, and nobody took that one for 800 ms).
      if (this.linkDownAt.size === 0 && this.peerDownDuringCut) this.liveSince = this.now;
      // Announcements made while the link was down went nowhere, and clients may have followed
      // another node's meanwhile.
      for (const slot of this.slots.values()) if (slot.vip.interface === ifname && slot.state === 'held') this.reannounceAt.set(slot.vip.ip, this.now);
    } else for (const slot of this.slots.values()) if (slot.vip.interface === ifname) this.emit({ name: 'unhealthy', args: [{ ip: slot.vip.ip, reason: 'link-down', detail: `link ${ifname} is down` }] });
    this.publishDue = true;
  }

  private onReady(ip: string, ready: boolean, detail: string): void {
    if (this.closing || !this.slots.has(ip)) return;
    const changed = ready ? this.health.clear(ip, 'not-ready') : this.health.hold(ip, 'not-ready', detail);
    if (!changed) return;
    this.count(ready ? 'ready_total' : 'not_ready_total');
    if (!ready) this.emit({ name: 'unhealthy', args: [{ ip, reason: 'not-ready', detail }] });
    this.publishDue = true;
  }

  /** Another MAC claims a VIP we hold: report; the election settles it and the winner re-announces last. */
  private onForeignClaim(address: string, mac: string, kind: string): void {
    const slot = this.slots.get(address);
    if (!slot || slot.state !== 'held') return;
    this.count('wire_conflicts_total');
    this.emit({ name: 'conflict', args: [{ ip: address, kind: 'on-wire', mac, message: `${mac} sent ${kind} for ${address}, which this node holds` }] });
    this.reannounceSoon(address);
  }

  /** Forgets the 'held-on-wire' back-offs: what answered our probes may have changed. */
  private clearHeldOnWire(): void {
    for (const vip of this.config.vips) if (this.health.clear(vip.ip, 'held-on-wire')) this.publishDue = true;
  }

  /** Re-announces `ip` two heartbeats from now (once the clash has settled), unless already due. */
  private reannounceSoon(ip: string): void {
    if (!this.reannounceAt.has(ip)) this.reannounceAt.set(ip, this.now + 2 * this.config.timers.heartbeatMs);
  }

  /** Re-announcements whose time has come: after a foreign claim, and the periodic ones. */
  private dueAnnouncements(): void {
    const due = new Map<string, string[]>();
    for (const [ip, at] of this.reannounceAt) {
      if (at > this.now) continue;
      this.reannounceAt.delete(ip);
      const slot = this.slots.get(ip) as Slot;
      if (slot.state !== 'held') continue;
      this.count('reannouncements_total');
      const list = due.get(slot.vip.interface);
      if (list) list.push(ip);
      else due.set(slot.vip.interface, [ip]);
    }
    // One announcement per interface, however many VIPs are due.
    for (const [ifname, ips] of due) this.effects.push({ type: 'reannounce', ifname, ips, count: 1, intervalMs: 0 });
    if (this.nextReannounceAll !== null && this.nextReannounceAll <= this.now) {
      this.nextReannounceAll = this.now + this.config.announce.reannounceMs;
      for (const [ifname, ips] of this.heldByInterface()) this.effects.push({ type: 'reannounce', ifname, ips, count: 1, intervalMs: 0 });
    }
  }

  // --- what goes out -------------------------------------------------------------

  private publishNow(): void {
    this.publishDue = false;
    if (!this.started) return;
    const live = [...this.slots.values()].filter((s) => mayHaveAddress(s.state));
    const state: Publication = {
      holdings: this.holdings(),
      unhealthy: this.health.unhealthy(this.config.vips),
      moves: new Map(this.moves.issued),
      neighbours: this.neighbours,
      aliases: live.map((s) => ({ ifname: s.vip.interface, cidr: cidrOf(s.vip) })),
    };
    this.effects.push({ type: 'publish', state });
  }

  /** Keeps one sniffer per interface watching exactly the VIPs held on it. */
  private updateSniffers(): void {
    if (this.closing) return;
    const held = this.heldByInterface();
    for (const ifname of new Set([...held.keys(), ...this.sniffed.keys()])) {
      const ips = held.get(ifname) ?? [];
      const key = ips.join(' ');
      if ((this.sniffed.get(ifname) ?? '') === key) continue;
      this.sniffed.set(ifname, key);
      this.effects.push({ type: 'sniff', ifname, ips });
    }
  }

  private nextWake(): number | null {
    const t = this.now;
    const candidates = [
      this.assignment?.nextWakeup ?? null,
      this.health.nextRetry(),
      t < this.settleUntil && Number.isFinite(this.settleUntil) ? this.settleUntil : null,
      t < this.currentBy && Number.isFinite(this.currentBy) ? this.currentBy : null,
      this.declarationsDue,
      this.nextReannounceAll,
      ...this.reannounceAt.values(),
    ].filter((x): x is number => x !== null);
    // One ms late: a timer that fires exactly at the boundary finds it not yet passed.
    return candidates.length ? Math.max(t, Math.min(...candidates)) + 1 : null;
  }

  private refreshBindings(view: ClusterView): void {
    const next = this.computeBindings(view);
    const changes = bindingChanges(this.bindingMap, next);
    this.bindingMap = next;
    for (const [info, before] of changes) this.emit({ name: 'binding', args: [info, before] });
  }

  private computeBindings(view: ClusterView): Map<string, BindingInfo> {
    const heldHere = new Map<string, number>();
    for (const slot of this.slots.values()) if (slot.state === 'held' || slot.state === 'restoring') heldHere.set(slot.vip.ip, slot.epoch);
    return bindingInfos(this.node, view, this.assignment, heldHere, this.config.bindings);
  }

  /**
   * Back from a cut link: no acquisitions until one heartbeat period (plus slack for the
   * packets' way) has brought a heartbeat from every live peer (they go out on the same
   * wall-clock boundaries everywhere) and what we hold of each matches it, at the latest one
   * dead-after period. Not a whole dead-after period, as at boot: peers that did not declare us
   * dead still name us owner of what we gave up at link down, and nobody serves it while we
   * listen (the chaos campaign: an outage of 160-230 ms left VIPs unserved 345-440 ms). A
   * takeover begun by a peer just before our return is seen in its holdings, or on the wire
   * by our probe, or settled as a clash. Unlike a stall, no stale packet can be queued for us.
   */
  private rejoinAfterCut(): void {
    const { heartbeatMs, deadAfterMs } = this.config.timers;
    this.settleFor(heartbeatMs + REJOIN_SLACK_MS);
    this.currentBy = Math.max(this.currentBy, this.now + deadAfterMs);
  }

  /** No acquisitions for one dead-after period (releases still happen). */
  private resettle(): void {
    this.settleFor(this.config.timers.deadAfterMs);
  }

  /** No acquisitions for `ms` from now, nor before an earlier settle ends. */
  private settleFor(ms: number): void {
    this.settleUntil = Math.max(Number.isFinite(this.settleUntil) ? this.settleUntil : 0, this.now + ms);
  }

  private holdings(): Map<string, number> {
    const held = new Map<string, number>();
    for (const slot of this.slots.values()) if (mayHaveAddress(slot.state)) held.set(slot.vip.ip, slot.epoch);
    return held;
  }

  private heldByInterface(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const slot of this.slots.values()) {
      if (slot.state !== 'held') continue;
      const list = out.get(slot.vip.interface);
      if (list) list.push(slot.vip.ip);
      else out.set(slot.vip.interface, [slot.vip.ip]);
    }
    return out;
  }

  private emit(event: EngineEvent): void {
    this.events.push(event);
  }

  private count(name: string, by = 1): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + by);
  }
}

/** True when a live node other than `self` advertises holding `ip`. */
function heldElsewhere(view: ClusterView, self: string, ip: string): boolean {
  return view.nodes.some((n) => n.node !== self && n.live && n.holding.has(ip));
}
