// What both MTA plugins do the same way: read the plugin options, run the
// cluster in the one process that should own it, and answer the other
// processes from the shared state file.

import { readSecretFile } from '../runtime/secret-file';
import * as os from 'node:os';
import { PluginConfigError } from '../errors';
import { createCluster, type RuntimeOptions, type VipCluster } from '../cluster';
import { resolveConfig, type ClusterConfig, type ResolvedConfig } from '../core';
import * as net from '../net';
import type { RelayedMessage } from '../mta/types';
import { RelayClient } from '../mta/relay-client';
import { FileBindingView, LiveBindingView, type BindingView } from './binding-view';
import { DEFAULT_PLUGIN_DRAIN_MS, ListenerGate } from './listener-gate';
import { RelayGateway } from './relay-gateway';
import { defaultStateFile, SharedStateReader, SharedStateWriter } from './shared-state';
import { closeClusterOnSignal } from './close-on-signal';
import { followListenerReadiness } from './listener-readiness';
import { createAdminServer, type AdminOptions } from '../ops/admin';
import type { Server } from 'node:http';

/** The plugin options both MTAs share (ZoneMTA: under `plugins[...]`; Haraka: config/mta_vip.json). */
export interface MtaVipPluginOptions {
  /** This node's mta-vip config: cluster, listeners (the MTA's public VIP:ports), bindings, vips, topology... */
  cluster: ClusterConfig;
  /** Runtime options (relay TLS, transports, retry timers). relay.onRelay is the plugin's own. */
  runtime?: RuntimeOptions;
  /** Where the cluster's process shares its state with the MTA's other processes; default $RUNTIME_DIRECTORY or os.tmpdir()/mta-vip-<uid> (created 0700) /<cluster id>-<node>.json. */
  stateFile?: string;
  /**
   * How long a released listener VIP keeps its address after new clients are
   * refused (421), for sessions in flight in the MTA's processes; the drain
   * ends as soon as they do, and what is left is reset, never left silent.
   * Default 30,000 ms, like the library's listeners.
   */
  drainMs?: number;
  /** EHLO name per binding; default the host name. */
  hostnames?: Record<string, string>;
  /**
   * The admin HTTP endpoint (GET /status, /metrics, /explain; POST /move), run
   * in the cluster's process: { host (default 127.0.0.1), port (default 7980), token }.
   * Off unless given.
   */
  admin?: AdminOptions;
}

export { PluginConfigError } from '../errors';

/** Checks the shape of the options and resolves the cluster config (throws PluginConfigError / ConfigError). */
export function resolvePluginOptions(mta: string, value: unknown): { options: MtaVipPluginOptions; resolved: ResolvedConfig } {
  if (!value || typeof value !== 'object') throw new PluginConfigError(mta, `options are missing; see the README's "ZoneMTA and Haraka plugins" section (${mta}) for a complete, tested example`);
  const options = value as MtaVipPluginOptions;
  if (!options.cluster || typeof options.cluster !== 'object') {
    throw new PluginConfigError(mta, '"cluster" is missing: put this node\'s mta-vip config (node, cluster: { id, secret, bind, peers }, listeners, bindings, vips) under it');
  }
  if (options.drainMs !== undefined && !(Number.isFinite(options.drainMs) && options.drainMs >= 0)) throw new PluginConfigError(mta, '"drainMs" must be a number of milliseconds >= 0');
  if (options.admin !== undefined) {
    const admin = options.admin as unknown;
    if (!admin || typeof admin !== 'object') throw new PluginConfigError(mta, '"admin" must be an object like { "port": 7980 } (host defaults to 127.0.0.1; "token" to require a bearer token)');
    const { port, host, token } = admin as AdminOptions;
    if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535)) throw new PluginConfigError(mta, '"admin.port" must be a TCP port number (0 to 65535)');
    if (host !== undefined && typeof host !== 'string') throw new PluginConfigError(mta, '"admin.host" must be an address string such as "127.0.0.1"');
    if (token !== undefined && (typeof token !== 'string' || token.length < 16)) throw new PluginConfigError(mta, '"admin.token" must be a string of at least 16 characters');
  }
  const resolved = resolveConfig(options.cluster, { hostname: options.runtime?.hostname ?? os.hostname(), interfaces: net.interfaces(), readSecretFile });
  return { options, resolved };
}

/** The failover listener IPs: the VIPs the MTA's wildcard listener serves. */
export function failoverListenerIps(resolved: ResolvedConfig): string[] {
  return [...new Set(resolved.listeners.filter((l) => l.failover).map((l) => l.ip))];
}

export function stateFileOf(options: MtaVipPluginOptions, resolved: ResolvedConfig): string {
  return options.stateFile ?? defaultStateFile(resolved.cluster.id, resolved.node);
}

/** The EHLO name a binding introduces itself with. */
export function hostnameOf(options: MtaVipPluginOptions, binding: string): string {
  return options.hostnames?.[binding] ?? options.runtime?.transports?.names?.[binding]?.hostname ?? os.hostname();
}

export interface ClusterProcess {
  cluster: VipCluster;
  view: BindingView;
  writer: SharedStateWriter;
  /** Removes the signal handlers, closes the cluster and removes the state file. */
  close(): Promise<void>;
}

/**
 * Creates and starts the cluster in this process: a listener gate for every
 * failover listener, relayed messages handed to `onRelay`, the shared state
 * file kept current, and SIGTERM/SIGINT releasing the VIPs before the MTA's own
 * shutdown. Resolves once the cluster has started (it acquires VIPs after settling).
 */
export async function startClusterProcess(
  mta: string,
  options: MtaVipPluginOptions,
  resolved: ResolvedConfig,
  onRelay: (message: RelayedMessage) => Promise<void>,
  log: (level: 'info' | 'error', message: string) => void,
): Promise<ClusterProcess> {
  const runtime: RuntimeOptions = { ...options.runtime, relay: { ...options.runtime?.relay, onRelay } };
  const cluster = createCluster(options.cluster, runtime);
  const writer = new SharedStateWriter(stateFileOf(options, resolved), cluster, failoverListenerIps(resolved));
  for (const ip of failoverListenerIps(resolved)) cluster.addService(new ListenerGate(ip, writer, options.drainMs ?? DEFAULT_PLUGIN_DRAIN_MS, mta));
  cluster.on('acquired', (e) => log('info', `acquired ${e.ip} (epoch ${e.epoch}, ${e.tookMs} ms)`));
  cluster.on('released', (e) => log('info', `released ${e.ip}: ${e.reason} ${e.detail}`));
  cluster.on('binding', (b) => log('info', `binding ${b.name} ${b.address}: ${b.state}, holder ${b.holder ?? 'nobody'}`));
  cluster.on('peer-up', (p) => log('info', `peer up ${p.node} ${p.address}`));
  cluster.on('peer-down', (p) => log('info', `peer down ${p.node} ${p.address}: ${p.reason}`));
  cluster.on('conflict', (c) => log('error', `conflict on ${c.ip} (${c.kind}): ${c.message}`));
  cluster.on('error', (e) => log('error', `${e.operation}${e.ip ? ` ${e.ip}` : ''}: ${e.error.message}`));
  // The signal waits for the drains (plus time to say goodbye), never cutting them short.
  const drainMs = options.drainMs ?? DEFAULT_PLUGIN_DRAIN_MS;
  const restoreSignals = closeClusterOnSignal(cluster, { timeoutMs: Math.max(drainMs, options.runtime?.sessionDrainMs ?? 30_000) + 5000, log: (message) => log('info', message) });
  // No listener VIP before the MTA itself listens for it (and none after it stopped).
  const stopReadiness = followListenerReadiness(cluster, resolved, log);
  await cluster.start();
  let admin: Server | null = null;
  if (options.admin) {
    admin = await createAdminServer(cluster, options.admin);
    const address = admin.address();
    log('info', `admin endpoint on ${address && typeof address === 'object' ? `${address.address}:${address.port}` : String(address)}`);
  }
  log('info', `cluster ${resolved.cluster.id} started as node ${cluster.node} on ${resolved.cluster.bind}; state shared in ${writer.file}`);
  return {
    cluster,
    view: new LiveBindingView(cluster, writer),
    writer,
    async close() {
      restoreSignals();
      stopReadiness();
      admin?.close();
      await cluster.close();
      writer.close();
    },
  };
}

/** A worker process's view of the cluster (from the state file). */
export function workerView(options: MtaVipPluginOptions, resolved: ResolvedConfig): FileBindingView {
  return new FileBindingView(new SharedStateReader(stateFileOf(options, resolved)), resolved.node, failoverListenerIps(resolved));
}

/** The loopback next hop for bindings held elsewhere. */
export function createRelayGateway(options: MtaVipPluginOptions, resolved: ResolvedConfig, view: BindingView, log: (level: 'info' | 'error', message: string) => void): RelayGateway {
  const client = new RelayClient({
    node: resolved.node,
    secret: resolved.cluster.secret,
    ...(options.runtime?.relay?.clientTls ? { tls: options.runtime.relay.clientTls } : {}),
  });
  return new RelayGateway({
    view,
    client,
    onError: (error) => log('error', `relay gateway: ${error.message}`),
    onRelay: (e) => log(e.ok ? 'info' : 'error', `relay of binding ${e.binding} to ${e.holder ?? 'nobody'}: ${e.ok ? 'accepted' : 'failed'} ${e.response}`),
  });
}

/** A temporary failure an MTA turns into a deferral (4xx). */
export function temporaryError(message: string): Error & { responseCode: number; temporary: true; category: 'network'; action: 'defer' } {
  return Object.assign(new Error(message), { responseCode: 451, temporary: true as const, category: 'network' as const, action: 'defer' as const });
}
