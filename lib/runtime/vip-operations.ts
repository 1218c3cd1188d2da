/**
 * The operations the engine starts on a VIP, each a short sequence of effects
 * whose results come back through step({ type: 'done' }):
 *
 *   acquire  probe (one per interface batch) → publish the claim → bring up
 *            (address, then services) a chunk of VIPs → announce the chunk →
 *            held, while the next chunk comes up
 *   give up  take down what an acquisition had done (services, address)
 *   release  drain services and sessions, remove the address → idle
 *   restore  put back an address removed behind our back, announce it
 *
 * The engine decides which VIPs to acquire or release; this file only knows
 * the steps of each, and what a failed step means for the VIP.
 */
import type { ResolvedConfig, ResolvedVip } from '../core';
import type { Effect, EngineEvent, OperationResult } from './engine-io';
import type { UnhealthyReason } from './health';
import type { VipState, VipTransition } from './vip-lifecycle';

/** This node's side of one managed VIP. */
export interface Slot {
  vip: ResolvedVip;
  state: VipState;
  epoch: number;
}

/** What the operations need from the engine. */
export interface OperationContext {
  readonly config: ResolvedConfig;
  now(): number;
  slot(ip: string): Slot;
  transition(slot: Slot, transition: VipTransition): void;
  effect(effect: Effect): void;
  emit(event: EngineEvent): void;
  count(name: string, by?: number): void;
  /**
   * Marks `ip` unhealthy here until the retry back-off ends (peers elect someone else).
   * `linkWentDown`: the operation failed because its interface went down under it (ENETDOWN):
   * the link, not the VIP, failed; link-down health covers it from the watch event on, so the
   * VIP is tried again soon after instead of after a back-off that outlives the link's return.
   */
  markUnhealthy(ip: string, reason: UnhealthyReason, detail: string, linkWentDown?: boolean): void;
  /** Tells peers and the reaper now (before the effects that follow). */
  publishNow(): void;
  publishSoon(): void;
  bindingsChanged(): void;
  /** Hosts peers know, for unicast ARP after a takeover. */
  knownHosts(family: 4 | 6): Array<{ address: string; mac: string }>;
  /**
   * True when `mac`'s answer to our probe for `ip` comes from a leftover alias, not from a live
   * holder: it is the MAC of the VIP's last holder, whose process is proven gone (its host
   * refused our heartbeats).
   */
  leftoverExpected(ip: string, mac: string): boolean;
  /**
   * We claim `ip` at `epoch` (raised above the claims heard during the probe): a later claim of
   * ours must outbid it too, after a release while nobody else claimed it higher (the
   * simulation, seed 400637: re-acquired at its own epoch after a quorum loss).
   */
  claimed(ip: string, epoch: number): void;
  /** The highest epoch any peer advertises for `ip` now. */
  highestHeardEpoch(ip: string): number;
  /** An acquisition of `ip` succeeded: its failure back-off starts over. */
  acquiredOk(ip: string): void;
}

/**
 * At most this many VIPs come up together. A node taking over 500 VIPs brought them all up in
 * one go: 500 listeners started in one turn of the event loop (its heartbeats waited), and no
 * client could connect to any VIP before the last was up, because the one announcement came
 * after all of them. Chunk by chunk, each chunk is announced (and reachable) as soon as it is up,
 * while the next comes up, and each turn does a chunk's work only.
 */
export const ACQUIRE_CHUNK = 64;

/**
 * One interface's batch of acquisitions: one probe, then one operation per chunk of
 * ACQUIRE_CHUNK VIPs (its bring-ups, one announcement).
 */
interface Acquisition {
  kind: 'acquire';
  ifname: string;
  /** The VIPs of this operation: the whole batch while probing, then this chunk's. */
  ips: string[];
  /** Claimed VIPs whose chunk has not started yet (in state acquiring). */
  later: string[];
  started: number;
  probeMs: number;
  found: ReadonlyMap<string, string | null>;
  pending: Set<string>;
  up: string[];
  /** Addresses removed behind our back before the acquisition ended: restored once it ends. */
  lost: Set<string>;
}

type Operation = Acquisition | { kind: 'take-down'; ip: string } | { kind: 'release'; ip: string; reason: string; detail: string } | { kind: 'restore'; ip: string };

export class VipOperations {
  private readonly inFlight = new Map<number, Operation>();
  private nextOp = 1;

  constructor(private readonly ctx: OperationContext) {}

  get idle(): boolean {
    return this.inFlight.size === 0;
  }

  /**
   * Acquires VIPs in batches, one per interface: one probe call and one announcement per
   * interface. A node taking over hundreds of VIPs would otherwise queue hundreds of probes
   * and announcements on libuv's threads, one after another.
   */
  acquire(batch: Array<{ slot: Slot; epoch: number }>): void {
    const byInterface = new Map<string, string[]>();
    for (const { slot, epoch } of batch) {
      this.ctx.transition(slot, 'acquire');
      slot.epoch = epoch;
      const list = byInterface.get(slot.vip.interface);
      if (list) list.push(slot.vip.ip);
      else byInterface.set(slot.vip.interface, [slot.vip.ip]);
    }
    const timeoutMs = this.ctx.config.probe.timeoutMs;
    for (const [ifname, ips] of byInterface) {
      const op = this.nextOp++;
      const acquisition: Acquisition = { kind: 'acquire', ifname, ips, later: [], started: this.ctx.now(), probeMs: 0, found: new Map(), pending: new Set(), up: [], lost: new Set() };
      this.inFlight.set(op, acquisition);
      if (timeoutMs > 0) this.ctx.effect({ type: 'probe', op, ifname, ips, timeoutMs });
      else this.claimAndBringUp(op, acquisition);
    }
  }

  /** Releases a held VIP; `urgent` removes the address before anything else (see the release effect). */
  release(slot: Slot, reason: string, detail: string, urgent = false): void {
    this.ctx.transition(slot, 'release');
    const op = this.nextOp++;
    this.inFlight.set(op, { kind: 'release', ip: slot.vip.ip, reason, detail });
    // Outbound first: transports of a binding on this VIP close and sends in flight fail
    // (retryable) before the address goes. (A listener VIP has none: recomputing every binding
    // for each of hundreds of releases made a mass release quadratic.)
    if (slot.vip.binding !== null) this.ctx.bindingsChanged();
    this.ctx.effect({ type: 'release', op, ip: slot.vip.ip, ifname: slot.vip.interface, cidr: cidrOf(slot.vip), urgent });
  }

  /** The address of a VIP left our interface: restored now if held, or once its acquisition ends. */
  addressLost(slot: Slot): void {
    if (slot.state === 'acquiring') {
      for (const operation of this.inFlight.values()) if (operation.kind === 'acquire' && operation.ips.includes(slot.vip.ip)) operation.lost.add(slot.vip.ip);
    } else if (slot.state === 'held') {
      this.restore(slot);
    }
  }

  done(result: OperationResult): void {
    const operation = this.inFlight.get(result.op);
    if (!operation) return;
    if (operation.kind === 'acquire') return this.acquisitionStep(result.op, operation, result);
    this.inFlight.delete(result.op);
    const slot = this.ctx.slot(operation.ip);
    if (operation.kind === 'take-down') {
      this.ctx.transition(slot, 'acquire-failed');
      // Peers must hear that we no longer claim it, or they wait for us to release it.
      this.ctx.publishSoon();
      return;
    }
    if (operation.kind === 'release') return this.released(slot, operation, result);
    if (result.ok) {
      this.ctx.transition(slot, 'restored');
      this.ctx.count('addresses_restored_total');
      this.ctx.emit({ name: 'address-restored', args: [{ ip: slot.vip.ip, interface: slot.vip.interface }] });
      return;
    }
    // An IPv6 address is flushed when its link goes down (keep_addr_on_down=0), before the
    // watch event says the link is down: the restore then fails with ENETDOWN.
    const detail = `${slot.vip.ip} was removed from ${slot.vip.interface} and could not be restored: ${result.error.message}`;
    this.ctx.markUnhealthy(slot.vip.ip, 'address-failed', detail, linkWentDown(result.error));
    this.ctx.emit({ name: 'error', args: [{ ip: slot.vip.ip, operation: 'restore address', error: result.error }] });
    this.ctx.transition(slot, 'restore-failed');
  }

  private released(slot: Slot, operation: { ip: string; reason: string; detail: string }, result: OperationResult): void {
    if (result.kind === 'release' && result.ok) {
      this.ctx.count('sessions_drained_total', result.drained);
      this.ctx.count('sessions_reset_total', result.reset);
      this.ctx.count('late_sessions_reset_total', result.lateReset);
      if (result.timedOut) this.ctx.count('session_drain_timeouts_total');
      for (const e of result.errors) this.ctx.emit({ name: 'error', args: [{ ip: operation.ip, operation: e.operation, error: e.error }] });
    } else if (!result.ok) {
      this.ctx.emit({ name: 'error', args: [{ ip: operation.ip, operation: 'release', error: result.error }] });
    }
    this.ctx.transition(slot, 'released');
    this.ctx.count('releases_total');
    this.ctx.publishSoon();
    this.ctx.emit({ name: 'released', args: [{ ip: operation.ip, reason: operation.reason, detail: operation.detail }] });
  }

  private restore(slot: Slot): void {
    this.ctx.transition(slot, 'address-lost');
    const op = this.nextOp++;
    this.inFlight.set(op, { kind: 'restore', ip: slot.vip.ip });
    this.ctx.effect({ type: 'restore', op, ip: slot.vip.ip, ifname: slot.vip.interface, cidr: cidrOf(slot.vip) });
  }

  /**
   * The probe passed: claim the VIPs in our heartbeats (and tell the reaper) before any address
   * is added, so a peer that computed a different owner sees the claims and the epoch order
   * settles it; then bring up the first chunk. Listeners come up before the announcement moves
   * clients here, so the first connection finds one.
   */
  private claimAndBringUp(op: number, acquisition: Acquisition): void {
    for (const ip of acquisition.ips) {
      const slot = this.ctx.slot(ip);
      this.ctx.transition(slot, 'probed');
      // A claim heard during the probe (a peer acquiring too) must be outbid as well.
      slot.epoch = Math.max(slot.epoch, this.ctx.highestHeardEpoch(ip) + 1);
      this.ctx.claimed(ip, slot.epoch);
    }
    this.ctx.publishNow();
    acquisition.later = acquisition.ips;
    acquisition.ips = [];
    this.bringUpChunk(op, acquisition);
  }

  /** Starts the bring-ups of the next chunk of `acquisition`'s claimed VIPs under `op`. */
  private bringUpChunk(op: number, acquisition: Acquisition): void {
    acquisition.ips = acquisition.later.slice(0, ACQUIRE_CHUNK);
    acquisition.later = acquisition.later.slice(ACQUIRE_CHUNK);
    for (const ip of acquisition.ips) {
      acquisition.pending.add(ip);
      this.ctx.effect({ type: 'bring-up', op, ip, ifname: acquisition.ifname, cidr: cidrOf(this.ctx.slot(ip).vip) });
    }
  }

  /** This chunk is up: its successor (a new operation) comes up while this one is announced. */
  private nextChunk(acquisition: Acquisition): void {
    if (acquisition.later.length === 0) return;
    const op = this.nextOp++;
    const next: Acquisition = { ...acquisition, ips: [], later: acquisition.later, pending: new Set(), up: [], lost: new Set() };
    acquisition.later = [];
    this.inFlight.set(op, next);
    this.bringUpChunk(op, next);
  }

  private acquisitionStep(op: number, acquisition: Acquisition, result: OperationResult): void {
    if (result.kind === 'probe') {
      if (!result.ok) {
        // Nothing was claimed or added yet: the VIP is simply free here again.
        for (const ip of acquisition.ips) {
          this.giveUp(ip, 'probe', result.error, null);
          this.ctx.transition(this.ctx.slot(ip), 'acquire-failed');
        }
        return this.endAcquisition(op, acquisition);
      }
      acquisition.found = result.found;
      acquisition.probeMs = result.ms;
      // Another host answers for the address: a live holder we cannot hear (our inbound is lost,
      // or its heartbeats are), since a dead process's aliases are gone with its reaper. Taking
      // it would make two holders; the wire has the last word. Only an answer from a host whose
      // process is proven gone (a leftover alias) is taken over.
      for (const ip of acquisition.ips) {
        const mac = result.found.get(ip);
        if (!mac || this.ctx.leftoverExpected(ip, mac)) continue;
        this.ctx.count('acquisitions_blocked_total');
        this.ctx.emit({ name: 'conflict', args: [{ ip, kind: 'probe', mac, message: `${mac} answers for ${ip}: a host this node cannot hear holds it; not taken` }] });
        this.ctx.markUnhealthy(ip, 'held-on-wire', `${mac} answered the probe for ${ip}: another host holds it`);
        this.ctx.transition(this.ctx.slot(ip), 'acquire-failed');
      }
      acquisition.ips = acquisition.ips.filter((ip) => this.ctx.slot(ip).state === 'probing');
      if (acquisition.ips.length === 0) return this.endAcquisition(op, acquisition);
      return this.claimAndBringUp(op, acquisition);
    }
    if (result.kind === 'bring-up') {
      acquisition.pending.delete(result.ip);
      if (result.ok) acquisition.up.push(result.ip);
      else {
        // The driver already undid what it did; the VIP is free here again.
        this.giveUp(result.ip, result.step, result.error, null);
        this.ctx.transition(this.ctx.slot(result.ip), 'acquire-failed');
      }
      if (acquisition.pending.size > 0) return;
      // The announcement first: it gets libuv's threads before the next chunk's addresses.
      if (acquisition.up.length > 0) this.ctx.effect({ type: 'announce', op, ifname: acquisition.ifname, ips: [...acquisition.up] });
      this.nextChunk(acquisition);
      if (acquisition.up.length === 0) this.endAcquisition(op, acquisition);
      return;
    }
    if (result.kind !== 'announce') return;
    if (!result.ok) {
      for (const ip of acquisition.up) this.giveUp(ip, 'announce', result.error, true);
      return this.endAcquisition(op, acquisition);
    }
    this.acquired(acquisition);
    this.endAcquisition(op, acquisition);
    for (const ip of acquisition.lost) {
      const slot = this.ctx.slot(ip);
      if (slot.state === 'held') this.restore(slot);
    }
    const stillHeld = acquisition.up.filter((ip) => !acquisition.lost.has(ip));
    const family = this.ctx.slot(acquisition.ips[0] as string).vip.family;
    if (stillHeld.length) this.ctx.effect({ type: 'follow-up', ifname: acquisition.ifname, ips: stillHeld, extraHosts: this.ctx.config.announce.arpAllHosts ? this.ctx.knownHosts(family) : [] });
  }

  private acquired(acquisition: Acquisition): void {
    for (const ip of acquisition.up) {
      const slot = this.ctx.slot(ip);
      this.ctx.transition(slot, 'acquired');
      this.ctx.count('acquisitions_total');
      this.ctx.acquiredOk(ip);
      const probeFoundMac = acquisition.found.get(ip) ?? null;
      if (probeFoundMac) {
        // Someone still answered for the address: typically the dead holder's kernel (a crashed
        // or stopped process leaves its alias behind). The election already decided; our
        // announcement took the address over.
        this.ctx.count('probe_conflicts_total');
        this.ctx.emit({ name: 'conflict', args: [{ ip, kind: 'probe', mac: probeFoundMac, message: `${probeFoundMac} answered the probe for ${ip}; taken over as elected and announced` }] });
      }
      const tookMs = round1(this.ctx.now() - acquisition.started);
      this.ctx.emit({ name: 'acquired', args: [{ ip, epoch: slot.epoch, interface: acquisition.ifname, tookMs, probeMs: round1(acquisition.probeMs), probeFoundMac }] });
    }
  }

  private endAcquisition(op: number, acquisition: Acquisition): void {
    this.inFlight.delete(op);
    this.ctx.publishSoon();
    if (acquisition.ips.some((ip) => this.ctx.slot(ip).vip.binding !== null)) this.ctx.bindingsChanged();
  }

  /**
   * An acquisition failed at `step`: mark the VIP unhealthy here (peers take it). `takeDown`
   * says what is left to undo: services and address (true), the address only (false), or
   * nothing, nothing having been added or the driver having undone it (null).
   */
  private giveUp(ip: string, step: string, error: Error, takeDown: boolean | null): void {
    const reason: UnhealthyReason = step === 'start services' ? 'listen-failed' : step === 'announce' || step === 'probe' ? 'announce-failed' : 'address-failed';
    this.ctx.markUnhealthy(ip, reason, `${step} for ${ip} failed: ${error.message}`, linkWentDown(error));
    this.ctx.count('acquire_failures_total');
    this.ctx.emit({ name: 'error', args: [{ ip, operation: `acquire (${step})`, error }] });
    if (takeDown === null) return;
    // Give the VIP up cleanly rather than hold an address nobody serves.
    const op = this.nextOp++;
    const slot = this.ctx.slot(ip);
    this.inFlight.set(op, { kind: 'take-down', ip });
    this.ctx.effect({ type: 'take-down', op, ip, ifname: slot.vip.interface, cidr: cidrOf(slot.vip), services: takeDown });
  }
}

/** The operation failed because its interface is down (the link, not the VIP, failed). */
function linkWentDown(error: Error): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENETDOWN';
}

export function cidrOf(vip: ResolvedVip): string {
  return `${vip.ip}/${vip.prefix}`;
}

function round1(ms: number): number {
  return Math.round(ms * 10) / 10;
}
