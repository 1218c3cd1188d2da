/**
 * Runs one schedule: N nodes (the real engine and membership each) on one
 * virtual clock, the faults applied at their times, and the invariants
 * checked after every step of every engine and every fault:
 *
 * - one holder: at most one running host has a VIP on its interface, except
 *   while the holders cannot all hear each other (a partition, a one-way
 *   block, loss, a stalled or dead process), and for at most DUAL_BOUND_MS
 *   after they can: each then hears the other's claim within a heartbeat or
 *   two (the first heartbeat marks the peer live, its holdings document is
 *   asked for on the next tick), and the worse claim releases at once (a
 *   release while another node holds the VIP does not drain).
 * - liveness: once nothing has been wrong for LIVE_BOUND_MS, every VIP with a
 *   live, healthy declarer is held by exactly one node, which the clients'
 *   neighbour entry points at.
 * - epochs grow: a node acquires a VIP with an epoch above every epoch it
 *   has heard for it.
 * - no orphan: on a clean network a VIP with a running, settled, healthy
 *   declarer is served within ORPHAN_BOUND_MS (700 ms), whatever its holder
 *   went through (crash, stall, leave, link down); plus the stretch of the
 *   silence limit that loss measured shortly before still earns (at most
 *   7 dead-afters).
 * - no steal: a node never adds a VIP's address while another host whose
 *   process lives has it, even when it cannot hear that peer (a deaf node).
 * - a node only holds what it declares; a BROKEN VIP is held by nobody (once
 *   both declarations are known to each other); a binding is local (its
 *   transport open) only on a node that holds its address.
 */
import type { ClusterConfig } from '../../lib/core';
import type { Effect } from '../../lib/runtime/engine-io';
import { SimNetwork } from './network';
import { Rng } from './rng';
import { FAULT_END, type Schedule } from './schedule';
import { Scheduler } from './scheduler';
import { MAX_RELEASE_MS, SimNode, type NodeObserver } from './sim-node';
import { macOf, Wire } from './wire';

export const HEARTBEAT_MS = 50;
export const DEAD_AFTER_MS = 200;
export const HOLD_DOWN_MS = 500;
export const DUAL_BOUND_MS = 4 * HEARTBEAT_MS + DEAD_AFTER_MS;
/** Boot or stall settle (dead-after) + hold-down + a release + retry of a failed VIP + slack. */
export const LIVE_BOUND_MS = 2 * DEAD_AFTER_MS + HOLD_DOWN_MS + MAX_RELEASE_MS + 400 + 600;
export const END_MS = FAULT_END + LIVE_BOUND_MS + 1000;
/** Longest a calm handover may look wrong: the longest drain, a probe, an acquisition, two checks. */
export const HANDOVER_MS = MAX_RELEASE_MS + 200;
/** Longest a VIP may go unserved while a healthy declarer runs: detection (dead-after), two heartbeats, the longest drain, a probe, slack. */
export const ORPHAN_BOUND_MS = DEAD_AFTER_MS + 2 * HEARTBEAT_MS + MAX_RELEASE_MS + 100;

export interface Violation {
  at: number;
  invariant: string;
  detail: string;
}

export interface SimResult {
  seed: number;
  steps: number;
  violations: Violation[];
  packets: { delivered: number; dropped: number };
}

export interface SimOptions {
  /** Hears one line per engine event (for --trace). */
  trace?: (line: string) => void;
  /** Hears each stretch a VIP went unserved while a healthy declarer ran, when it ends (ms). */
  orphan?: (ip: string, ms: number, at: number) => void;
  /** Simulated time to run to (ms; END_MS unless set: longer runs for long faults). */
  endMs?: number;
  /** Hears each peer-down a node's membership declares. */
  peerDown?: (node: string, peer: string, at: number) => void;
}

export async function simulate(schedule: Schedule, options: SimOptions = {}): Promise<SimResult> {
  const sched = new Scheduler();
  const rng = new Rng(schedule.seed ^ 0x9e3779b9);
  const net = new SimNetwork(sched, rng, 7946);
  const wire = new Wire((a, b) => net.sameLink(a as SimNode, b as SimNode));
  const violations: Violation[] = [];
  const violate = (invariant: string, detail: string): void => {
    if (violations.length < 20) violations.push({ at: Math.round(sched.now * 10) / 10, invariant, detail });
  };
  const addressOf = (name: string): string => `198.18.0.${10 + schedule.nodes.indexOf(name)}`;
  const byName = new Map<string, SimNode>();
  const dualSince = new Map<string, number>();
  const brokenSince = new Map<string, number>();
  const badSince = new Map<string, number>();
  const orphanSince = new Map<string, number>();
  const orphanStretch = new Map<string, number>();
  let cleanSince = 0;

  const observer: NodeObserver = {
    afterReady(node, effects, events) {
      if (options.trace) {
        const t = sched.now.toFixed(1);
        for (const e of events) if (e.name !== 'binding') options.trace(`${t} ${node.name} ${e.name} ${JSON.stringify(e.args[0], (k, v) => (k === 'flags' || k === 'error' ? undefined : v))}`);
        for (const e of effects) if (e.type !== 'publish' && e.type !== 'wake' && e.type !== 'sniff') options.trace(`${t} ${node.name} effect ${JSON.stringify(e)}`);
      }
      checkEpochs(node, effects);
      checkBindings(node);
      checkWire();
    },
    peerDown(node, peer) {
      options.peerDown?.(node.name, peer, sched.now);
    },
    beforeAdd(node, ip) {
      // No steal: a node never adds an address another live process's host has (it may not
      // hear that peer, but the wire answers its probe). A dead process's leftover alias is
      // fair game.
      // (Two nodes that probe at once, before either added it, race: that is a clash, settled by epochs.)
      const before = node.heldAtProbe.get(ip) ?? new Set<string>();
      const others = (wire.holders(ip) as SimNode[]).filter((h) => h !== node && h.processUp && before.has(h.name));
      // Known limit: the probe reports the first answer only. When it came from a dead process's
      // leftover alias (a takeover is right then), a live holder we cannot hear is missed.
      const answer = node.probeAnswer.get(ip);
      if (answer && !answer.processUp) return;
      if (others.length) violate('no steal', `${node.name} added ${ip} while ${others.map((o) => `${o.name} (${o.engine?.stateOf(ip) ?? 'no process'})`).join(', ')} had it`);
    },
  };

  function checkEpochs(node: SimNode, effects: Effect[]): void {
    for (const effect of effects) {
      if (effect.type !== 'publish') continue;
      for (const [ip, epoch] of effect.state.holdings) {
        const seen = node.maxSeen.get(ip) ?? 0;
        if (epoch > seen) node.maxSeen.set(ip, epoch);
        else if (!node.previouslyHeld(ip, epoch)) violate('epochs grow', `${node.name} acquired ${ip} at epoch ${epoch}, but had heard epoch ${seen}`);
      }
      node.rememberHeld(effect.state.holdings);
    }
    for (const peer of node.membership?.peers() ?? []) {
      for (const [ip, epoch] of peer.holdings) if (epoch > (node.maxSeen.get(ip) ?? 0)) node.maxSeen.set(ip, epoch);
    }
  }

  function checkBindings(node: SimNode): void {
    const engine = node.engine;
    if (!engine) return;
    for (const info of engine.bindings()) {
      if (!info.local) continue;
      const state = engine.stateOf(info.address);
      if (state !== 'held' && state !== 'restoring') violate('binding only on its holder', `${node.name} has ${info.name} local in state ${state}`);
      else if (state === 'held' && !wire.has(node, info.address) && !node.unheardRemovals.has(info.address)) violate('binding only on its holder', `${node.name} has ${info.name} local, but ${info.address} is not on its interface`);
    }
  }

  /** Two holders that can hear each other (a stalled process counts: its guardian acts for it). */
  function connected(a: SimNode, b: SimNode): boolean {
    return a.processUp && b.processUp && net.loss === 0 && net.canReach(a, b) && net.canReach(b, a);
  }

  function checkWire(): void {
    const t = sched.now;
    for (const vip of schedule.vips) {
      const holders = wire.holders(vip.ip) as SimNode[];
      for (const h of holders) if (!vip.declarers.includes(h.name)) violate('holds only what it declares', `${h.name} has ${vip.ip}`);
      const allConnected = holders.length >= 2 && holders.every((a) => holders.every((b) => a === b || connected(a, b)));
      if (!allConnected) dualSince.delete(vip.ip);
      else {
        const since = dualSince.get(vip.ip) ?? t;
        dualSince.set(vip.ip, since);
        if (t - since > DUAL_BOUND_MS) {
          violate('one holder', `${holders.map((h) => h.name).join(' and ')} have ${vip.ip} on their interfaces, connected for ${Math.round(t - since)} ms`);
          dualSince.set(vip.ip, t);
        }
      }
      if (vip.brokenBy) {
        const [a, b] = vip.declarers.map((d) => byName.get(d) as SimNode);
        // Both declarations known to each other: both running (a stalled declarer is dead to the other).
        const both = a && b && a.engine && b.engine && a.running && b.running && connected(a, b);
        if (!both) brokenSince.delete(vip.ip);
        else {
          const since = brokenSince.get(vip.ip) ?? t;
          brokenSince.set(vip.ip, since);
          if (t - since > DUAL_BOUND_MS && holders.length > 0) violate('BROKEN is held by nobody', `${holders.map((h) => h.name).join(', ')} hold${holders.length === 1 ? 's' : ''} BROKEN ${vip.ip}`);
        }
      }
    }
  }

  /**
   * No orphan: on a clean network, a VIP with a running, settled, healthy declarer (with quorum
   * when quorum is on) is held by a running node within ORPHAN_BOUND_MS, whatever happened to
   * its holder (crash, stall, leave, link down, an address removed).
   */
  function checkOrphans(): void {
    const t = sched.now;
    for (const vip of schedule.vips) {
      const candidates = vip.declarers
        .map((d) => byName.get(d) as SimNode)
        .filter((n) => {
          const engine = n.engine;
          if (!engine || !n.running || !n.linkUp || n.closing || !engine.isSettled(t) || !engine.quorum) return false;
          // Blocked by the wire is no excuse: whoever answers must be serving it.
          const problem = engine.vips().find((v) => v.vip.ip === vip.ip)?.problem;
          return problem === undefined || problem.reason === 'held-on-wire';
        });
      const served = [...byName.values()].some((n) => n.running && n.engine?.stateOf(vip.ip) === 'held' && wire.has(n, vip.ip));
      if (vip.brokenBy || !net.clean || candidates.length === 0 || served) {
        const since = orphanSince.get(vip.ip);
        if (since !== undefined && options.orphan) options.orphan(vip.ip, Math.round((t - since) * 10) / 10, Math.round(since * 10) / 10);
        orphanSince.delete(vip.ip);
        orphanStretch.delete(vip.ip);
        continue;
      }
      const since = orphanSince.get(vip.ip) ?? t;
      orphanSince.set(vip.ip, since);
      // Detection takes longer under loss, by design (loss-estimate.ts), and the estimates fade
      // only seconds after the network is clean again: the bound grows by the longest stretch of
      // a silence limit a candidate has reckoned with during this orphan.
      const stretch = Math.max(orphanStretch.get(vip.ip) ?? 0, ...candidates.flatMap((c) => (c.membership?.peers() ?? []).map((p) => p.silenceLimitMs - DEAD_AFTER_MS)));
      orphanStretch.set(vip.ip, stretch);
      if (t - since > ORPHAN_BOUND_MS + stretch) {
        violate('no orphan', `${vip.ip} served by no running node for ${Math.round(t - since)} ms while ${candidates.map((c) => c.name).join(', ')} could`);
        orphanSince.set(vip.ip, t);
      }
    }
  }

  function allWell(): boolean {
    return net.clean && [...byName.values()].every((n) => n.running && n.linkUp && n.hostUp && !n.closing && n.faults.addAddress === 0);
  }

  function checkLiveness(): void {
    const t = sched.now;
    if (!allWell()) {
      cleanSince = Infinity;
      return;
    }
    if (!Number.isFinite(cleanSince)) cleanSince = t;
    if (t - cleanSince < LIVE_BOUND_MS) return;
    for (const vip of schedule.vips) {
      if (vip.brokenBy) continue;
      const holders = wire.holders(vip.ip) as SimNode[];
      const engines = [...byName.values()].filter((n) => n.engine?.stateOf(vip.ip) === 'held');
      const who = holders.map((h) => h.name).join(', ') || 'nobody';
      let problem: string | null = null;
      if (holders.length !== 1 || engines.length !== 1 || engines[0] !== holders[0]) problem = `on the wire ${who}, held per engines by ${engines.map((e) => e.name).join(', ') || 'nobody'}`;
      else if (wire.neighbour.get(vip.ip) !== holders[0]?.name) problem = `clients point at ${wire.neighbour.get(vip.ip) ?? 'nothing'}, held by ${who}`;
      // A handover in calm (a preferred node back after its hold-down or back-off) passes
      // through these states: only one that lasts longer than a release and an acquisition is wrong.
      if (problem === null) badSince.delete(vip.ip);
      else if (!badSince.has(vip.ip)) badSince.set(vip.ip, t);
      else if (t - (badSince.get(vip.ip) as number) > HANDOVER_MS) {
        violate('liveness', `${vip.ip}: ${problem} for ${Math.round(t - (badSince.get(vip.ip) as number))} ms after ${Math.round(t - cleanSince)} ms of calm`);
        badSince.delete(vip.ip);
        cleanSince = t;
      }
    }
  }

  for (const name of schedule.nodes) {
    const config: ClusterConfig = {
      node: name,
      cluster: { id: 'sim', secret: 'simulation secret, sixteen+ bytes', bind: addressOf(name), port: 7946, peers: schedule.nodes.map(addressOf) },
      listeners: schedule.vips.filter((v) => v.kind === 'listener' && v.declarers.includes(name)).map((v) => `${v.ip}:25`),
      bindings: schedule.vips
        .filter((v) => v.kind === 'binding' && v.declarers.includes(name))
        .map((v) => ({ name: v.brokenBy === name ? 'broken-other' : `b-${v.ip.split('.')[3]}`, address: v.ip })),
      vips: Object.fromEntries(schedule.vips.filter((v) => v.preferred && v.declarers.includes(name)).map((v) => [v.ip, { preferred: v.preferred as string }])),
      topology: [{ cidr: '198.18.1.0/24', interface: 'eth0' }],
      timers: { heartbeatMs: HEARTBEAT_MS, deadAfterMs: DEAD_AFTER_MS, holdDownMs: HOLD_DOWN_MS },
      quorum: schedule.quorum,
    };
    const node = new SimNode(name, addressOf(name), config, sched, net, wire, rng, observer, 'eth0');
    node.neighbourHosts = schedule.nodes.map((n) => ({ address: addressOf(n), mac: macOf(n) }));
    byName.set(name, node);
    net.add(node);
  }

  const pending: Array<{ at: number; run: () => unknown }> = [];
  // Every fault, even a momentary one (a foreign claim, a move), starts the calm period anew.
  const at = (time: number, run: () => unknown): void =>
    void pending.push({
      at: time,
      run: () => {
        cleanSince = Infinity;
        return run();
      },
    });
  // Nodes boot within the first 300 ms, in an order drawn from the seed.
  for (const node of byName.values()) at(rng.int(0, 300), () => node.boot());
  for (const f of schedule.faults) {
    const node = 'node' in f ? (byName.get(f.node) as SimNode) : null;
    switch (f.kind) {
      case 'loss':
        at(f.at, () => void (net.loss = f.p));
        at(f.until, () => void (net.loss = 0));
        break;
      case 'block':
        at(f.at, () => void net.blocked.add(`${f.from}>${f.to}`));
        at(f.until, () => void net.blocked.delete(`${f.from}>${f.to}`));
        break;
      case 'deaf':
        at(f.at, () => schedule.nodes.forEach((o) => o !== f.node && net.blocked.add(`${o}>${f.node}`)));
        at(f.until, () => schedule.nodes.forEach((o) => net.blocked.delete(`${o}>${f.node}`)));
        break;
      case 'partition':
        at(f.at, () => void (net.partition = new Map(f.sides.flatMap((side, i) => side.map((name) => [name, i] as [string, number])))));
        at(f.until, () => void (net.partition = null));
        break;
      case 'stall':
        at(f.at, () => node?.processUp && node.stall(f.ms));
        break;
      case 'crash':
        at(f.at, () => node?.processUp && node.crash(f.reaper));
        at(f.restartAt, () => (node && !node.processUp && node.hostUp ? node.boot() : undefined));
        break;
      case 'power':
        at(f.at, () => {
          if (!node?.hostUp) return;
          node.crash(false);
          node.hostUp = false;
        });
        at(f.restartAt, () => {
          if (!node || node.hostUp) return;
          // A host that lost power comes back without its aliases.
          for (const ip of wire.of(node)) wire.remove(node, ip, false);
          node.hostUp = true;
          return node.boot();
        });
        break;
      case 'leave':
        at(f.at, () => node?.leave());
        at(f.restartAt, () => (node && !node.processUp && node.hostUp ? node.boot() : undefined));
        break;
      case 'link':
        at(f.at, () => node?.setLink(false));
        at(f.until, () => node?.setLink(true));
        break;
      case 'remove':
        at(f.at, () => node?.removeBehindBack(f.ip));
        break;
      case 'foreign':
        at(f.at, () => wire.claim(f.ip, 'foreign-host'));
        break;
      case 'opfail':
        at(f.at, () => node && (node.faults = { addAddress: f.p / 3, startServices: f.p, announce: f.p / 3, probe: f.p / 5 }));
        at(f.until, () => node && (node.faults = { addAddress: 0, startServices: 0, announce: 0, probe: 0 }));
        break;
      case 'move':
        at(f.at, () => {
          try {
            if (node?.engine && node.running) node.engine.move(f.ip, f.target, sched.now, sched.now);
            node?.step({ type: 'tick', now: 0 });
          } catch {
            // An operator's refused move (not a participant, BROKEN, ...) changes nothing.
          }
        });
        break;
    }
  }
  pending.sort((a, b) => a.at - b.at);
  // The guardians look every 5 ms.
  const endMs = options.endMs ?? END_MS;
  for (let t = 0; t <= endMs; t += 5) pending.push({ at: t, run: () => byName.forEach((n) => n.guard()) });
  // Liveness is looked at every 50 ms of virtual time.
  for (let t = 0; t <= endMs; t += 50) pending.push({ at: t, run: checkLiveness });
  for (let t = 0; t <= endMs; t += 10) pending.push({ at: t, run: checkOrphans });
  pending.sort((a, b) => a.at - b.at);

  for (const item of pending) {
    while (sched.runOne(item.at)) {
      if (violations.length >= 20) break;
    }
    sched.now = Math.max(sched.now, item.at);
    await item.run();
    checkWire();
  }
  while (sched.runOne(endMs)) if (violations.length >= 20) break;
  return { seed: schedule.seed, steps: sched.steps, violations, packets: { delivered: net.delivered, dropped: net.dropped } };
}
