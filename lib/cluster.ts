/**
 * The cluster runtime: wires the pure election (lib/core) to the membership
 * transport (lib/transport), the addon (lib/net) and the VIP services
 * (lib/mta). Everything that decides lives in the core; this file only turns
 * its answers into address changes, announcements and listener starts, in the
 * safe order of DESIGN.md section 5, and reports what happened.
 *
 * Flow: any input (heartbeat change, peer up/down, watch event, listen
 * failure, timer) schedules one reconcile: build the view, elect, plan, and
 * start the planned release/acquire of each VIP that is not already busy.
 * A VIP's operations run one at a time; when one ends, reconcile runs again.
 */
import { EventEmitter } from 'eventemitter3';
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';
import {
  compareClaims,
  declare,
  elect,
  encodeDeclaration,
  canonicalIp,
  explain,
  parseHostPort,
  plan,
  resolveConfig,
  vipState,
  type Assignment,
  type ClusterConfig,
  type ClusterView,
  type ElectOptions,
  type Explanation,
  type NodeDeclaration,
  type ResolvedConfig,
  type ResolvedVip,
  type VipFlags,
  type VipOutcome,
} from './core';
import * as net from './net';
import { Membership, type PeerState } from './transport';
import { buildView, DeclarationCache } from './runtime/view-builder';
import { HealthBook, type UnhealthyReason } from './runtime/health';
import { AliasReaper } from './runtime/alias-reaper';
import { drainSessions, resetSessions, type SessionDrainPorts } from './runtime/session-drain';
import type { BindingDirectory, BindingInfo, BindingListener, RawMessage, RelayedMessage, VipService } from './mta/types';
import { SmtpListener, type SmtpListenerOptions, type SmtpServerFactory } from './mta/listener';
import { BindingTransports, type SendResult } from './mta/bindings';
import type { BindingTransportOptions } from './mta/binding-transport';
import type { PickStrategy } from './mta/pick';
import { RelayClient } from './mta/relay-client';
import { RelayServer } from './mta/relay-server';
import type { SMTPServerOptions } from 'smtp-server';
import type { SendMailOptions, SentMessageInfo, Transporter } from 'nodemailer';
import type { ConnectionOptions } from 'node:tls';

/** Options that are about this process rather than the cluster's config. */
export interface RuntimeOptions {
  /** Node name default and config validation input; default os.hostname(). */
  hostname?: string;
  /** After a listen or address failure, the VIP is tried again this much later. Default 10,000 ms. */
  retryUnhealthyMs?: number;
  /** How often neighbour tables are read and shared with peers. Default 1,000 ms; 0 disables. */
  shareNeighboursMs?: number;
  /** Most neighbour entries shared. Default 256. */
  maxSharedNeighbours?: number;
  /**
   * Declare a peer dead as soon as its host answers our heartbeat with ICMP
   * port unreachable (its process died, its host lives): one heartbeat instead
   * of dead-after. Default true. ICMP is not authenticated: a host that can
   * forge it can force one false failover per peer boot (see lib/transport).
   */
  fastCrashDetection?: boolean;
  /**
   * Run a tiny child process that removes this node's VIP aliases the moment
   * this process dies without closing (crash, OOM kill, SIGKILL of the process
   * alone), so the dead node's kernel stops answering for them. Default true.
   */
  aliasReaper?: boolean;
  /**
   * Longest a live peer whose declaration has not arrived holds up this node's
   * acquisitions: long enough to fetch a 4,096-VIP declaration from a busy
   * peer, short enough that a peer whose declaration never decodes cannot stop
   * a takeover for good. Default 3,000 ms.
   */
  declarationWaitMs?: number;
  /**
   * Node-to-node relay (Momentum's #mmove): an SMTP listener on this node's
   * cluster address that takes messages for bindings held here. On by default
   * when the config has bindings.
   */
  relay?: {
    enabled?: boolean;
    /** TCP port; default the cluster's (UDP) port number, e.g. 7946. */
    port?: number;
    /** The MTA's delivery hook; without it a relayed message is sent through the binding's transport. */
    onRelay?: (message: RelayedMessage) => Promise<void>;
    /** TLS for the relay listener (STARTTLS, required before AUTH). */
    tls?: { key: string | Buffer; cert: string | Buffer };
    /** TLS options towards peers' relay listeners (e.g. { ca }). */
    clientTls?: ConnectionOptions;
  };
  /**
   * Longest a release of a binding's VIP waits for outbound sessions of any
   * process on this host (an MTA's senders included) that are waiting for
   * their peer, before it resets them; idle pooled connections are reset
   * after 1 s. Listener VIPs wait for their services' own drainMs. Default 30,000 ms.
   */
  sessionDrainMs?: number;
  /** Defaults for the nodemailer transports of bindings (pooling, timeouts, EHLO names per binding). */
  transports?: { defaults?: BindingTransportOptions; names?: Record<string, { hostname?: string }> };
}

type Phase = 'idle' | 'acquiring' | 'held' | 'releasing';

/** This node's side of one managed VIP. */
interface Slot {
  vip: ResolvedVip;
  phase: Phase;
  epoch: number;
  busy: boolean;
  services: VipService[];
  /** The address was removed behind our back while an operation was running. */
  addressLost: boolean;
}

export interface AcquiredEvent { ip: string; epoch: number; interface: string; tookMs: number; probeMs: number; probeFoundMac: string | null }
export interface ReleasedEvent { ip: string; reason: string; detail: string }
export interface StateEvent { ip: string; state: 'owned' | 'standby' | 'unowned'; owner: string | null; rule: string; flags: VipFlags; previousOwner: string | null }
export interface ConflictEvent { ip: string; kind: 'conflict' | 'unsafe' | 'broken' | 'on-wire' | 'probe' | 'clash'; message: string; mac?: string; node?: string }
export interface ErrorEvent { ip?: string; operation: string; error: Error }

export interface ClusterEvents {
  acquired: (event: AcquiredEvent) => void;
  released: (event: ReleasedEvent) => void;
  state: (event: StateEvent) => void;
  conflict: (event: ConflictEvent) => void;
  'peer-up': (peer: { node: string; address: string }) => void;
  'peer-down': (peer: { node: string; address: string; reason: string }) => void;
  'address-restored': (event: { ip: string; interface: string }) => void;
  /** A binding's holder, state or epoch changed (see binding()). */
  binding: BindingListener;
  unhealthy: (event: { ip: string; reason: UnhealthyReason; detail: string }) => void;
  stall: (event: { lagMs: number }) => void;
  error: (event: ErrorEvent) => void;
}

export interface VipStatus {
  ip: string;
  interface: string;
  binding: string | null;
  ports: number[];
  state: 'owned' | 'standby' | 'unowned';
  owner: string | null;
  rule: string;
  flags: VipFlags;
  /** This node's address state for the VIP. */
  phase: Phase;
  epoch: number;
  participants: string[];
  unhealthy: { reason: string; detail: string } | null;
  services: string[];
}

export interface ClusterStatus {
  node: string;
  settled: boolean;
  quorum: boolean;
  vips: VipStatus[];
  /** `neighbours`: the hosts each peer shared (bounded), which a new holder reaches with arpAllHosts. */
  peers: Array<{ node: string; address: string; live: boolean; lastHeardMsAgo: number; holding: string[]; complete: boolean; neighbours: Array<{ address: string; mac: string }> }>;
  counters: Record<string, number>;
}

const now = (): number => performance.timeOrigin + performance.now();

/** The kernel's view of the sessions on an address, for release drains. */
const kernelSessions: SessionDrainPorts = {
  tcpSockets: (addresses, options) => net.tcpSockets(addresses, options),
  destroyTcpSockets: (addresses, options) => net.destroyTcpSockets(addresses, options),
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** Creates a cluster node; throws ConfigError (listing every problem) on a bad config. */
export function createCluster(config: ClusterConfig, options: RuntimeOptions = {}): VipCluster {
  return new VipCluster(config, options);
}

export class VipCluster extends EventEmitter<ClusterEvents> implements BindingDirectory {
  readonly config: ResolvedConfig;
  readonly node: string;
  private readonly declaration: NodeDeclaration;
  private readonly declarationBytes: Buffer;
  private readonly membership: Membership;
  private readonly cache = new DeclarationCache();
  private readonly slots = new Map<string, Slot>();
  private readonly plainServices: VipService[] = [];
  private readonly health = new HealthBook();
  private readonly lastKnownEpochs = new Map<string, number>();
  private readonly knownNodes = new Set<string>();
  private readonly counts = new Map<string, number>();
  private readonly options: Required<Omit<RuntimeOptions, 'relay' | 'transports'>>;
  private readonly relayPort: number;
  private readonly outbound: BindingTransports;
  private bindingInfos = new Map<string, BindingInfo>();
  private assignment: Assignment | null = null;
  private lastOutcomes = new Map<string, VipOutcome>();
  private started = false;
  private closing = false;
  private settleUntil = Infinity;
  private startedAt = 0;
  private reconcileQueued = false;
  private publishQueued = false;
  private wakeTimer: NodeJS.Timeout | null = null;
  private readonly timers: NodeJS.Timeout[] = [];
  private watcher: net.Closable | null = null;
  private readonly sniffers = new Map<string, ReturnType<typeof net.sniff>>();
  private readonly reannounceTimers = new Map<string, NodeJS.Timeout>();
  private sharedNeighbours: Array<{ address: string; mac: string }> = [];
  /** Operator moves issued on this node: ip → target node and a cluster-wide ordering number. */
  private readonly moves = new Map<string, { node: string; seq: number }>();
  private lastMoveSeq = 0;
  private readonly reaper = new AliasReaper();
  /** Acquisitions, releases and restores in progress (close() waits for them). */
  private readonly operations = new Set<Promise<void>>();

  constructor(input: ClusterConfig, options: RuntimeOptions = {}) {
    super();
    this.options = {
      hostname: options.hostname ?? os.hostname(),
      retryUnhealthyMs: options.retryUnhealthyMs ?? 10000,
      shareNeighboursMs: options.shareNeighboursMs ?? 1000,
      maxSharedNeighbours: options.maxSharedNeighbours ?? 256,
      fastCrashDetection: options.fastCrashDetection ?? true,
      aliasReaper: options.aliasReaper ?? true,
      declarationWaitMs: options.declarationWaitMs ?? 3000,
      sessionDrainMs: options.sessionDrainMs ?? 30000,
    };
    this.config = resolveConfig(input, { hostname: this.options.hostname, interfaces: net.interfaces() });
    this.node = this.config.node;
    this.declaration = declare(this.config);
    this.declarationBytes = encodeDeclaration(this.declaration);
    for (const vip of this.config.vips) {
      this.slots.set(vip.ip, { vip, phase: 'idle', epoch: 0, busy: false, services: [], addressLost: false });
    }
    const cluster = this.config.cluster;
    this.membership = new Membership({
      clusterId: cluster.id,
      node: this.node,
      secret: cluster.secret,
      bind: cluster.bind,
      port: cluster.port,
      peers: cluster.peers.map((p) => (p.ip.includes(':') ? `[${p.ip}]:${p.port}` : `${p.ip}:${p.port}`)),
      ...(cluster.multicast ? { multicast: cluster.multicast } : {}),
      heartbeatMs: this.config.timers.heartbeatMs,
      deadAfterMs: this.config.timers.deadAfterMs,
      vipsOf: (bytes) => this.cache.vipsOf(bytes),
      fastCrashDetection: this.options.fastCrashDetection,
      now,
    });
    this.knownNodes.add(this.node);
    this.membership.on('peer-up', (peer: PeerState) => {
      this.knownNodes.add(peer.node);
      this.emit('peer-up', { node: peer.node, address: peer.address });
      this.requestReconcile();
    });
    this.membership.on('peer-down', (peer: PeerState, reason: string) => {
      this.count('peer_down_total');
      this.emit('peer-down', { node: peer.node, address: peer.address, reason });
      this.requestReconcile();
    });
    this.membership.on('peer-restart', () => this.requestReconcile());
    this.membership.on('change', () => this.requestReconcile());
    this.membership.on('stall', (event: { lagMs: number }) => {
      this.count('stalls_total');
      // Our own stall (GC, SIGSTOP, a blocked loop): what we know is stale.
      this.resettle();
      this.emit('stall', event);
    });
    this.membership.on('error', (error: Error) => this.emit('error', { operation: 'membership', error }));

    this.relayPort = options.relay?.port ?? cluster.port;
    const relayEnabled = options.relay?.enabled ?? this.config.bindings.length > 0;
    const relayClient = relayEnabled ? new RelayClient({ node: this.node, secret: cluster.secret, ...(options.relay?.clientTls ? { tls: options.relay.clientTls } : {}) }) : undefined;
    this.outbound = new BindingTransports(this, {
      ...(options.transports?.defaults ? { transport: options.transports.defaults } : {}),
      ...(options.transports?.names ? { bindings: options.transports.names } : {}),
      ...(relayClient ? { relay: relayClient } : {}),
    });
    if (relayEnabled) {
      const relayServer = new RelayServer({
        directory: this,
        secret: cluster.secret,
        host: cluster.bind,
        port: this.relayPort,
        transports: this.outbound,
        ...(options.relay?.onRelay ? { onRelay: options.relay.onRelay } : {}),
        ...(options.relay?.tls ? { tls: options.relay.tls } : {}),
      });
      relayServer.on('error', (error) => this.emit('error', { operation: 'relay', error }));
      this.plainServices.push(relayServer);
    }
    this.bindingInfos = this.computeBindings();
  }

  /**
   * An SMTP listener on 'ip:port' (or '[v6]:port'). On a managed VIP a new
   * SMTPServer is created and started each time this node acquires the VIP and
   * drained and closed before the address goes; on any other address it is a
   * plain listener started with the cluster. `server` is smtp-server options or
   * a factory returning a new SMTPServer. Call before start().
   */
  listen(address: string, server: SMTPServerOptions | SmtpServerFactory, options: SmtpListenerOptions & { follow?: string } = {}): SmtpListener {
    const parsed = parseHostPort(address);
    if (typeof parsed === 'string') throw new TypeError(`listen: address "${address}": ${parsed}`);
    const canonical = parsed.ip.text;
    const port = parsed.port;
    // Every node must know the services on a VIP (UNSAFE detection, followers),
    // and it learns them from the config's declaration, not from this call.
    const slot = this.slots.get(canonical);
    const declared = this.config.listeners.find((l) => l.ip === canonical && l.port === port);
    if (slot && !declared) {
      throw new Error(`listen: ${address} is on the managed VIP ${canonical}, but the config's listeners do not declare it: add '${address}' to listeners so every node knows the services on this IP`);
    }
    if (options.follow !== undefined) {
      const leader = this.config.bindings.find((b) => b.name === options.follow || b.ip === canonicalIp(options.follow as string));
      if (!leader || !declared || declared.follows !== leader.ip) {
        throw new Error(`listen: { follow: '${options.follow}' } for ${address} must match the config: listeners: [{ address: '${address}', follow: '${options.follow}' }] with a binding named '${options.follow}'`);
      }
    }
    const { follow: _follow, ...listenerOptions } = options;
    const listener = new SmtpListener(canonical, port, server, listenerOptions);
    listener.on('error', (error) => this.emit('error', { ip: canonical, operation: `smtp ${address}`, error }));
    this.addService(listener);
    return listener;
  }

  // --- outbound bindings (BindingDirectory) ---------------------------------

  /** The binding as the cluster sees it now, or undefined when no live node declares it. */
  binding(name: string): BindingInfo | undefined {
    return this.bindingInfos.get(name);
  }

  bindings(): BindingInfo[] {
    return [...this.bindingInfos.values()];
  }

  /** Where `node`'s relay listener is: its cluster address (never a VIP). */
  clusterAddress(node: string): { host: string; port: number } | undefined {
    if (node === this.node) return { host: this.config.cluster.bind, port: this.relayPort };
    const peer = this.membership.peers().find((p) => p.node === node && p.live);
    return peer ? { host: peer.address, port: this.relayPort } : undefined;
  }

  /** A local, healthy binding of `group` (throws NoLocalBindingError saying where the others are). */
  pick(group: string, options: { strategy?: PickStrategy } = {}): BindingInfo {
    return this.outbound.pick(group, options);
  }

  /**
   * A cached nodemailer transport sending from binding `name`'s IP. Throws
   * BindingNotLocalError (naming the holder) or BindingBrokenError; closed and
   * dropped when the binding leaves this node.
   */
  transport(name: string, options?: BindingTransportOptions): Transporter<SentMessageInfo> {
    return this.outbound.transport(name, options);
  }

  /** Sends from binding `name`: here when held here, else relayed to its holder. Never from another IP. */
  send(name: string, message: SendMailOptions | RawMessage): Promise<SendResult> {
    return this.outbound.send(name, message);
  }

  /**
   * Registers a service (e.g. an SmtpListener) on an IP. On a managed VIP it
   * starts when this node acquires the VIP and stops before the address goes;
   * on any other IP it is a plain service started with the cluster.
   * Call before start().
   */
  addService(service: VipService): this {
    if (this.started) throw new Error(`addService(${service.description}): register services before start()`);
    const slot = this.slots.get(service.ip);
    if (slot) slot.services.push(service);
    else this.plainServices.push(service);
    return this;
  }

  /** Starts: cleans leftovers, joins the cluster, listens one dead-after period, then serves. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.startedAt = now();
    // Boot: an alias of a managed VIP left by a crashed run would answer for
    // the VIP while another node holds it. Remove it before saying anything.
    const present = new Set<string>();
    for (const iface of net.interfaces()) for (const a of iface.addresses) present.add(`${iface.name} ${a.address}`);
    for (const slot of this.slots.values()) {
      if (present.has(`${slot.vip.interface} ${slot.vip.ip}`)) {
        await net.removeAddress(slot.vip.interface, `${slot.vip.ip}/${slot.vip.prefix}`);
        this.count('leftover_aliases_removed_total');
      }
    }
    for (const iface of net.interfaces()) this.health.setLink(iface.name, iface.up && iface.running);
    if (this.options.aliasReaper) this.reaper.start((error) => this.emit('error', { operation: 'alias reaper', error }));
    this.watcher = net.watch((event) => this.onWatch(event));
    await this.membership.start();
    this.publish({ now: true });
    for (const service of this.plainServices) await service.start();
    // Settle: until one dead-after period has passed we have not heard from
    // every live peer, and could take a VIP another node holds.
    this.settleUntil = now() + this.config.timers.deadAfterMs;
    this.schedule(this.config.timers.deadAfterMs, () => this.requestReconcile());
    if (this.options.shareNeighboursMs > 0) {
      const timer = setInterval(() => void this.shareNeighbours(), this.options.shareNeighboursMs);
      timer.unref();
      this.timers.push(timer);
      void this.shareNeighbours();
    }
    if (this.config.announce.reannounceMs > 0) {
      const timer = setInterval(() => this.reannounceAll(), this.config.announce.reannounceMs);
      timer.unref();
      this.timers.push(timer);
    }
    this.requestReconcile();
  }

  /**
   * Graceful shutdown: releases every VIP (draining services) and says goodbye,
   * so peers take over at once instead of waiting for dead-after.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    for (const timer of this.timers) clearInterval(timer);
    for (const timer of this.reannounceTimers.values()) clearTimeout(timer);
    // Leaving: first tell peers we will serve nothing, so every VIP we release
    // is elected elsewhere at once. Otherwise we still look live (and maybe
    // preferred) until the goodbye, which comes only after the plain services
    // (relay listener, listeners on our own address) have drained: the VIPs we
    // released stay unowned for that whole drain, and a send() waiting for a
    // binding's new holder there can keep the drain, and so the gap, going.
    for (const vip of this.config.vips) this.health.fail(vip.ip, 'shutdown', 'cluster.close()', Infinity);
    this.publish({ now: true });
    // Wait for operations in flight (no new ones start once closing), then
    // release whatever is held.
    await Promise.allSettled([...this.operations]);
    await Promise.all(
      [...this.slots.values()].filter((s) => s.phase !== 'idle').map((s) => this.release(s, 'shutdown', 'cluster.close()')),
    );
    await Promise.allSettled(this.plainServices.map((s) => s.stop()));
    await this.reaper.stop();
    this.outbound.close();
    await this.membership.close();
    this.watcher?.close();
    for (const sniffer of this.sniffers.values()) sniffer.close();
    this.sniffers.clear();
  }

  /**
   * Says whether this node can serve `ip` now, for readiness that only the
   * application knows: e.g. an MTA whose own (wildcard) listener for the VIP's
   * port is not up yet must not be given the VIP, or clients get connection
   * refused. While not ready the VIP is elected elsewhere (and released here);
   * peers learn it from the next heartbeat. Ready again clears only this mark.
   */
  setReady(ip: string, ready: boolean, detail = 'the application is not ready to serve it'): void {
    const canonical = canonicalIp(ip);
    if (!canonical || !this.slots.has(canonical)) throw new TypeError(`setReady: ${ip} is not a failover VIP of this node`);
    if (this.closing) return;
    const changed = ready ? this.health.clear(canonical, 'not-ready') : this.health.hold(canonical, 'not-ready', detail);
    if (!changed) return;
    this.count(ready ? 'ready_total' : 'not_ready_total');
    if (!ready) this.emit('unhealthy', { ip: canonical, reason: 'not-ready', detail });
    this.publish();
    this.requestReconcile();
  }

  /** Why `ip` has its owner (rule, and why each other participant was not chosen). */
  explain(ip: string): Explanation | null {
    return explain(this.view(), ip, this.electOptions());
  }

  /**
   * Planned move: pins `ip` to `node` (a live participant). Every node learns
   * the pin from this node's heartbeats and the election honours it (rule 2):
   * the holder drains and releases, then `node` acquires. The pin lasts while
   * this node lives, until `move(ip, null)` clears it, or until `node` stops
   * being a live participant (then it is dropped). Among pins from several
   * nodes the newest wins.
   */
  move(ip: string, node: string | null): { ip: string; node: string | null; from: string | null; seq: number } {
    const canonical = canonicalIp(ip);
    if (!canonical) throw new TypeError(`move: "${ip}" is not an IP address`);
    if (!this.started) throw new Error('move: start() the cluster first');
    const outcome = this.assignment?.vips.get(canonical);
    if (node === null) {
      this.moves.delete(canonical);
    } else {
      if (!outcome) throw new Error(`move: no live node declares ${canonical}`);
      if (outcome.flags.broken) throw new Error(`move: ${canonical} is BROKEN (${outcome.flags.broken.message}); fix the config first`);
      if (outcome.follows) throw new Error(`move: ${canonical} follows ${outcome.follows}; move ${outcome.follows} instead`);
      if (!outcome.participants.includes(node)) {
        throw new Error(`move: ${node} is not a live participant of ${canonical} (participants: ${outcome.participants.join(', ') || 'none'})`);
      }
      this.lastMoveSeq = Math.max(Date.now(), this.lastMoveSeq + 1);
      this.moves.set(canonical, { node, seq: this.lastMoveSeq });
    }
    this.count('moves_total');
    this.publish();
    this.requestReconcile();
    return { ip: canonical, node, from: outcome?.owner ?? null, seq: this.moves.get(canonical)?.seq ?? 0 };
  }

  /** A JSON-ready snapshot: VIPs with state, owner, flags and evidence; peers; counters. */
  status(): ClusterStatus {
    const t = now();
    const vips: VipStatus[] = [];
    for (const slot of this.slots.values()) {
      const outcome = this.assignment?.vips.get(slot.vip.ip);
      const problem = this.health.problem(slot.vip.ip, slot.vip.interface);
      vips.push({
        ip: slot.vip.ip,
        interface: slot.vip.interface,
        binding: slot.vip.binding,
        ports: slot.vip.ports,
        state: outcome ? vipState(outcome, this.node) : 'unowned',
        owner: outcome?.owner ?? null,
        rule: outcome?.rule ?? 'no-participant',
        flags: outcome?.flags ?? {},
        phase: slot.phase,
        epoch: slot.epoch,
        participants: outcome?.participants ?? [],
        unhealthy: problem ? { reason: problem.reason, detail: problem.detail } : null,
        services: slot.services.map((s) => s.description),
      });
    }
    return {
      node: this.node,
      settled: t >= this.settleUntil,
      quorum: this.assignment?.quorum ?? true,
      vips,
      peers: this.membership.peers().map((p) => ({
        node: p.node,
        address: p.address,
        live: p.live,
        lastHeardMsAgo: Math.round(t - p.lastHeard),
        holding: [...p.holdings.keys()],
        complete: p.complete,
        neighbours: p.neighbours,
      })),
      counters: { ...Object.fromEntries(this.counts), ...this.membership.counters() },
    };
  }

  /** The cluster as this node sees it now (the election's input). */
  view(): ClusterView {
    return buildView(
      now(),
      {
        node: this.node,
        declaration: this.declaration,
        liveSince: this.startedAt,
        holding: this.holdings(),
        unhealthy: this.health.unhealthy(this.config.vips),
      },
      this.membership.peers(),
      this.cache,
      this.overrides(),
    );
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
    for (const peer of this.membership.peers()) if (peer.live) consider(peer.node, peer.moves);
    return new Map([...newest].map(([ip, m]) => [ip, m.node]));
  }

  /** Drops our pins whose target is no longer a live participant (they would pin nothing). */
  private dropStaleMoves(assignment: Assignment): void {
    let changed = false;
    for (const [ip, move] of this.moves) {
      const outcome = assignment.vips.get(ip);
      if (!outcome || !outcome.participants.includes(move.node)) {
        this.moves.delete(ip);
        changed = true;
      }
    }
    if (changed) this.publish();
  }

  // --- reconcile ----------------------------------------------------------

  private electOptions(): ElectOptions {
    const known = new Set(this.knownNodes);
    // Configured peers we never heard from still count towards the majority.
    const heard = new Set(this.membership.peers().map((p) => p.address));
    for (const peer of this.config.cluster.peers) {
      if (peer.ip !== this.config.cluster.bind && !heard.has(peer.ip)) known.add(`unheard ${peer.ip}`);
    }
    return {
      holdDownMs: this.config.timers.holdDownMs,
      quorum: this.config.quorum ? { knownNodes: known } : null,
      rebalance: this.config.rebalance,
    };
  }

  private requestReconcile(): void {
    if (this.reconcileQueued || !this.started) return;
    this.reconcileQueued = true;
    // Coalesce a burst of inputs (a heartbeat carrying several changes) into one pass.
    setImmediate(() => {
      this.reconcileQueued = false;
      try {
        this.reconcile();
      } catch (error) {
        this.emit('error', { operation: 'reconcile', error: error as Error });
      }
    });
  }

  private reconcile(): void {
    if (this.closing) {
      // No more elections or address changes, but sends still in flight here
      // (a relay waiting for a binding's new holder) must learn where it went.
      this.refreshBindings();
      return;
    }
    const t = now();
    if (this.health.expire(t)) this.publish();
    // A live peer whose declaration we do not know yet (it just joined, or we just did) is left
    // out of the view, and what its heartbeats say it holds cannot be read: acquiring now could
    // take every VIP it holds (a joining standby did, 1,000 at once). Wait for its declaration.
    const declarationsDueBy = this.declarationsDueBy(t);
    const settled = t >= this.settleUntil && declarationsDueBy === null;
    const view = this.view();
    const options = this.electOptions();
    const assignment = elect(view, options);
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
    // Clash: views may differ (asymmetric loss), so a holder also yields to a
    // better claim it hears, by an order that needs no agreement on the view.
    for (const slot of this.slots.values()) {
      if (slot.phase !== 'held') continue;
      const clash = this.betterClaimOn(slot, view);
      if (clash) {
        this.count('clashes_total');
        this.emit('conflict', { ip: slot.vip.ip, kind: 'clash', node: clash, message: `${clash} holds ${slot.vip.ip} with a better claim (epoch/preference/name): releasing` });
        actions.unshift({ type: 'release', ip: slot.vip.ip, reason: 'clash', detail: `${clash} has a better claim` });
      }
    }
    const acquisitions: Array<{ slot: Slot; epoch: number }> = [];
    for (const action of actions) {
      const slot = this.slots.get(action.ip);
      if (!slot || slot.busy) continue;
      if (action.type === 'release') {
        if (slot.phase === 'idle') continue;
        this.track(this.release(slot, action.reason, action.detail));
      } else if (slot.phase === 'idle') {
        acquisitions.push({ slot, epoch: action.epoch });
      }
    }
    if (acquisitions.length) this.track(this.acquireAll(acquisitions));
    const wake = [assignment.nextWakeup, this.health.nextRetry(), t < this.settleUntil ? this.settleUntil : null, declarationsDueBy].filter((x): x is number => x !== null);
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
    if (wake.length) this.wakeTimer = this.schedule(Math.max(0, Math.min(...wake) - t) + 1, () => this.requestReconcile());
  }

  /**
   * When the last live peer whose declaration is unknown stops holding up acquisitions (its
   * declaration arrives first in the normal case: that emits a change and a reconcile), or null
   * when there is none.
   */
  private declarationsDueBy(t: number): number | null {
    let due: number | null = null;
    for (const peer of this.membership.peers()) {
      if (!peer.live || peer.leaving || peer.declaration !== null) continue;
      const until = peer.liveSince + this.options.declarationWaitMs;
      if (until > t) due = Math.max(due ?? 0, until);
    }
    return due;
  }

  /** The name of a live peer advertising `slot`'s VIP with a better claim than ours, if any. */
  private betterClaimOn(slot: Slot, view: ClusterView): string | null {
    const mine = { node: this.node, epoch: slot.epoch, preferred: slot.vip.preferred === this.node };
    for (const n of view.nodes) {
      if (n.node === this.node || !n.live) continue;
      const epoch = n.holding.get(slot.vip.ip);
      if (epoch === undefined) continue;
      const theirs = n.declaration.vips.find((v) => v.ip === slot.vip.ip);
      const claim = { node: n.node, epoch, preferred: theirs?.preferred === n.node };
      if (compareClaims(claim, mine) < 0) return n.node;
    }
    return null;
  }

  private reportOutcomes(assignment: Assignment): void {
    for (const [ip, outcome] of assignment.vips) {
      if (!this.slots.has(ip)) continue;
      const before = this.lastOutcomes.get(ip);
      if (!before || before.owner !== outcome.owner || before.rule !== outcome.rule || flagKey(before.flags) !== flagKey(outcome.flags)) {
        this.emit('state', { ip, state: vipState(outcome, this.node), owner: outcome.owner, rule: outcome.rule, flags: outcome.flags, previousOwner: before?.owner ?? null });
        for (const kind of ['broken', 'conflict', 'unsafe'] as const) {
          const evidence = outcome.flags[kind];
          if (evidence && !before?.flags[kind]) this.emit('conflict', { ip, kind, message: evidence.message });
        }
      }
    }
    this.lastOutcomes = new Map(assignment.vips);
  }

  // --- acquire and release ------------------------------------------------

  /**
   * Acquires a batch of VIPs together: one probe call and one announcement per
   * interface. A node taking over hundreds of VIPs from a dead peer would
   * otherwise queue hundreds of probes and announcements on libuv's threads,
   * one after another.
   */
  private async acquireAll(batch: Array<{ slot: Slot; epoch: number }>): Promise<void> {
    const started = now();
    for (const { slot, epoch } of batch) {
      slot.busy = true;
      slot.phase = 'acquiring';
      slot.addressLost = false;
      slot.epoch = epoch;
      this.lastKnownEpochs.set(slot.vip.ip, Math.max(epoch, this.lastKnownEpochs.get(slot.vip.ip) ?? 0));
    }
    // Claim them in our heartbeats first: a peer that computed a different
    // owner sees the claims and the epoch order settles it.
    this.publish({ now: true });
    const byInterface = new Map<string, Slot[]>();
    for (const { slot } of batch) byInterface.set(slot.vip.interface, [...(byInterface.get(slot.vip.interface) ?? []), slot]);
    try {
      await Promise.all([...byInterface].map(([ifname, slots]) => this.acquireOnInterface(ifname, slots, started)));
    } finally {
      for (const { slot } of batch) slot.busy = false;
      this.publish();
      this.requestReconcile();
    }
  }

  private async acquireOnInterface(ifname: string, slots: Slot[], started: number): Promise<void> {
    let probed = new Map<string, string | null>();
    let probeMs = 0;
    if (this.config.probe.timeoutMs > 0) {
      const probeStarted = now();
      try {
        probed = await net.probeMany(ifname, slots.map((s) => s.vip.ip), { timeoutMs: this.config.probe.timeoutMs });
      } catch (error) {
        await Promise.all(slots.map((slot) => this.giveUp(slot, 'probe', error as Error, [])));
        return;
      }
      probeMs = now() - probeStarted;
    }
    // Listeners come up before the announcement moves clients here, so the
    // first connection after the move finds a listener.
    const ready = await Promise.all(slots.map((slot) => this.bringUp(slot)));
    const up = slots.filter((_, i) => ready[i]);
    if (!up.length) return;
    try {
      await net.announce(ifname, up.map((s) => s.vip.ip), { count: 1, mode: this.config.announce.mode });
    } catch (error) {
      await Promise.all(up.map((slot) => this.giveUp(slot, 'announce', error as Error, slot.services)));
      return;
    }
    for (const slot of up) {
      const ip = slot.vip.ip;
      const probeFoundMac = probed.get(ip) ?? null;
      slot.phase = 'held';
      this.count('acquisitions_total');
      if (probeFoundMac) {
        // Someone still answered for the address: typically the dead holder's
        // kernel (a crashed or stopped process leaves its alias behind). The
        // election already decided; our announcement took the address over.
        this.count('probe_conflicts_total');
        this.emit('conflict', { ip, kind: 'probe', mac: probeFoundMac, message: `${probeFoundMac} answered the probe for ${ip}; taken over as elected and announced` });
      }
      this.emit('acquired', { ip, epoch: slot.epoch, interface: ifname, tookMs: round1(now() - started), probeMs: round1(probeMs), probeFoundMac });
    }
    this.refreshBindings();
    this.updateSniffer(ifname);
    for (const slot of up) {
      if (!slot.addressLost) continue;
      slot.addressLost = false;
      await this.restoreAddress(slot);
    }
    void this.followUpAnnouncements(ifname, up);
  }

  /** Adds the address and starts the VIP's services; false (VIP given up) on failure. */
  private async bringUp(slot: Slot): Promise<boolean> {
    let step = 'add address';
    const startedServices: VipService[] = [];
    try {
      await net.addAddress(slot.vip.interface, `${slot.vip.ip}/${slot.vip.prefix}`);
      step = 'start services';
      for (const service of slot.services) {
        await service.start();
        startedServices.push(service);
      }
      return true;
    } catch (error) {
      await this.giveUp(slot, step, error as Error, startedServices);
      return false;
    }
  }

  /** An acquisition failed: mark the VIP unhealthy here (peers take it) and undo what was done. */
  private async giveUp(slot: Slot, step: string, error: Error, startedServices: VipService[]): Promise<void> {
    const { ip, interface: ifname, prefix } = slot.vip;
    const reason: UnhealthyReason = step === 'start services' ? 'listen-failed' : step === 'announce' || step === 'probe' ? 'announce-failed' : 'address-failed';
    const detail = `${step} for ${ip} failed: ${error.message}`;
    this.health.fail(ip, reason, detail, now() + this.options.retryUnhealthyMs);
    this.count('acquire_failures_total');
    this.emit('unhealthy', { ip, reason, detail });
    this.emit('error', { ip, operation: `acquire (${step})`, error });
    // Give the VIP up cleanly rather than hold an address nobody serves.
    await Promise.allSettled(startedServices.map((s) => s.stop()));
    await net.removeAddress(ifname, `${ip}/${prefix}`).catch(() => undefined);
    slot.phase = 'idle';
  }

  /** The rest of the announcements, and unicast ARP to known hosts, off the failover path. */
  private async followUpAnnouncements(ifname: string, slots: Slot[]): Promise<void> {
    const { count, intervalMs, mode, arpAllHosts } = this.config.announce;
    try {
      if (arpAllHosts) {
        for (const slot of slots) {
          const extra = this.peerNeighbours(slot.vip.family);
          if (slot.phase === 'held') await net.arpAllHosts(ifname, slot.vip.ip, { extra });
        }
      }
      if (count > 1) {
        await new Promise((r) => setTimeout(r, intervalMs));
        const held = slots.filter((s) => s.phase === 'held').map((s) => s.vip.ip);
        if (held.length) await net.announce(ifname, held, { count: count - 1, intervalMs, mode });
      }
    } catch (error) {
      this.emit('error', { operation: `announce on ${ifname}`, error: error as Error });
    }
  }

  private async release(slot: Slot, reason: string, detail: string): Promise<void> {
    const { ip, interface: ifname, prefix } = slot.vip;
    slot.busy = true;
    slot.phase = 'releasing';
    // Outbound first: transports of a binding on this VIP close and sends in
    // flight fail (retryable) before the address goes.
    this.refreshBindings();
    this.updateSniffer(ifname);
    try {
      // Drain first: the address stays until the listeners are closed, so
      // sessions in flight finish on this node.
      const results = await Promise.allSettled(slot.services.map((s) => s.stop()));
      for (const r of results) if (r.status === 'rejected') this.emit('error', { ip, operation: 'stop service', error: r.reason as Error });
      // Then the sessions of every process on this host (MTA workers, orphans):
      // they end, or are reset while their RST can still leave from this address.
      await this.drainSessionsOn(slot);
      await this.removeAfterLastReset(slot);
    } catch (error) {
      this.emit('error', { ip, operation: 'release', error: error as Error });
    } finally {
      slot.phase = 'idle';
      slot.busy = false;
      this.count('releases_total');
      this.publish();
      this.emit('released', { ip, reason, detail });
      this.requestReconcile();
    }
  }

  /**
   * Waits for the VIP's busy sessions (see runtime/session-drain.ts) up to the
   * longest drain of its services, or sessionDrainMs for a binding's VIP, then
   * resets the rest.
   */
  private async drainSessionsOn(slot: Slot): Promise<void> {
    const serviceDrains = slot.services.map((s) => s.drainMs ?? 0);
    const deadlineMs = Math.max(0, ...serviceDrains, slot.vip.binding ? this.options.sessionDrainMs : 0);
    try {
      const result = await drainSessions(kernelSessions, slot.vip.ip, { listenerPorts: slot.vip.ports, deadlineMs });
      this.count('sessions_drained_total', result.drained);
      this.count('sessions_reset_total', result.reset);
      if (result.timedOut) this.count('session_drain_timeouts_total');
    } catch (error) {
      this.sessionResetFailed(slot.vip.ip, error as Error);
    }
  }

  /**
   * Removes the address; a client the kernel accepted between the drain's
   * reset and the removal would wait in silence (a RST cannot leave from an
   * address that is gone), so when one is found the address is put back for
   * the moment its reset takes, and removed again (at most three rounds; the
   * window shrinks each time, and no announcement is made meanwhile).
   */
  private async removeAfterLastReset(slot: Slot): Promise<void> {
    const { ip, interface: ifname, prefix } = slot.vip;
    for (let round = 1; ; round++) {
      await net.removeAddress(ifname, `${ip}/${prefix}`);
      let late: net.TcpSocket[] = [];
      try {
        late = (await net.tcpSockets([ip])).filter((s) => s.owned);
      } catch (error) {
        this.sessionResetFailed(ip, error as Error);
      }
      if (late.length === 0) return;
      if (round === 3) {
        // The owners at least hear of it at once (ECONNABORTED) instead of hanging.
        await this.resetSessionsOn(slot);
        return;
      }
      this.count('late_sessions_reset_total', late.length);
      await net.addAddress(ifname, `${ip}/${prefix}`);
      await this.resetSessionsOn(slot);
    }
  }

  private async resetSessionsOn(slot: Slot): Promise<void> {
    try {
      this.count('sessions_reset_total', await resetSessions(kernelSessions, [slot.vip.ip]));
    } catch (error) {
      this.sessionResetFailed(slot.vip.ip, error as Error);
    }
  }

  private sessionResetFailed(ip: string, error: Error): void {
    this.count('session_reset_failures_total');
    this.emit('error', { ip, operation: 'drain sessions', error });
  }

  // --- inputs from the addon ---------------------------------------------

  private onWatch(event: net.WatchEvent): void {
    if (event.type === 'link') {
      if (this.health.setLink(event.ifname, event.up && event.running)) {
        this.count('link_changes_total');
        // Back from a dead link we know nothing current about the peers (they
        // timed out here while we were cut off): listen one dead-after period
        // before acquiring, exactly as at boot, instead of grabbing every VIP.
        if (event.up && event.running) this.resettle();
        for (const slot of this.slots.values()) {
          if (slot.vip.interface === event.ifname && !(event.up && event.running)) {
            this.emit('unhealthy', { ip: slot.vip.ip, reason: 'link-down', detail: `link ${event.ifname} is down` });
          }
        }
        this.publish();
        this.requestReconcile();
      }
      return;
    }
    if (event.type !== 'address-removed') return;
    const slot = this.slots.get(event.address);
    if (!slot || slot.vip.interface !== event.ifname || this.closing) return;
    if (slot.phase === 'acquiring') {
      // Removed between our add and the end of the acquisition: restore it once that ends.
      slot.addressLost = true;
      return;
    }
    if (slot.phase !== 'held' || slot.busy) return;
    // Someone removed a VIP we hold (an operator, a network manager): put it
    // back and tell the network again, or give the VIP up.
    this.track(this.restoreAddress(slot));
  }

  private async restoreAddress(slot: Slot): Promise<void> {
    const { ip, interface: ifname, prefix } = slot.vip;
    slot.busy = true;
    try {
      await net.addAddress(ifname, `${ip}/${prefix}`);
      await net.announce(ifname, [ip], { count: 1, mode: this.config.announce.mode });
      this.count('addresses_restored_total');
      this.emit('address-restored', { ip, interface: ifname });
    } catch (error) {
      const detail = `${ip} was removed from ${ifname} and could not be restored: ${(error as Error).message}`;
      this.health.fail(ip, 'address-failed', detail, now() + this.options.retryUnhealthyMs);
      this.emit('unhealthy', { ip, reason: 'address-failed', detail });
      this.emit('error', { ip, operation: 'restore address', error: error as Error });
      this.publish();
    } finally {
      slot.busy = false;
      this.requestReconcile();
    }
  }

  /** Keeps one sniffer per interface watching the VIPs held on it. */
  private updateSniffer(ifname: string): void {
    if (this.closing) return;
    const held = [...this.slots.values()].filter((s) => s.vip.interface === ifname && s.phase === 'held').map((s) => s.vip.ip);
    let sniffer = this.sniffers.get(ifname);
    try {
      if (!sniffer && held.length) {
        sniffer = net.sniff(ifname, held, (event) => this.onForeignClaim(event));
        this.sniffers.set(ifname, sniffer);
      } else if (sniffer) {
        sniffer.setAddresses(held);
      }
    } catch (error) {
      this.emit('error', { operation: `sniff on ${ifname}`, error: error as Error });
    }
  }

  /** Another MAC claims a VIP we hold: report; the election settles it and the winner re-announces last. */
  private onForeignClaim(event: net.SniffEvent): void {
    const slot = this.slots.get(event.address);
    if (!slot || slot.phase !== 'held') return;
    this.count('wire_conflicts_total');
    this.emit('conflict', { ip: event.address, kind: 'on-wire', mac: event.mac, message: `${event.mac} sent ${event.kind} for ${event.address}, which this node holds` });
    this.requestReconcile();
    // If we are still the holder after the clash settles, say so last.
    if (!this.reannounceTimers.has(event.address)) {
      const timer = setTimeout(() => {
        this.reannounceTimers.delete(event.address);
        if (slot.phase === 'held') {
          this.count('reannouncements_total');
          net.announce(slot.vip.interface, [slot.vip.ip], { count: 1, mode: this.config.announce.mode }).catch((error: Error) => this.emit('error', { ip: slot.vip.ip, operation: 'announce', error }));
        }
      }, 2 * this.config.timers.heartbeatMs);
      timer.unref();
      this.reannounceTimers.set(event.address, timer);
    }
  }

  private reannounceAll(): void {
    const byInterface = new Map<string, string[]>();
    for (const slot of this.slots.values()) {
      if (slot.phase !== 'held') continue;
      const list = byInterface.get(slot.vip.interface) ?? [];
      list.push(slot.vip.ip);
      byInterface.set(slot.vip.interface, list);
    }
    for (const [ifname, ips] of byInterface) {
      net.announce(ifname, ips, { count: 1, mode: this.config.announce.mode }).catch((error: Error) => this.emit('error', { operation: 'reannounce', error }));
    }
  }

  /** Reads the kernel's neighbours on the VIP links and shares a bounded list with peers. */
  private async shareNeighbours(): Promise<void> {
    const links = new Set([...this.slots.values()].map((s) => s.vip.interface));
    const list: Array<{ address: string; mac: string }> = [];
    for (const ifname of links) {
      try {
        for (const n of await net.neighbours(ifname)) {
          if (n.mac && n.mac !== '00:00:00:00:00:00' && n.state !== 'FAILED' && n.state !== 'INCOMPLETE') list.push({ address: n.address, mac: n.mac });
        }
      } catch {
        // A link that went away: nothing to share from it.
      }
    }
    const bounded = list.slice(0, this.options.maxSharedNeighbours);
    if (JSON.stringify(bounded) !== JSON.stringify(this.sharedNeighbours)) {
      this.sharedNeighbours = bounded;
      this.publish();
    }
  }

  /** Hosts our peers know (for arpAllHosts after a takeover), of one family. */
  private peerNeighbours(family: 4 | 6): Array<{ address: string; mac: string }> {
    const seen = new Set<string>();
    const out: Array<{ address: string; mac: string }> = [];
    for (const peer of this.membership.peers()) {
      for (const n of peer.neighbours) {
        const key = `${n.address} ${n.mac}`;
        if (seen.has(key) || n.address.includes(':') !== (family === 6)) continue;
        seen.add(key);
        out.push(n);
      }
    }
    return out;
  }

  // --- helpers -------------------------------------------------------------

  /** Binding name → info, from every declaration in the view and the election's flags. */
  private computeBindings(view: ClusterView = this.view()): Map<string, BindingInfo> {
    const out = new Map<string, BindingInfo>();
    const settings = new Map(this.config.bindings.map((b) => [b.name, b]));
    for (const n of view.nodes) {
      if (!n.live) continue;
      for (const v of n.declaration.vips) {
        if (!v.binding || (out.has(v.binding) && n.node !== this.node)) continue;
        const outcome = this.assignment?.vips.get(v.ip);
        const slot = this.slots.get(v.ip);
        const local = slot?.phase === 'held';
        let holder: string | null = local ? this.node : null;
        let epoch = local && slot ? slot.epoch : 0;
        if (!local) {
          for (const m of view.nodes) {
            const e = m.node !== this.node && m.live ? m.holding.get(v.ip) : undefined;
            if (e !== undefined && e >= epoch) {
              holder = m.node;
              epoch = e;
            }
          }
        }
        const broken = outcome?.flags.broken !== undefined;
        const setting = settings.get(v.binding);
        out.set(v.binding, {
          name: v.binding,
          address: v.ip,
          holder: broken ? null : holder,
          local: local && !broken,
          state: broken ? 'broken' : local ? 'owned' : holder ? 'standby' : 'unowned',
          epoch,
          ...(setting?.group ? { group: setting.group } : {}),
          ...(setting ? { weight: setting.weight } : {}),
        });
      }
    }
    return out;
  }

  /** Recomputes bindings and emits 'binding' for each that changed. */
  private refreshBindings(view?: ClusterView): void {
    const next = this.computeBindings(view);
    const previous = this.bindingInfos;
    this.bindingInfos = next;
    for (const [name, info] of next) {
      const before = previous.get(name);
      if (!before || before.holder !== info.holder || before.state !== info.state || before.epoch !== info.epoch || before.local !== info.local) this.emit('binding', info, before);
    }
    for (const [name, before] of previous) {
      if (!next.has(name)) this.emit('binding', { ...before, holder: null, local: false, state: 'unowned' }, before);
    }
  }

  /** No acquisitions for one dead-after period (releases still happen). */
  private resettle(): void {
    this.settleUntil = Math.max(this.settleUntil, now() + this.config.timers.deadAfterMs);
    this.schedule(this.config.timers.deadAfterMs + 1, () => this.requestReconcile());
  }

  private holdings(): Map<string, number> {
    const held = new Map<string, number>();
    for (const slot of this.slots.values()) if (slot.phase !== 'idle') held.set(slot.vip.ip, slot.epoch);
    return held;
  }

  /**
   * Tells the alias reaper at once, and peers once the current turn of the event loop ends, what
   * we hold now: VIPs released or acquired one by one (a shutdown, a batch finishing) become one
   * update instead of one encoding of every holding per VIP.
   */
  private publish(options: { now?: boolean } = {}): void {
    if (!this.started) return;
    if (options.now) {
      this.publishNow();
      return;
    }
    if (this.publishQueued) return;
    this.publishQueued = true;
    setImmediate(() => {
      this.publishQueued = false;
      this.publishNow();
    });
  }

  /** Hands the current local state to the membership (sent at once when it changed). */
  private publishNow(): void {
    if (!this.started) return;
    // The reaper needs to hear of an alias before it is added (acquireAll publishes
    // with { now: true } first); a release it learns of a turn later is harmless.
    this.reaper.update([...this.slots.values()].filter((s) => s.phase !== 'idle').map((s) => ({ ifname: s.vip.interface, cidr: `${s.vip.ip}/${s.vip.prefix}` })));
    this.membership.setLocal({
      declaration: this.declarationBytes,
      holdings: this.holdings(),
      unhealthy: this.health.unhealthy(this.config.vips),
      neighbours: this.sharedNeighbours,
      moves: this.moves,
    });
  }

  private track(operation: Promise<void>): void {
    this.operations.add(operation);
    void operation.finally(() => this.operations.delete(operation));
  }

  private schedule(ms: number, fn: () => void): NodeJS.Timeout {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return timer;
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

