/**
 * Pure helpers of the engine's election round: the election's options, when
 * unknown declarations stop holding acquisitions up, clashes of claims, and
 * the events an outcome change makes.
 */
import { compareClaims, vipState, type Assignment, type ClusterView, type ElectOptions, type ResolvedConfig, type ResolvedVip, type VipFlags, type VipOutcome } from '../core';
import type { EngineEvent, EnginePeer } from './engine-io';

/**
 * The election's options. Towards a majority counts every node seen (every peer in the table,
 * live, dead or gone: one heard only saying goodbye too) and every configured peer never heard
 * from. A node that rebooted and heard a peer only leave counted neither, so it found a
 * majority where its peers (who knew that node) found none, and served alone (the simulation,
 * seed 309285: the two sides disagreed and a VIP went unserved).
 */
export function electOptions(config: ResolvedConfig, knownNodes: ReadonlySet<string>, peers: readonly EnginePeer[]): ElectOptions {
  const known = new Set(knownNodes);
  for (const peer of peers) known.add(peer.node);
  const heard = new Set(peers.map((p) => p.address));
  for (const peer of config.cluster.peers) {
    if (peer.ip !== config.cluster.bind && !heard.has(peer.ip)) known.add(`unheard ${peer.ip}`);
  }
  return { holdDownMs: config.timers.holdDownMs, quorum: config.quorum ? { knownNodes: known } : null, rebalance: config.rebalance };
}

/** When the last live peer whose declaration is unknown stops holding up acquisitions, or null. */
export function declarationsDueBy(peers: readonly EnginePeer[], now: number, waitMs: number): number | null {
  let due: number | null = null;
  for (const peer of peers) {
    if (!peer.live || peer.leaving || peer.declaration !== null) continue;
    const until = peer.liveSince + waitMs;
    if (until > now) due = Math.max(due ?? 0, until);
  }
  return due;
}

/** The name of a live peer advertising `vip` with a better claim than ours (epoch, preference, name), if any. */
export function betterClaimOn(self: string, vip: ResolvedVip, epoch: number, view: ClusterView): string | null {
  const mine = { node: self, epoch, preferred: vip.preferred === self };
  for (const n of view.nodes) {
    if (n.node === self || !n.live) continue;
    const theirs = n.holding.get(vip.ip);
    if (theirs === undefined) continue;
    const declared = n.declaration.vips.find((v) => v.ip === vip.ip);
    if (compareClaims({ node: n.node, epoch: theirs, preferred: declared?.preferred === n.node }, mine) < 0) return n.node;
  }
  return null;
}

/** 'state' events for the VIPs of `managed` whose owner, rule or flags changed, and 'conflict' for new flags. */
export function outcomeEvents(self: string, managed: ReadonlySet<string>, before: ReadonlyMap<string, VipOutcome>, assignment: Assignment): EngineEvent[] {
  const events: EngineEvent[] = [];
  for (const [ip, outcome] of assignment.vips) {
    if (!managed.has(ip)) continue;
    const was = before.get(ip);
    if (was && was.owner === outcome.owner && was.rule === outcome.rule && flagKey(was.flags) === flagKey(outcome.flags)) continue;
    events.push({ name: 'state', args: [{ ip, state: vipState(outcome, self), owner: outcome.owner, rule: outcome.rule, flags: outcome.flags, previousOwner: was?.owner ?? null }] });
    for (const kind of ['broken', 'conflict', 'unsafe'] as const) {
      const evidence = outcome.flags[kind];
      if (evidence && !was?.flags[kind]) events.push({ name: 'conflict', args: [{ ip, kind, message: evidence.message }] });
    }
  }
  return events;
}

/** Hosts our peers know (for arpAllHosts after a takeover), of one family, each once. */
export function knownHosts(peers: readonly EnginePeer[], family: 4 | 6): Array<{ address: string; mac: string }> {
  const seen = new Set<string>();
  const out: Array<{ address: string; mac: string }> = [];
  for (const peer of peers) {
    for (const n of peer.neighbours) {
      const key = `${n.address} ${n.mac}`;
      if (seen.has(key) || n.address.includes(':') !== (family === 6)) continue;
      seen.add(key);
      out.push({ address: n.address, mac: n.mac });
    }
  }
  return out;
}

function flagKey(flags: VipFlags): string {
  return `${flags.conflict ? 'c' : ''}${flags.unsafe ? 'u' : ''}${flags.broken ? 'b' : ''}`;
}
