// Whether the MTA's own listener is up for each failover listener VIP.
//
// A plugin's cluster runs in one process while the MTA listens in others
// (ZoneMTA's receivers, Haraka's workers through the cluster master), and
// they start at different moments: Haraka forks its workers only after the
// cluster has started. A node given a listener VIP before its MTA listens
// answers clients with connection refused — on boot, and on every failback,
// where a preferred node takes its VIP back the moment its hold-down ends. So
// each listener VIP is marked not ready until the kernel shows a listening
// socket for every port of it (on the wildcard address or the VIP itself),
// and again whenever that socket goes away (the MTA's listener died), so the
// VIP moves to a node that can serve it.

import type { VipCluster } from '../cluster';
import type { ResolvedConfig } from '../core';
import * as net from '../net';

const WILDCARDS = ['0.0.0.0', '::'];

/** VIP -> the ports the MTA must listen on for it. */
export function listenerPortsByVip(resolved: ResolvedConfig): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const listener of resolved.listeners) {
    if (!listener.failover) continue;
    out.set(listener.ip, [...new Set([...(out.get(listener.ip) ?? []), listener.port])].sort((a, b) => a - b));
  }
  return out;
}

/** The VIPs whose every port has a listening socket (wildcard or on the VIP) among `sockets`. */
export function readyVips(ports: ReadonlyMap<string, readonly number[]>, sockets: readonly net.TcpSocket[]): Set<string> {
  const listening = new Set(sockets.filter((s) => s.state === 'LISTEN').map((s) => `${s.local}|${s.localPort}`));
  const ready = new Set<string>();
  for (const [ip, list] of ports) {
    if (list.every((port) => listening.has(`${ip}|${port}`) || WILDCARDS.some((w) => listening.has(`${w}|${port}`)))) ready.add(ip);
  }
  return ready;
}

/**
 * Marks every listener VIP not ready now (call before cluster.start()), then
 * follows the kernel's listening sockets: every 200 ms until all are ready,
 * every second after. Returns a function that stops following.
 */
export function followListenerReadiness(cluster: VipCluster, resolved: ResolvedConfig, log: (level: 'info' | 'error', message: string) => void): () => void {
  const ports = listenerPortsByVip(resolved);
  const state = new Map<string, boolean>();
  for (const ip of ports.keys()) {
    cluster.setReady(ip, false, `no process listens on ${ip} port ${ports.get(ip)?.join(', ')} yet (the MTA's listener)`);
    state.set(ip, false);
  }
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let failures = 0;
  const check = async (): Promise<void> => {
    try {
      const sockets = await net.tcpSockets([...WILDCARDS, ...ports.keys()], { listening: true });
      failures = 0;
      if (stopped) return;
      const ready = readyVips(ports, sockets);
      for (const [ip, was] of state) {
        const now = ready.has(ip);
        if (now === was) continue;
        state.set(ip, now);
        cluster.setReady(ip, now, `the MTA stopped listening on ${ip} port ${ports.get(ip)?.join(', ')}`);
        log(now ? 'info' : 'error', now ? `listener VIP ${ip} ready: the MTA listens on port ${ports.get(ip)?.join(', ')}` : `listener VIP ${ip} not ready: nothing listens on port ${ports.get(ip)?.join(', ')} any more`);
      }
    } catch (error) {
      if (failures++ === 0) log('error', `cannot read listening sockets: ${(error as Error).message}`);
    }
    if (stopped) return;
    const allReady = [...state.values()].every(Boolean);
    timer = setTimeout(() => void check(), allReady ? 1000 : 200);
    timer.unref();
  };
  void check();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}
