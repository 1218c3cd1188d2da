/**
 * One simulated node: the real VipEngine and the real Membership, on the
 * virtual clock and the in-memory network, with an executor that runs the
 * engine's effects the way lib/runtime/driver.ts does, against the wire model,
 * with latencies and injected failures from the seed. Crash, restart, stall,
 * link down and graceful leave act on it as they would on a process.
 */
import { declare, encodeDeclaration, resolveConfig, type ClusterConfig, type ResolvedConfig } from '../../lib/core';
import { VipEngine } from '../../lib/runtime/engine';
import type { Effect, EngineEvent, EngineInput, OperationResult } from '../../lib/runtime/engine-io';
import { DeclarationCache } from '../../lib/runtime/view-builder';
import { Membership, type PeerState } from '../../lib/transport';
import type { NetHost, SimNetwork } from './network';
import type { Rng } from './rng';
import type { Scheduler } from './scheduler';
import { macOf, type Wire, type WireHost } from './wire';

/** Failure rates of the node's operations, set by the schedule. */
export interface OperationFaults {
  addAddress: number;
  startServices: number;
  announce: number;
  probe: number;
}

export const NO_FAULTS: OperationFaults = { addAddress: 0, startServices: 0, announce: 0, probe: 0 };

export interface NodeObserver {
  /** After every step of the node's engine: the simulation checks its invariants. */
  afterReady(node: SimNode, effects: Effect[], events: EngineEvent[]): void;
  /** The node adds a VIP's address (to check nobody alive has it). */
  beforeAdd(node: SimNode, ip: string): void;
  /** The node's membership declared a peer down (a false one under loss is a flap). */
  peerDown?(node: SimNode, peer: string): void;
}

export const RETRY_UNHEALTHY_MS = 400;
/** The guardian's stall tolerance: dead-after minus one heartbeat, as the runtime's default. */
export const GUARD_MS = 200 - 50;
/** Longest release drain the simulation draws (a bound of the dual-holder invariant). */
export const MAX_RELEASE_MS = 300;

export class SimNode implements NetHost, WireHost {
  generation = 0;
  stalledUntil = 0;
  processUp = false;
  hostUp = true;
  linkUp = true;
  handlers: NetHost['handlers'] = null;
  readonly sniffing = new Set<string>();
  /** Releases draining now: ip → ends the drain (a 'hurry' effect calls it early). */
  private readonly draining = new Map<string, () => void>();
  readonly resolved: ResolvedConfig;
  faults: OperationFaults = NO_FAULTS;
  engine: VipEngine | null = null;
  membership: Membership | null = null;
  /** Highest epoch this process has heard (peers' holdings) or used, per VIP. */
  readonly maxSeen = new Map<string, number>();
  closing = false;
  boots = 0;
  /** When the process last checked in with its guardian (the alias reaper), and whether the guardian acted since. */
  lastCheckIn = 0;
  guarded = false;
  /** Every node's cluster address and MAC (what this host's neighbour table learns). */
  neighbourHosts: Array<{ address: string; mac: string }> = [];
  /** Per VIP, the host whose answer the last probe reported (the addon reports the first). */
  readonly probeAnswer = new Map<string, SimNode | null>();
  /** Per VIP, the hosts that had it when this node's last probe for it went out. */
  readonly heldAtProbe = new Map<string, Set<string>>();
  /** The aliases the guardian knows (the last publication). */
  guardedAliases: string[] = [];
  /** VIP → epoch this process published holding (an epoch seen again is the same holding, not a new one). */
  private readonly heldEpochs = new Map<string, number>();
  private flushQueued = false;
  private wake: { cancel(): void } | null = null;
  private readonly wallBase: number;

  constructor(
    readonly name: string,
    readonly address: string,
    readonly config: ClusterConfig,
    private readonly sched: Scheduler,
    private readonly net: SimNetwork,
    private readonly wire: Wire,
    private readonly rng: Rng,
    private readonly observer: NodeObserver,
    private readonly ifname: string,
  ) {
    this.resolved = resolveConfig(config, { hostname: name, interfaces: [{ name: ifname, up: true, addresses: [{ family: 4, address, prefix: 24 }] }] });
    // Clocks of different hosts disagree by up to a second (operator move order).
    this.wallBase = 1_800_000_000_000 + rng.int(0, 1000);
  }

  /** Starts the process: leftover aliases of a crashed run are removed first, as the driver does. */
  async boot(): Promise<void> {
    this.generation++;
    this.boots++;
    this.processUp = true;
    this.closing = false;
    this.stalledUntil = 0;
    this.sniffing.clear();
    this.unheardRemovals.clear();
    this.maxSeen.clear();
    this.heldEpochs.clear();
    let leftovers = 0;
    for (const ip of this.wire.of(this)) {
      this.wire.remove(this, ip, false);
      leftovers++;
    }
    const cache = new DeclarationCache();
    const declaration = declare(this.resolved);
    const bytes = encodeDeclaration(declaration);
    const engine = new VipEngine(this.resolved, declaration, cache, { retryUnhealthyMs: RETRY_UNHEALTHY_MS, declarationWaitMs: 3000 });
    const clock = this.sched.clockFor(this, this.wallBase);
    const membership = new Membership({
      clusterId: this.resolved.cluster.id,
      node: this.name,
      secret: this.resolved.cluster.secret,
      bind: this.address,
      port: this.net.port,
      peers: this.resolved.cluster.peers.map((p) => ({ address: p.ip, port: p.port })),
      heartbeatMs: this.resolved.timers.heartbeatMs,
      deadAfterMs: this.resolved.timers.deadAfterMs,
      vipsOf: (b) => cache.vipsOf(b),
      incarnation: (BigInt(Math.floor(clock.wall())) << 16n) | BigInt(this.rng.int(0, 65535)),
      clock,
      transport: this.net.transportFor(this),
    });
    this.engine = engine;
    this.membership = membership;
    this.declarationBytes = bytes;
    const peers = (change?: Extract<EngineInput, { type: 'peers' }>['change']): void => this.step({ type: 'peers', now: 0, peers: membership.peers(), ...(change ? { change } : {}) });
    membership.on('peer-up', (p: PeerState) => peers({ kind: 'up', node: p.node, address: p.address }));
    membership.on('peer-down', (p: PeerState, reason: string) => {
      this.observer.peerDown?.(this, p.node);
      peers({ kind: 'down', node: p.node, address: p.address, reason });
    });
    membership.on('peer-restart', (p: PeerState) => peers({ kind: 'restart', node: p.node }));
    membership.on('change', (p: PeerState) => peers({ kind: 'change', node: p.node }));
    membership.on('neighbours', () => peers());
    membership.on('stall', (e: { lagMs: number }) => this.step({ type: 'stall', now: 0, lagMs: e.lagMs }));
    membership.on('refused', (addresses: string[]) => this.step({ type: 'refused', now: 0, addresses }));
    membership.on('error', () => undefined);
    const generation = this.generation;
    await membership.start();
    if (generation !== this.generation) return;
    this.step({ type: 'start', now: 0, links: [{ ifname: this.ifname, usable: this.linkUp }], leftoversRemoved: leftovers });
    // Its own MAC, shared as the neighbour entry of its cluster address (as the facade does).
    // Its kernel knows the other nodes' MACs too (heartbeats went to their addresses).
    this.step({ type: 'neighbours', now: 0, list: [{ address: this.address, mac: macOf(this.name) }, ...this.neighbourHosts.filter((n) => n.address !== this.address)] });
    this.flush();
    this.checkIn(generation);
  }

  /** Check-ins from the event loop, as the facade's timer sends them (none while stalled). */
  private checkIn(generation: number): void {
    if (generation !== this.generation) return;
    this.lastCheckIn = this.sched.now;
    this.guarded = false;
    this.sched.after(Math.floor(GUARD_MS / 4), this, () => this.checkIn(generation));
  }

  /** The guardian, outside the node's event loop: removes the aliases of a node silent for GUARD_MS. */
  guard(): void {
    if (!this.processUp || this.guarded || !this.hostUp || this.sched.now - this.lastCheckIn < GUARD_MS) return;
    this.guarded = true;
    for (const ip of this.guardedAliases) this.wire.remove(this, ip);
  }

  private declarationBytes: Buffer = Buffer.alloc(0);

  /** True when this process already published holding `ip` at `epoch` (not a new acquisition). */
  previouslyHeld(ip: string, epoch: number): boolean {
    return this.heldEpochs.get(ip) === epoch;
  }

  rememberHeld(holdings: ReadonlyMap<string, number>): void {
    for (const ip of [...this.heldEpochs.keys()]) if (!holdings.has(ip)) this.heldEpochs.delete(ip);
    for (const [ip, epoch] of holdings) this.heldEpochs.set(ip, epoch);
  }

  /** The process dies. With its reaper, its aliases go at once; without (the whole group killed), they stay. */
  crash(reaper: boolean): void {
    this.generation++;
    this.processUp = false;
    this.handlers = null;
    this.engine = null;
    this.membership = null;
    this.sniffing.clear();
    this.wake = null;
    this.flushQueued = false;
    if (reaper) for (const ip of this.wire.of(this)) this.wire.remove(this, ip, false);
    this.guardedAliases = [];
  }

  /** Graceful close: VIPs released (draining), then goodbye and exit. */
  leave(): void {
    if (!this.engine || this.closing) return;
    // SIGTERM is handled when the process runs.
    this.sched.after(0, this, () => {
      if (!this.engine || this.closing) return;
      this.closing = true;
      this.step({ type: 'close', now: 0 });
    });
  }

  setLink(up: boolean): void {
    this.linkUp = up;
    // The addon's watch event waits for the event loop (after a stall, for the stall's end).
    this.sched.after(0, this, () => this.step({ type: 'link', now: 0, ifname: this.ifname, usable: up }));
  }

  /** Time passes for `ms` without this process running (SIGSTOP, a long GC pause). */
  stall(ms: number): void {
    this.stalledUntil = Math.max(this.stalledUntil, this.sched.now + ms);
  }

  get running(): boolean {
    return this.processUp && this.stalledUntil <= this.sched.now;
  }

  /** An operator (or a network manager) removes an address behind the process's back. */
  removeBehindBack(ip: string): void {
    this.wire.remove(this, ip);
  }

  /** Removals the process has not heard of yet (the watch event waits for the event loop). */
  readonly unheardRemovals = new Set<string>();

  onAddressRemoved(ip: string): void {
    if (!this.engine) return;
    const generation = this.generation;
    this.unheardRemovals.add(ip);
    this.sched.after(0, this, () => {
      if (generation !== this.generation) return;
      this.unheardRemovals.delete(ip);
      this.step({ type: 'address-removed', now: 0, ifname: this.ifname, address: ip });
    });
  }

  onForeignClaim(ip: string, mac: string): void {
    if (!this.engine) return;
    this.sched.after(0, this, () => this.step({ type: 'foreign-claim', now: 0, ifname: this.ifname, address: ip, mac, kind: 'arp-request' }));
  }

  step(input: EngineInput): void {
    if (!this.engine) return;
    this.engine.step({ ...input, now: this.sched.now } as EngineInput);
    if (this.flushQueued) return;
    this.flushQueued = true;
    this.sched.after(0, this, () => {
      this.flushQueued = false;
      this.flush();
    });
  }

  private flush(): void {
    const engine = this.engine;
    if (!engine) return;
    const { effects, events } = engine.ready();
    for (const effect of effects) this.run(effect);
    this.observer.afterReady(this, effects, events);
    if (this.closing && engine.quiescent) this.exit();
  }

  /** After a graceful close: goodbye to peers, then the process ends. */
  private exit(): void {
    const membership = this.membership;
    this.crash(false);
    void membership?.close();
  }

  private done(ms: number, result: OperationResult): void {
    this.sched.after(ms, this, () => this.step({ type: 'done', now: 0, result }));
  }

  private latency(): number {
    return 0.05 + this.rng.next() * 2;
  }

  private linkDown(): Error | null {
    return this.linkUp ? null : Object.assign(new Error('simulated: Network is down (ENETDOWN)'), { code: 'ENETDOWN' });
  }

  private fail(p: number, code: string): Error | null {
    if (!this.rng.chance(p)) return null;
    return Object.assign(new Error(`simulated ${code}`), { code });
  }

  private run(effect: Effect): void {
    switch (effect.type) {
      case 'publish':
        this.guardedAliases = effect.state.aliases.map((a) => a.cidr.split('/')[0] as string);
        this.membership?.setLocal({ declaration: this.declarationBytes, holdings: effect.state.holdings, unhealthy: effect.state.unhealthy, neighbours: effect.state.neighbours, moves: effect.state.moves });
        return;
      case 'wake':
        this.wake?.cancel();
        this.wake = effect.at === null ? null : this.sched.at(effect.at, this, () => this.step({ type: 'tick', now: 0 }));
        return;
      case 'sniff':
        this.sniffing.clear();
        for (const ip of effect.ips) this.sniffing.add(ip);
        return;
      case 'reannounce':
        for (const ip of effect.ips) this.announce(ip);
        return;
      case 'follow-up': {
        const generation = this.generation;
        this.sched.after(this.resolved.announce.intervalMs, this, () => {
          if (generation !== this.generation) return;
          for (const ip of effect.ips) if (this.engine?.stateOf(ip) === 'held') this.announce(ip);
        });
        return;
      }
      case 'probe': {
        // As the kernel does: a packet socket on a down interface fails with ENETDOWN.
        const error = this.linkDown() ?? this.fail(this.faults.probe, 'EPERM');
        if (error) return this.done(this.latency(), { op: effect.op, kind: 'probe', ok: false, error });
        const found = new Map<string, string | null>();
        for (const ip of effect.ips) {
          const others = this.wire.answering(this, ip);
          this.heldAtProbe.set(ip, new Set(others.map((h) => h.name)));
          this.probeAnswer.set(ip, (others[0] as SimNode | undefined) ?? null);
          found.set(ip, others[0] ? macOf(others[0].name) : null);
        }
        return this.done(effect.timeoutMs, { op: effect.op, kind: 'probe', ok: true, found, ms: effect.timeoutMs });
      }
      case 'bring-up': {
        const addError = this.fail(this.faults.addAddress, 'EPERM');
        if (addError) return this.done(this.latency(), { op: effect.op, kind: 'bring-up', ip: effect.ip, ok: false, step: 'add address', error: addError });
        this.observer.beforeAdd(this, effect.ip);
        this.wire.add(this, effect.ip);
        const listenError = this.fail(this.faults.startServices, 'EADDRINUSE');
        if (listenError) {
          this.wire.remove(this, effect.ip);
          return this.done(this.latency(), { op: effect.op, kind: 'bring-up', ip: effect.ip, ok: false, step: 'start services', error: listenError });
        }
        return this.done(this.latency(), { op: effect.op, kind: 'bring-up', ip: effect.ip, ok: true });
      }
      case 'announce': {
        const error = this.linkDown() ?? this.fail(this.faults.announce, 'ENOBUFS');
        if (error) return this.done(this.latency(), { op: effect.op, kind: 'announce', ok: false, error });
        for (const ip of effect.ips) this.announce(ip);
        return this.done(this.latency(), { op: effect.op, kind: 'announce', ok: true });
      }
      case 'take-down':
        this.wire.remove(this, effect.ip);
        return this.done(this.latency(), { op: effect.op, kind: 'take-down', ip: effect.ip, ok: true });
      case 'release': {
        // Services drain and sessions end (or are reset); the address goes at the end.
        const drain = this.rng.chance(0.8) ? this.rng.next() * 20 : this.rng.next() * MAX_RELEASE_MS;
        const generation = this.generation;
        // A lost clash removes the address first; the rest of the release follows.
        if (effect.urgent) this.wire.remove(this, effect.ip);
        let finished = false;
        const finish = (): void => {
          if (finished || generation !== this.generation) return;
          finished = true;
          this.draining.delete(effect.ip);
          this.wire.remove(this, effect.ip);
          this.done(0, { op: effect.op, kind: 'release', ip: effect.ip, ok: true, drained: 0, reset: 0, lateReset: 0, timedOut: false, errors: [] });
        };
        this.draining.set(effect.ip, finish);
        this.sched.after(drain, this, finish);
        return;
      }
      case 'hurry': {
        // The drain ends now: what is left is reset, the address goes.
        const finish = this.draining.get(effect.ip);
        if (finish) this.sched.after(this.latency(), this, finish);
        return;
      }
      case 'restore': {
        // The address goes back, but its announcement cannot leave a down link.
        const error = this.fail(this.faults.addAddress, 'EPERM') ?? this.linkDown();
        if (error) return this.done(this.latency(), { op: effect.op, kind: 'restore', ip: effect.ip, ok: false, error });
        this.wire.add(this, effect.ip);
        this.announce(effect.ip);
        return this.done(this.latency(), { op: effect.op, kind: 'restore', ip: effect.ip, ok: true });
      }
    }
  }

  private announce(ip: string): void {
    if (this.linkUp && this.wire.has(this, ip)) this.wire.claim(ip, this);
  }
}
