/**
 * The cluster runtime's public facade: listen, binding, transport, send,
 * status, explain, move, setReady, start, close. Every decision is the pure
 * engine's (lib/runtime/engine.ts); the driver (lib/runtime/driver.ts) runs
 * its effects through ports (the addon, the clock, the membership); this file
 * wires them together and answers the application.
 */
import { readSecretFile } from './runtime/secret-file';
import { EventEmitter } from 'eventemitter3';
import * as os from 'node:os';
import { declare, encodeDeclaration, canonicalIp, parseHostPort, resolveConfig, vipState, type ClusterConfig, type ClusterView, type Explanation, type ResolvedConfig, type VipFlags } from './core';
import type * as net from './net';
import { Membership, type PeerState } from './transport';
import { DeclarationCache } from './runtime/view-builder';
import { AliasReaper } from './runtime/alias-reaper';
import { assertNetworkPrivileges } from './runtime/privileges';
import { VipEngine } from './runtime/engine';
import { EngineDriver } from './runtime/driver';
import { realClock, realNet, type Clock, type NetPort } from './runtime/ports';
import type { ClusterEvents, PeerChange, Publication } from './runtime/engine-io';
import type { VipState } from './runtime/vip-lifecycle';
import type { RuntimeOptions } from './runtime/options';
import type { BindingDirectory, BindingInfo, RawMessage, VipService } from './mta/types';
import { SmtpListener, type SmtpListenerOptions, type SmtpServerFactory } from './mta/listener';
import { BindingTransports, type SendResult } from './mta/bindings';
import type { BindingTransportOptions } from './mta/binding-transport';
import type { PickStrategy } from './mta/pick';
import { RelayClient } from './mta/relay-client';
import { RelayServer } from './mta/relay-server';
import type { SMTPServerOptions } from 'smtp-server';
import type { SendMailOptions, SentMessageInfo, Transporter } from 'nodemailer';

export type { RuntimeOptions } from './runtime/options';
export type { AcquiredEvent, ReleasedEvent, StateEvent, ConflictEvent, ErrorEvent, ClusterEvents } from './runtime/engine-io';

export interface VipStatus {
  ip: string;
  interface: string;
  binding: string | null;
  ports: number[];
  state: 'owned' | 'standby' | 'unowned';
  owner: string | null;
  rule: string;
  flags: VipFlags;
  /** This node's address state for the VIP (see runtime/vip-lifecycle.ts). */
  phase: VipState;
  epoch: number;
  participants: string[];
  /** Why this node cannot serve it now; `also` lists its other problems when it has several. */
  unhealthy: { reason: string; detail: string; also?: string[] } | null;
  services: string[];
}

export interface ClusterStatus {
  node: string;
  settled: boolean;
  quorum: boolean;
  vips: VipStatus[];
  /** `neighbours`: the hosts each peer shared (bounded), which a new holder reaches with arpAllHosts. */
  peers: Array<{ node: string; address: string; live: boolean; lastHeardMsAgo: number; lossPercent: number; silenceLimitMs: number; holding: string[]; complete: boolean; neighbours: Array<{ address: string; mac: string }> }>;
  /**
   * Configured peer addresses (cluster.peers) from which nothing has been heard since this node
   * started: a typo, a firewall, a node not started yet. Not counted as nodes (their names are
   * unknown), but shown so that an operator sees them.
   */
  unheardPeers: string[];
  counters: Record<string, number>;
}

/** Creates a cluster node; throws ConfigError (listing every problem) on a bad config. */
export function createCluster(config: ClusterConfig, options: RuntimeOptions = {}): VipCluster {
  return new VipCluster(config, options);
}

export class VipCluster extends EventEmitter<ClusterEvents> implements BindingDirectory {
  readonly config: ResolvedConfig;
  readonly node: string;
  private readonly engine: VipEngine;
  private readonly driver: EngineDriver;
  private readonly membership: Membership;
  private readonly net: NetPort;
  private readonly clock: Clock;
  private readonly declarationBytes: Buffer;
  private readonly vipServices = new Map<string, VipService[]>();
  private readonly plainServices: VipService[] = [];
  private readonly reaper = new AliasReaper();
  private readonly relayPort: number;
  private readonly outbound: BindingTransports;
  private readonly options: RuntimeOptions;
  private readonly shareNeighboursMs: number;
  private readonly maxSharedNeighbours: number;
  private watcher: net.Closable | null = null;
  private neighbourTimer: NodeJS.Timeout | null = null;
  private checkInTimer: NodeJS.Timeout | null = null;
  private lastCheckInAt = 0;
  private started = false;
  private closing = false;

  constructor(input: ClusterConfig, options: RuntimeOptions = {}) {
    super();
    this.options = options;
    this.net = options.ports?.net ?? realNet;
    this.clock = options.ports?.clock ?? realClock;
    this.shareNeighboursMs = options.shareNeighboursMs ?? 1000;
    this.maxSharedNeighbours = options.maxSharedNeighbours ?? 256;
    this.config = resolveConfig(input, { hostname: options.hostname ?? os.hostname(), interfaces: this.net.interfaces(), readSecretFile });
    this.node = this.config.node;
    const declaration = declare(this.config);
    this.declarationBytes = encodeDeclaration(declaration);
    for (const vip of this.config.vips) this.vipServices.set(vip.ip, []);
    const cache = new DeclarationCache();
    this.engine = new VipEngine(this.config, declaration, cache, { retryUnhealthyMs: options.retryUnhealthyMs ?? 10000, declarationWaitMs: options.declarationWaitMs ?? 3000 });
    const cluster = this.config.cluster;
    this.membership = new Membership({
      clusterId: cluster.id,
      node: this.node,
      secret: cluster.secret,
      bind: cluster.bind,
      port: cluster.port,
      peers: cluster.peers.map((p) => ({ address: p.ip, port: p.port })),
      ...(cluster.multicast ? { multicast: cluster.multicast } : {}),
      heartbeatMs: this.config.timers.heartbeatMs,
      deadAfterMs: this.config.timers.deadAfterMs,
      vipsOf: (bytes) => cache.vipsOf(bytes),
      fastCrashDetection: options.fastCrashDetection ?? true,
      now: () => this.clock.now(),
    });
    const { announce } = this.config;
    this.driver = new EngineDriver(this.engine, this.net, this.clock, { publish: (state) => this.publish(state) }, this, this.vipServices, {
      announceMode: announce.mode,
      announceCount: announce.count,
      announceIntervalMs: announce.intervalMs,
      sessionDrainMs: options.sessionDrainMs ?? 30000,
      ...(options.logger ? { logger: options.logger } : {}),
    });
    const peers = (change?: PeerChange): void => this.driver.step({ type: 'peers', peers: this.membership.peers(), ...(change ? { change } : {}) });
    this.membership.on('peer-up', (peer: PeerState) => peers({ kind: 'up', node: peer.node, address: peer.address }));
    this.membership.on('peer-down', (peer: PeerState, reason: string) => peers({ kind: 'down', node: peer.node, address: peer.address, reason }));
    this.membership.on('peer-restart', (peer: PeerState) => peers({ kind: 'restart', node: peer.node }));
    this.membership.on('change', (peer: PeerState) => peers({ kind: 'change', node: peer.node }));
    this.membership.on('neighbours', () => peers());
    this.membership.on('stall', (event: { lagMs: number }) => this.driver.step({ type: 'stall', lagMs: event.lagMs }));
    this.membership.on('refused', (addresses) => this.driver.step({ type: 'refused', addresses }));
    this.membership.on('error', (error: Error) => this.driver.deliver({ name: 'error', args: [{ operation: 'membership', error }] }));

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
      relayServer.on('error', (error) => this.driver.deliver({ name: 'error', args: [{ operation: 'relay', error }] }));
      this.plainServices.push(relayServer);
    }
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
    const managed = this.vipServices.has(canonical);
    const declared = this.config.listeners.find((l) => l.ip === canonical && l.port === port);
    if (managed && !declared) {
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
    listener.on('error', (error) => this.driver.deliver({ name: 'error', args: [{ ip: canonical, operation: `smtp ${address}`, error }] }));
    this.addService(listener);
    return listener;
  }

  // --- outbound bindings (BindingDirectory) ---------------------------------

  /** The binding as the cluster sees it now, or undefined when no live node declares it. */
  binding(name: string): BindingInfo | undefined {
    return this.engine.binding(name);
  }

  bindings(): BindingInfo[] {
    return this.engine.bindings();
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
    const services = this.vipServices.get(service.ip);
    if (services) services.push(service);
    else this.plainServices.push(service);
    return this;
  }

  /** Starts: cleans leftovers, joins the cluster, listens one dead-after period, then serves. */
  async start(): Promise<void> {
    if (this.started) return;
    // Refuse before touching the network: a node that cannot add addresses would be elected,
    // fail and give up its VIPs again and again.
    if (this.net === realNet && this.config.vips.length > 0) assertNetworkPrivileges();
    this.started = true;
    // Boot: an alias of a managed VIP left by a crashed run would answer for the VIP while
    // another node holds it. Remove it before saying anything.
    const present = new Set<string>();
    for (const iface of this.net.interfaces()) for (const a of iface.addresses) present.add(`${iface.name} ${a.address}`);
    let leftoversRemoved = 0;
    for (const vip of this.config.vips) {
      if (!present.has(`${vip.interface} ${vip.ip}`)) continue;
      await this.net.removeAddress(vip.interface, `${vip.ip}/${vip.prefix}`);
      leftoversRemoved++;
    }
    const links = this.net.interfaces().map((i) => ({ ifname: i.name, usable: i.up && i.running }));
    if (this.options.aliasReaper ?? true) {
      const { heartbeatMs, deadAfterMs } = this.config.timers;
      const guardMs = this.options.stallToleranceMs ?? Math.max(0, deadAfterMs - heartbeatMs);
      this.reaper.start((error) => this.driver.deliver({ name: 'error', args: [{ operation: 'alias reaper', error }] }), { guardMs });
      // Check-ins come from this event loop: a loop that does not run sends none.
      if (guardMs > 0) {
        this.checkInTimer = setInterval(() => {
          this.lastCheckInAt = this.clock.now();
          this.reaper.checkIn();
        }, Math.max(5, Math.floor(guardMs / 4)));
        this.checkInTimer.unref();
      }
    }
    this.watcher = this.net.watch((event) => this.onWatch(event));
    await this.membership.start();
    this.driver.step({ type: 'start', links, leftoversRemoved });
    this.driver.flushNow();
    for (const service of this.plainServices) await service.start();
    if (this.shareNeighboursMs > 0) {
      this.neighbourTimer = setInterval(() => void this.shareNeighbours(), this.shareNeighboursMs);
      this.neighbourTimer.unref();
      void this.shareNeighbours();
    }
  }

  /**
   * Graceful shutdown: releases every VIP (draining services) and says goodbye,
   * so peers take over at once instead of waiting for dead-after.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.neighbourTimer) clearInterval(this.neighbourTimer);
    if (this.started) {
      // Peers first hear that we serve nothing, then every VIP is released; sends still in
      // flight here keep learning where their binding went until the plain services drained.
      this.driver.step({ type: 'close' });
      this.driver.flushNow();
      await this.driver.whenQuiescent();
    }
    await Promise.allSettled(this.plainServices.map((s) => s.stop()));
    if (this.checkInTimer) clearInterval(this.checkInTimer);
    await this.reaper.stop();
    this.outbound.close();
    await this.membership.close();
    this.watcher?.close();
    this.driver.stop();
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
    if (!canonical || !this.vipServices.has(canonical)) throw new TypeError(`setReady: ${ip} is not a failover VIP of this node`);
    this.driver.step({ type: 'ready', ip: canonical, ready, detail });
  }

  /** Why `ip` has its owner (rule, and why each other participant was not chosen). */
  explain(ip: string): Explanation | null {
    return this.engine.explain(ip, this.clock.now());
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
    const result = this.engine.move(canonical, node, this.clock.now(), this.clock.wall());
    this.driver.flushSoon();
    return result;
  }

  /** A JSON-ready snapshot: VIPs with state, owner, flags and evidence; peers; counters. */
  status(): ClusterStatus {
    const t = this.clock.now();
    const vips: VipStatus[] = this.engine.vips().map(({ vip, state, epoch, outcome, problem }) => ({
      ip: vip.ip,
      interface: vip.interface,
      binding: vip.binding,
      ports: vip.ports,
      state: outcome ? vipState(outcome, this.node) : 'unowned',
      owner: outcome?.owner ?? null,
      rule: outcome?.rule ?? 'no-participant',
      flags: outcome?.flags ?? {},
      phase: state,
      epoch,
      participants: outcome?.participants ?? [],
      unhealthy: problem ? { reason: problem.reason, detail: problem.detail, ...(problem.also ? { also: problem.also } : {}) } : null,
      services: (this.vipServices.get(vip.ip) ?? []).map((s) => s.description),
    }));
    return {
      node: this.node,
      settled: this.engine.isSettled(t),
      quorum: this.engine.quorum,
      vips,
      peers: this.membership.peers().map((p) => ({
        node: p.node,
        address: p.address,
        live: p.live,
        lastHeardMsAgo: Math.round(t - p.lastHeard),
        lossPercent: Math.round(p.lossRate * 1000) / 10,
        silenceLimitMs: p.silenceLimitMs,
        holding: [...p.holdings.keys()],
        complete: p.complete,
        neighbours: p.neighbours,
      })),
      unheardPeers: this.unheardPeers(),
      counters: { ...this.engine.counters(), ...this.membership.counters() },
    };
  }

  private unheardPeers(): string[] {
    const heard = new Set(this.membership.peers().map((p) => p.address));
    const own = this.config.cluster.bind;
    return this.config.cluster.peers.map((p) => p.ip).filter((ip) => ip !== own && !heard.has(ip));
  }

  /** The cluster as this node sees it now (the election's input). */
  view(): ClusterView {
    return this.engine.view(this.clock.now());
  }

  private onWatch(event: net.WatchEvent): void {
    // After SIGCONT the kernel's events are read before any timer runs: the guardian's removals
    // would look like an operator's and be restored. A loop that has not run since before
    // dead-after is a stall first (release as stale), whatever the membership says later.
    const silentMs = this.clock.now() - this.lastCheckInAt;
    if (this.checkInTimer && this.lastCheckInAt > 0 && silentMs > this.config.timers.deadAfterMs) {
      this.lastCheckInAt = this.clock.now();
      this.driver.step({ type: 'stall', lagMs: silentMs });
    }
    if (event.type === 'link') this.driver.step({ type: 'link', ifname: event.ifname, usable: event.up && event.running });
    else if (event.type === 'address-removed') this.driver.step({ type: 'address-removed', ifname: event.ifname, address: event.address });
  }

  /** Hands what we hold to the alias reaper (before any address is added) and to the membership. */
  private publish(state: Publication): void {
    this.reaper.update(state.aliases);
    this.membership.setLocal({ declaration: this.declarationBytes, holdings: state.holdings, unhealthy: state.unhealthy, neighbours: state.neighbours, moves: state.moves });
  }

  /** Reads the kernel's neighbours on the VIP links; the engine shares a bounded list with peers. */
  private async shareNeighbours(): Promise<void> {
    const links = new Set(this.config.vips.map((v) => v.interface));
    // First our own MAC on the VIP link, as the entry of our cluster address: a peer whose probe
    // a leftover alias of ours answers (our process proven gone) can tell it from a live holder.
    const own = this.net.interfaces().find((i) => links.has(i.name));
    const list: Array<{ address: string; mac: string }> = own ? [{ address: this.config.cluster.bind, mac: own.mac }] : [];
    for (const ifname of links) {
      try {
        for (const n of await this.net.neighbours(ifname)) {
          if (n.mac && n.mac !== '00:00:00:00:00:00' && n.state !== 'FAILED' && n.state !== 'INCOMPLETE') list.push({ address: n.address, mac: n.mac });
        }
      } catch {
        // A link that went away: nothing to share from it.
      }
    }
    if (!this.closing) this.driver.step({ type: 'neighbours', list: list.slice(0, this.maxSharedNeighbours) });
  }
}
