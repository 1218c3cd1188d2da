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
import {
  compareClaims,
  elect,
  explain,
  plan,
  vipState,
  type Assignment,
  type ClusterView,
  type ElectOptions,
  type Explanation,
  type NodeDeclaration,
  type ResolvedConfig,
  type ResolvedVip,
  type VipFlags,
  type VipOutcome,
} from '../core';
import type { BindingInfo } from '../mta/types';
import { bindingChanges, bindingInfos } from './binding-infos';
import type { Effect, EngineEvent, EngineInput, EnginePeer, OperationResult, Publication, Ready } from './engine-io';
import { HealthBook, type HealthProblem, type UnhealthyReason } from './health';
import { buildView, type DeclarationCache } from './view-builder';
import { isBusy, mayHaveAddress, nextState, type VipState, type VipTransition } from './vip-lifecycle';

export interface EngineOptions {
  /** After a listen or address failure, the VIP is tried again this much later. */
  retryUnhealthyMs: number;
  /** Longest a live peer whose declaration has not arrived holds up acquisitions. */
  declarationWaitMs: number;
}

/** This node's side of one managed VIP. */
interface Slot {
  vip: ResolvedVip;
  state: VipState;
  epoch: number;
}

/** One interface's batch of acquisitions: one probe, one announcement. */
interface Acquisition {
  kind: 'acquire';
  ifname: string;
  ips: string[];
  started: number;
  probeMs: number;
  found: ReadonlyMap<string, string | null>;
  pending: Set<string>;
  up: string[];
  /** Addresses removed behind our back before the acquisition ended: restored once it ends. */
  lost: Set<string>;
}

type Operation =
  | Acquisition
  | { kind: 'take-down'; ip: string }
  | { kind: 'release'; ip: string; reason: string; detail: string }
  | { kind: 'restore'; ip: string };

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
  private readonly knownNodes = new Set<string>();
  private readonly counts = new Map<string, number>();
  private readonly operations = new Map<number, Operation>();
  /** Operator moves issued on this node: ip → target node and a cluster-wide ordering number. */
  private readonly moves = new Map<string, { node: string; seq: number }>();
  /** Re-announcements due after a foreign claim: ip → time. */
  private readonly reannounceAt = new Map<string, number>();
  private readonly sniffed = new Map<string, string>();
  private peers: readonly EnginePeer[] = [];
  private assignment: Assignment | null = null;
  private lastOutcomes = new Map<string, VipOutcome>();
  private bindingMap = new Map<string, BindingInfo>();
  private neighbours: Array<{ address: string; mac: string }> = [];
  private lastMoveSeq = 0;
  private nextOp = 1;
  private now = 0;
  private started = false;
  private closing = false;
  private startedAt = 0;
  private settleUntil = Infinity;
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
    this.bindingMap = this.computeBindings(this.view(0));
  }

  // --- inputs ----------------------------------------------------------------

  step(input: EngineInput): void {
    this.now = Math.max(this.now, input.now);
    this.electionDue = true;
    switch (input.type) {
      case 'start':
        this.started = true;
        this.startedAt = this.now;
        if (input.leftoversRemoved) this.count('leftover_aliases_removed_total', input.leftoversRemoved);
        for (const link of input.links) this.health.setLink(link.ifname, link.usable);
        // Settle: until one dead-after period has passed we have not heard from every live
        // peer, and could take a VIP another node holds.
        this.settleUntil = this.now + this.config.timers.deadAfterMs;
        if (this.config.announce.reannounceMs > 0) this.nextReannounceAll = this.now + this.config.announce.reannounceMs;
        this.publishDue = true;
        return;
      case 'tick':
        return;
      case 'peers':
        this.peers = input.peers;
        if (input.change?.kind === 'up') {
          this.knownNodes.add(input.change.node);
          this.emit({ name: 'peer-up', args: [{ node: input.change.node, address: input.change.address }] });
        } else if (input.change?.kind === 'down') {
          this.count('peer_down_total');
          this.emit({ name: 'peer-down', args: [{ node: input.change.node, address: input.change.address, reason: input.change.reason }] });
        }
        return;
      case 'stall':
        this.count('stalls_total');
        // Our own stall (GC, SIGSTOP, a blocked loop): what we know is stale.
        this.resettle();
        this.emit({ name: 'stall', args: [{ lagMs: input.lagMs }] });
        return;
      case 'link':
        return this.onLink(input.ifname, input.usable);
      case 'address-removed':
        return this.onAddressRemoved(input.ifname, input.address);
      case 'foreign-claim':
        return this.onForeignClaim(input.address, input.mac, input.kind);
      case 'neighbours':
        if (JSON.stringify(input.list) !== JSON.stringify(this.neighbours)) {
          this.neighbours = input.list.map((n) => ({ address: n.address, mac: n.mac }));
          this.publishDue = true;
        }
        return;
      case 'done':
        return this.onDone(input.result);
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
    const outcome = this.assignment?.vips.get(ip);
    if (node === null) {
      this.moves.delete(ip);
    } else {
      if (!outcome) throw new Error(`move: no live node declares ${ip}`);
      if (outcome.flags.broken) throw new Error(`move: ${ip} is BROKEN (${outcome.flags.broken.message}); fix the config first`);
      if (outcome.follows) throw new Error(`move: ${ip} follows ${outcome.follows}; move ${outcome.follows} instead`);
      if (!outcome.participants.includes(node)) {
        throw new Error(`move: ${node} is not a live participant of ${ip} (participants: ${outcome.participants.join(', ') || 'none'})`);
      }
      this.lastMoveSeq = Math.max(wallMs, this.lastMoveSeq + 1);
      this.moves.set(ip, { node, seq: this.lastMoveSeq });
    }
    this.count('moves_total');
    this.publishDue = true;
    this.electionDue = true;
    return { ip, node, from: outcome?.owner ?? null, seq: this.moves.get(ip)?.seq ?? 0 };
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
    return this.operations.size === 0 && [...this.slots.values()].every((s) => s.state === 'idle');
  }

  isSettled(now: number): boolean {
    return now >= this.settleUntil;
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
    return buildView(now, { node: this.node, declaration: this.declaration, liveSince: this.startedAt, holding: this.holdings(), unhealthy }, this.peers, this.cache, this.overrides());
  }

  explain(ip: string, now: number): Explanation | null {
    return explain(this.view(now), ip, this.electOptions());
  }

  // --- the election ------------------------------------------------------------

  private reconcile(): void {
    const t = this.now;
    if (this.closing) {
      // No more elections, but whatever is held goes, and sends still in flight here (a relay
      // waiting for a binding's new holder) must learn where their binding went.
      for (const slot of this.slots.values()) if (slot.state === 'held') this.startRelease(slot, 'shutdown', 'cluster.close()');
      this.refreshBindings(this.view(t));
      return;
    }
    if (this.health.expire(t)) this.publishDue = true;
    this.rememberEpochs();
    // A live peer whose declaration we do not know yet (it just joined, or we just did) is left
    // out of the view, and what its heartbeats say it holds cannot be read: acquiring now could
    // take every VIP it holds (a joining standby did, 1,000 at once). Wait for its declaration.
    this.declarationsDue = this.declarationsDueBy(t);
    const settled = t >= this.settleUntil && this.declarationsDue === null;
    const view = this.view(t);
    const assignment = elect(view, this.electOptions());
    this.assignment = assignment;
    if (settled) this.dropStaleMoves(assignment);
    this.reportOutcomes(assignment);
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
      const clash = this.betterClaimOn(slot, view);
      if (clash) {
        this.count('clashes_total');
        this.emit({ name: 'conflict', args: [{ ip: slot.vip.ip, kind: 'clash', node: clash, message: `${clash} holds ${slot.vip.ip} with a better claim (epoch/preference/name): releasing` }] });
        actions.unshift({ type: 'release', ip: slot.vip.ip, reason: 'clash', detail: `${clash} has a better claim` });
      }
    }
    const acquisitions: Array<{ slot: Slot; epoch: number }> = [];
    for (const action of actions) {
      const slot = this.slots.get(action.ip);
      if (!slot || isBusy(slot.state)) continue;
      if (action.type === 'release') {
        if (slot.state === 'held') this.startRelease(slot, action.reason, action.detail);
      } else if (slot.state === 'idle') {
        acquisitions.push({ slot, epoch: action.epoch });
      }
    }
    if (acquisitions.length) this.startAcquisitions(acquisitions);
  }

  /**
   * Epochs only grow: the highest epoch any node ever advertised for each of our VIPs is kept,
   * so a takeover from a holder that died (whose holdings leave the view) or restarted still
   * outbids its claim, and a clash after a merge is won by the newer claim.
   */
  private rememberEpochs(): void {
    for (const peer of this.peers) {
      for (const [ip, epoch] of peer.holdings) {
        if (epoch > (this.lastKnownEpochs.get(ip) ?? 0) && this.slots.has(ip)) this.lastKnownEpochs.set(ip, epoch);
      }
    }
  }

  private electOptions(): ElectOptions {
    const known = new Set(this.knownNodes);
    // Configured peers we never heard from still count towards the majority.
    const heard = new Set(this.peers.map((p) => p.address));
    for (const peer of this.config.cluster.peers) {
      if (peer.ip !== this.config.cluster.bind && !heard.has(peer.ip)) known.add(`unheard ${peer.ip}`);
    }
    return { holdDownMs: this.config.timers.holdDownMs, quorum: this.config.quorum ? { knownNodes: known } : null, rebalance: this.config.rebalance };
  }

  /** When the last live peer whose declaration is unknown stops holding up acquisitions, or null. */
  private declarationsDueBy(t: number): number | null {
    let due: number | null = null;
    for (const peer of this.peers) {
      if (!peer.live || peer.leaving || peer.declaration !== null) continue;
      const until = peer.liveSince + this.options.declarationWaitMs;
      if (until > t) due = Math.max(due ?? 0, until);
    }
    return due;
  }

  /** The pins in force: every live node's moves, the newest per VIP. */
  private overrides(): Map<string, string> {
    const newest = new Map<string, { node: string; seq: number; issuer: string }>();
    const consider = (issuer: string, moves: ReadonlyMap<string, { node: string; seq: number }>): void => {
      for (const [ip, move] of moves) {
        const current = newest.get(ip);
        if (!current || move.seq > current.seq || (move.seq === current.seq && issuer < current.issuer)) newest.set(ip, { ...move, issuer });
      }
    };
    consider(this.node, this.moves);
    for (const peer of this.peers) if (peer.live) consider(peer.node, peer.moves);
    return new Map([...newest].map(([ip, m]) => [ip, m.node]));
  }

  /** Drops our pins whose target is no longer a live participant (they would pin nothing). */
  private dropStaleMoves(assignment: Assignment): void {
    for (const [ip, move] of this.moves) {
      const outcome = assignment.vips.get(ip);
      if (!outcome || !outcome.participants.includes(move.node)) {
        this.moves.delete(ip);
        this.publishDue = true;
      }
    }
  }

  /** The name of a live peer advertising `slot`'s VIP with a better claim than ours, if any. */
  private betterClaimOn(slot: Slot, view: ClusterView): string | null {
    const mine = { node: this.node, epoch: slot.epoch, preferred: slot.vip.preferred === this.node };
    for (const n of view.nodes) {
      if (n.node === this.node || !n.live) continue;
      const epoch = n.holding.get(slot.vip.ip);
      if (epoch === undefined) continue;
      const theirs = n.declaration.vips.find((v) => v.ip === slot.vip.ip);
      if (compareClaims({ node: n.node, epoch, preferred: theirs?.preferred === n.node }, mine) < 0) return n.node;
    }
    return null;
  }

  private reportOutcomes(assignment: Assignment): void {
    for (const [ip, outcome] of assignment.vips) {
      if (!this.slots.has(ip)) continue;
      const before = this.lastOutcomes.get(ip);
      if (!before || before.owner !== outcome.owner || before.rule !== outcome.rule || flagKey(before.flags) !== flagKey(outcome.flags)) {
        this.emit({ name: 'state', args: [{ ip, state: vipState(outcome, this.node), owner: outcome.owner, rule: outcome.rule, flags: outcome.flags, previousOwner: before?.owner ?? null }] });
        for (const kind of ['broken', 'conflict', 'unsafe'] as const) {
          const evidence = outcome.flags[kind];
          if (evidence && !before?.flags[kind]) this.emit({ name: 'conflict', args: [{ ip, kind, message: evidence.message }] });
        }
      }
    }
    this.lastOutcomes = new Map(assignment.vips);
  }

  // --- acquisitions ------------------------------------------------------------

  /**
   * Acquires VIPs in batches, one per interface: one probe call and one announcement per
   * interface. A node taking over hundreds of VIPs would otherwise queue hundreds of probes
   * and announcements on libuv's threads, one after another.
   */
  private startAcquisitions(batch: Array<{ slot: Slot; epoch: number }>): void {
    const byInterface = new Map<string, string[]>();
    for (const { slot, epoch } of batch) {
      this.transition(slot, 'acquire');
      slot.epoch = epoch;
      this.lastKnownEpochs.set(slot.vip.ip, Math.max(epoch, this.lastKnownEpochs.get(slot.vip.ip) ?? 0));
      byInterface.set(slot.vip.interface, [...(byInterface.get(slot.vip.interface) ?? []), slot.vip.ip]);
    }
    // Claim them in our heartbeats (and tell the reaper) before any address is added: a peer
    // that computed a different owner sees the claims and the epoch order settles it.
    this.publishNow();
    for (const [ifname, ips] of byInterface) {
      const op = this.nextOp++;
      const acquisition: Acquisition = { kind: 'acquire', ifname, ips, started: this.now, probeMs: 0, found: new Map(), pending: new Set(), up: [], lost: new Set() };
      this.operations.set(op, acquisition);
      if (this.config.probe.timeoutMs > 0) this.effects.push({ type: 'probe', op, ifname, ips, timeoutMs: this.config.probe.timeoutMs });
      else this.bringUp(op, acquisition);
    }
  }

  /** Listeners come up before the announcement moves clients here, so the first connection finds one. */
  private bringUp(op: number, acquisition: Acquisition): void {
    for (const ip of acquisition.ips) {
      acquisition.pending.add(ip);
      this.effects.push({ type: 'bring-up', op, ip, ifname: acquisition.ifname, cidr: this.cidr(ip) });
    }
  }

  private onDone(result: OperationResult): void {
    const operation = this.operations.get(result.op);
    if (!operation) return;
    if (operation.kind === 'acquire') return this.onAcquisitionStep(result.op, operation, result);
    this.operations.delete(result.op);
    const slot = this.slots.get(operation.ip) as Slot;
    if (operation.kind === 'take-down') {
      this.transition(slot, 'acquire-failed');
    } else if (operation.kind === 'release') {
      if (result.kind === 'release' && result.ok) {
        this.count('sessions_drained_total', result.drained);
        this.count('sessions_reset_total', result.reset);
        this.count('late_sessions_reset_total', result.lateReset);
        if (result.timedOut) this.count('session_drain_timeouts_total');
        for (const e of result.errors) this.emit({ name: 'error', args: [{ ip: operation.ip, operation: e.operation, error: e.error }] });
      } else if (!result.ok) {
        this.emit({ name: 'error', args: [{ ip: operation.ip, operation: 'release', error: result.error }] });
      }
      this.transition(slot, 'released');
      this.count('releases_total');
      this.publishDue = true;
      this.emit({ name: 'released', args: [{ ip: operation.ip, reason: operation.reason, detail: operation.detail }] });
    } else if (result.ok) {
      this.transition(slot, 'restored');
      this.count('addresses_restored_total');
      this.emit({ name: 'address-restored', args: [{ ip: slot.vip.ip, interface: slot.vip.interface }] });
    } else {
      const detail = `${slot.vip.ip} was removed from ${slot.vip.interface} and could not be restored: ${result.error.message}`;
      this.health.fail(slot.vip.ip, 'address-failed', detail, this.now + this.options.retryUnhealthyMs);
      this.emit({ name: 'unhealthy', args: [{ ip: slot.vip.ip, reason: 'address-failed', detail }] });
      this.emit({ name: 'error', args: [{ ip: slot.vip.ip, operation: 'restore address', error: result.error }] });
      this.transition(slot, 'restore-failed');
      this.publishDue = true;
    }
  }

  private onAcquisitionStep(op: number, acquisition: Acquisition, result: OperationResult): void {
    if (result.kind === 'probe') {
      if (!result.ok) {
        for (const ip of acquisition.ips) this.giveUp(ip, 'probe', result.error, false);
        return this.endAcquisition(op);
      }
      acquisition.found = result.found;
      acquisition.probeMs = result.ms;
      return this.bringUp(op, acquisition);
    }
    if (result.kind === 'bring-up') {
      acquisition.pending.delete(result.ip);
      if (result.ok) acquisition.up.push(result.ip);
      else {
        // The driver already undid what it did; the VIP is free here again.
        this.giveUp(result.ip, result.step, result.error, null);
        this.transition(this.slots.get(result.ip) as Slot, 'acquire-failed');
      }
      if (acquisition.pending.size > 0) return;
      if (acquisition.up.length === 0) return this.endAcquisition(op);
      this.effects.push({ type: 'announce', op, ifname: acquisition.ifname, ips: [...acquisition.up] });
      return;
    }
    if (result.kind !== 'announce') return;
    if (!result.ok) {
      for (const ip of acquisition.up) this.giveUp(ip, 'announce', result.error, true);
      return this.endAcquisition(op);
    }
    for (const ip of acquisition.up) {
      const slot = this.slots.get(ip) as Slot;
      this.transition(slot, 'acquired');
      this.count('acquisitions_total');
      const probeFoundMac = acquisition.found.get(ip) ?? null;
      if (probeFoundMac) {
        // Someone still answered for the address: typically the dead holder's kernel (a crashed
        // or stopped process leaves its alias behind). The election already decided; our
        // announcement took the address over.
        this.count('probe_conflicts_total');
        this.emit({ name: 'conflict', args: [{ ip, kind: 'probe', mac: probeFoundMac, message: `${probeFoundMac} answered the probe for ${ip}; taken over as elected and announced` }] });
      }
      this.emit({
        name: 'acquired',
        args: [{ ip, epoch: slot.epoch, interface: acquisition.ifname, tookMs: round1(this.now - acquisition.started), probeMs: round1(acquisition.probeMs), probeFoundMac }],
      });
    }
    const stillHeld = acquisition.up.filter((ip) => !acquisition.lost.has(ip));
    this.endAcquisition(op);
    for (const ip of acquisition.lost) if (this.slots.get(ip)?.state === 'held') this.startRestore(this.slots.get(ip) as Slot);
    const family = this.slots.get(acquisition.ips[0] as string)?.vip.family ?? 4;
    if (stillHeld.length) this.effects.push({ type: 'follow-up', ifname: acquisition.ifname, ips: stillHeld, extraHosts: this.config.announce.arpAllHosts ? this.peerNeighbours(family) : [] });
  }

  private endAcquisition(op: number): void {
    this.operations.delete(op);
    this.publishDue = true;
    this.refreshBindings(this.view(this.now));
  }

  /**
   * An acquisition failed at `step`: mark the VIP unhealthy here (peers take it). `takeDown`
   * says what is left to undo: services and address (true), the address only (false), or
   * nothing, the driver having undone it (null).
   */
  private giveUp(ip: string, step: string, error: Error, takeDown: boolean | null): void {
    const reason: UnhealthyReason = step === 'start services' ? 'listen-failed' : step === 'announce' || step === 'probe' ? 'announce-failed' : 'address-failed';
    const detail = `${step} for ${ip} failed: ${error.message}`;
    this.health.fail(ip, reason, detail, this.now + this.options.retryUnhealthyMs);
    this.count('acquire_failures_total');
    this.emit({ name: 'unhealthy', args: [{ ip, reason, detail }] });
    this.emit({ name: 'error', args: [{ ip, operation: `acquire (${step})`, error }] });
    if (takeDown === null) return;
    // Give the VIP up cleanly rather than hold an address nobody serves.
    const op = this.nextOp++;
    const slot = this.slots.get(ip) as Slot;
    this.operations.set(op, { kind: 'take-down', ip });
    this.effects.push({ type: 'take-down', op, ip, ifname: slot.vip.interface, cidr: this.cidr(ip), services: takeDown });
  }

  // --- releases and restores -----------------------------------------------------

  private startRelease(slot: Slot, reason: string, detail: string): void {
    this.transition(slot, 'release');
    const op = this.nextOp++;
    this.operations.set(op, { kind: 'release', ip: slot.vip.ip, reason, detail });
    // Outbound first: transports of a binding on this VIP close and sends in flight fail
    // (retryable) before the address goes.
    this.refreshBindings(this.view(this.now));
    this.effects.push({ type: 'release', op, ip: slot.vip.ip, ifname: slot.vip.interface, cidr: this.cidr(slot.vip.ip) });
  }

  private startRestore(slot: Slot): void {
    this.transition(slot, 'address-lost');
    const op = this.nextOp++;
    this.operations.set(op, { kind: 'restore', ip: slot.vip.ip });
    this.effects.push({ type: 'restore', op, ip: slot.vip.ip, ifname: slot.vip.interface, cidr: this.cidr(slot.vip.ip) });
  }

  private onAddressRemoved(ifname: string, address: string): void {
    const slot = this.slots.get(address);
    if (!slot || slot.vip.interface !== ifname || this.closing) return;
    if (slot.state === 'acquiring') {
      // Removed between our add and the end of the acquisition: restore it once that ends.
      for (const operation of this.operations.values()) if (operation.kind === 'acquire' && operation.ips.includes(address)) operation.lost.add(address);
      return;
    }
    // Someone removed a VIP we hold (an operator, a network manager): put it back and tell
    // the network again, or give the VIP up.
    if (slot.state === 'held') this.startRestore(slot);
  }

  private onLink(ifname: string, usable: boolean): void {
    if (!this.health.setLink(ifname, usable)) return;
    this.count('link_changes_total');
    // Back from a dead link we know nothing current about the peers (they timed out here
    // while we were cut off): listen one dead-after period before acquiring, as at boot.
    if (usable) this.resettle();
    else for (const slot of this.slots.values()) if (slot.vip.interface === ifname) this.emit({ name: 'unhealthy', args: [{ ip: slot.vip.ip, reason: 'link-down', detail: `link ${ifname} is down` }] });
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
    if (!this.reannounceAt.has(address)) this.reannounceAt.set(address, this.now + 2 * this.config.timers.heartbeatMs);
  }

  /** Re-announcements whose time has come: after a foreign claim, and the periodic ones. */
  private dueAnnouncements(): void {
    for (const [ip, at] of this.reannounceAt) {
      if (at > this.now) continue;
      this.reannounceAt.delete(ip);
      const slot = this.slots.get(ip) as Slot;
      if (slot.state !== 'held') continue;
      this.count('reannouncements_total');
      this.effects.push({ type: 'reannounce', ifname: slot.vip.interface, ips: [ip], count: 1, intervalMs: 0 });
    }
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
      moves: new Map(this.moves),
      neighbours: this.neighbours,
      aliases: live.map((s) => ({ ifname: s.vip.interface, cidr: this.cidr(s.vip.ip) })),
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

  /** Hosts our peers know (for arpAllHosts after a takeover), of one family. */
  private peerNeighbours(family: 4 | 6): Array<{ address: string; mac: string }> {
    const seen = new Set<string>();
    const out: Array<{ address: string; mac: string }> = [];
    for (const peer of this.peers) {
      for (const n of peer.neighbours) {
        const key = `${n.address} ${n.mac}`;
        if (seen.has(key) || n.address.includes(':') !== (family === 6)) continue;
        seen.add(key);
        out.push({ address: n.address, mac: n.mac });
      }
    }
    return out;
  }

  /** No acquisitions for one dead-after period (releases still happen). */
  private resettle(): void {
    this.settleUntil = Math.max(Number.isFinite(this.settleUntil) ? this.settleUntil : 0, this.now + this.config.timers.deadAfterMs);
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
      out.set(slot.vip.interface, [...(out.get(slot.vip.interface) ?? []), slot.vip.ip]);
    }
    return out;
  }

  private transition(slot: Slot, transition: VipTransition): void {
    slot.state = nextState(slot.state, transition, slot.vip.ip);
  }

  private cidr(ip: string): string {
    return `${ip}/${(this.slots.get(ip) as Slot).vip.prefix}`;
  }

  private emit(event: EngineEvent): void {
    this.events.push(event);
  }

  private count(name: string, by = 1): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + by);
  }
}

function round1(ms: number): number {
  return Math.round(ms * 10) / 10;
}

function flagKey(flags: VipFlags): string {
  return `${flags.conflict ? 'c' : ''}${flags.unsafe ? 'u' : ''}${flags.broken ? 'b' : ''}`;
}
