// The questions an MTA hook asks about the cluster, answered the same way in
// the process that runs the cluster (straight from it) and in worker processes
// (from the shared state file).

import type { VipCluster } from '../cluster';
import { clientIp } from '../core/ip';
import type { BindingInfo } from '../mta/types';
import type { ListenerGateState, SharedStateReader, SharedStateWriter } from './shared-state';

/** 'unmanaged': not a failover listener of the config (e.g. 127.0.0.1), so never refused. */
export type ListenerAnswer = ListenerGateState | 'unmanaged';

export interface BindingView {
  /** This node's name. */
  readonly node: string;
  /** The binding as the cluster sees it, or undefined when unknown (or the cluster process is not running). */
  binding(name: string): BindingInfo | undefined;
  /** Where `node`'s relay listener is. */
  clusterAddress(node: string): { host: string; port: number } | undefined;
  /** Whether a client arriving on `ip` may be served here now. */
  listenerState(ip: string): ListenerAnswer;
}

/** In the process that runs the cluster. */
export class LiveBindingView implements BindingView {
  constructor(
    private readonly cluster: VipCluster,
    private readonly writer: SharedStateWriter,
  ) {}

  get node(): string {
    return this.cluster.node;
  }

  binding(name: string): BindingInfo | undefined {
    return this.cluster.binding(name);
  }

  clusterAddress(node: string): { host: string; port: number } | undefined {
    return this.cluster.clusterAddress(node);
  }

  listenerState(ip: string): ListenerAnswer {
    return this.writer.listenerState(normalizeIp(ip)) ?? 'unmanaged';
  }
}

/** In a worker process, from the file the cluster's process writes. */
export class FileBindingView implements BindingView {
  readonly node: string;
  private readonly managed: Set<string>;

  /**
   * @param managedListenerIps the config's failover listener IPs: refused until the file says 'serving'
   *   (also before the cluster's process has written the file at all).
   */
  constructor(
    private readonly reader: SharedStateReader,
    node: string,
    managedListenerIps: Iterable<string>,
  ) {
    this.node = node;
    this.managed = new Set(managedListenerIps);
  }

  binding(name: string): BindingInfo | undefined {
    return this.reader.read()?.bindings.find((b) => b.name === name);
  }

  clusterAddress(node: string): { host: string; port: number } | undefined {
    return this.reader.read()?.relays[node];
  }

  listenerState(ip: string): ListenerAnswer {
    const canonical = normalizeIp(ip);
    const state = this.reader.read()?.listeners[canonical];
    if (state) return state;
    return this.managed.has(canonical) ? 'idle' : 'unmanaged';
  }
}

/** '::ffff:198.51.100.7' (a wildcard IPv6 socket's view of an IPv4 client) -> '198.51.100.7'; IPv6 canonical (see core/ip). */
export const normalizeIp = clientIp;

/**
 * The binding once it has a holder and is not BROKEN (asking the view every
 * 50 ms for up to waitMs), else undefined. A binding between holders (its old
 * holder draining, the new one acquiring) has none for a moment; an MTA that
 * deferred then would retry only on its own schedule (Haraka's first retry is
 * 64 s later, ZoneMTA's 5 min), so hooks wait this moment out instead.
 */
export async function waitForHolder(view: BindingView, name: string, waitMs: number): Promise<BindingInfo | undefined> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const info = view.binding(name);
    if (info && info.holder && info.state !== 'broken' && (info.state === 'owned' || !info.local)) return info;
    if (Date.now() >= deadline) return undefined;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
