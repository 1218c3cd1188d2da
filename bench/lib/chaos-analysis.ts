/**
 * What a chaos campaign measured, from the kernels' address events and the
 * times faults were really applied and healed: dual holders (split into those
 * that began while the two holders could hear each other, a safety failure,
 * and those that began across a cut, which both sides serve as VRRP does),
 * orphans while a healthy declarer was there, and holder changes that no
 * fault explains (false failovers).
 *
 * Pure: the same inputs give the same report, so it is unit-tested on
 * hand-made timelines. Time is walked in steps of `stepMs`.
 */
import { MAX_LOSS_DEAD_AFTERS, lossFadeMs } from '../../lib/transport/loss-estimate';
import type { FaultKind } from './chaos-plan';

export interface AddressChange {
  atMs: number;
  host: string;
  ip: string;
  added: boolean;
}

export interface AppliedFault {
  index: number;
  kind: FaultKind;
  node: string;
  side?: string[];
  binding?: string;
  /** When it was applied and when it was healed (a restart: once the node said 'started'). */
  fromMs: number;
  toMs: number;
}

export interface ChaosTimeline {
  vips: Array<{ ip: string; declarers: string[]; binding?: string }>;
  nodes: string[];
  events: AddressChange[];
  faults: AppliedFault[];
  /** The measured window: from the cluster's first settled state to the end of the last calm. */
  fromMs: number;
  toMs: number;
  heartbeatMs: number;
  deadAfterMs: number;
  /** One announcement round, part of the dual-holder bound. */
  announceMs: number;
  /** Probe, add and announce: part of the orphan bound. */
  acquisitionMs: number;
  stepMs?: number;
}

export interface Interval {
  ip: string;
  fromMs: number;
  ms: number;
  hosts: string[];
  /** Faults active (or healed less than a grace ago) when it began. */
  faults: number[];
}

export interface ChaosReport {
  dualConnected: { count: number; longestMs: number; totalMs: number; overBound: Interval[] };
  dualPartitioned: { count: number; longestMs: number; totalMs: number; longestAfterMergeMs: number };
  orphan: { count: number; longestMs: number; totalMs: number; overBound: Interval[] };
  /**
   * Orphans begun while random loss was on, or had ended less than lossFadeMs ago: detection
   * waits out the silence limit that the measured loss earns (at most MAX_LOSS_DEAD_AFTERS
   * dead-afters, loss-estimate.ts), so they have their own bound. Kept apart from `orphan`,
   * whose bound is the clean network's.
   */
  orphanUnderLoss: { count: number; longestMs: number; totalMs: number; overBound: Interval[] };
  holderChanges: number;
  falseFailovers: number;
  bounds: { dualMs: number; orphanMs: number; orphanUnderLossMs: number };
}

const STOPPING: ReadonlySet<FaultKind> = new Set(['kill', 'term', 'stop', 'link', 'broken']);

/**
 * The faults active at `at` (applied, and healed less than `slack` ago), for times asked in
 * increasing order: a window slid over the faults sorted by start, so a long campaign's walk
 * costs the faults open at each step rather than all of them.
 */
function activeAt(faults: readonly AppliedFault[], slack: number): (at: number) => AppliedFault[] {
  const sorted = [...faults].sort((a, b) => a.fromMs - b.fromMs);
  let next = 0;
  let open: AppliedFault[] = [];
  return (at) => {
    while (next < sorted.length && (sorted[next] as AppliedFault).fromMs <= at) open.push(sorted[next++] as AppliedFault);
    open = open.filter((f) => at < f.toMs + slack);
    return open;
  };
}

export function analyseChaos(t: ChaosTimeline): ChaosReport {
  const step = t.stepMs ?? 5;
  const grace = 2 * t.deadAfterMs;
  const bounds = { dualMs: t.heartbeatMs + t.announceMs, orphanMs: t.deadAfterMs + t.acquisitionMs, orphanUnderLossMs: MAX_LOSS_DEAD_AFTERS * t.deadAfterMs + t.acquisitionMs };
  const lossFade = lossFadeMs(t.heartbeatMs);
  /** The two cannot hear each other at L2 under `current` faults: a cut between them, or a link down. */
  const separated = (a: string, b: string, current: AppliedFault[]): boolean =>
    current.some((f) => (f.kind === 'partition' && (f.side ?? []).includes(a) !== (f.side ?? []).includes(b)) || (f.kind === 'link' && (f.node === a || f.node === b)));
  /** Running, not stopped, link up, for at least a grace (a restarted or resumed node first listens); `recent`: faults active or healed less than a grace ago. */
  const eligible = (node: string, recent: AppliedFault[]): boolean => !recent.some((f) => f.node === node && STOPPING.has(f.kind));
  const brokenExcused = (binding: string | undefined, recent: AppliedFault[]): boolean => binding !== undefined && recent.some((f) => f.kind === 'broken' && f.binding === binding);
  /**
   * A fault that can take one of the VIP's declarers out of the election (down, stopped, cut
   * off, deaf or mute): begun during an orphan, it may have hit the node the others had just
   * elected, which they learn only after dead-after again. The bound then counts from it.
   */
  const hitsDeclarer = (f: AppliedFault, declarers: readonly string[]): boolean =>
    f.kind === 'partition' ? declarers.some((d) => (f.side ?? []).includes(d)) && declarers.some((d) => !(f.side ?? []).includes(d)) : f.kind !== 'loss' && f.kind !== 'broken' && declarers.includes(f.node);

  const report: ChaosReport = {
    dualConnected: { count: 0, longestMs: 0, totalMs: 0, overBound: [] },
    dualPartitioned: { count: 0, longestMs: 0, totalMs: 0, longestAfterMergeMs: 0 },
    orphan: { count: 0, longestMs: 0, totalMs: 0, overBound: [] },
    orphanUnderLoss: { count: 0, longestMs: 0, totalMs: 0, overBound: [] },
    holderChanges: 0,
    falseFailovers: 0,
    bounds,
  };
  for (const vip of t.vips) {
    const changes = t.events.filter((e) => e.ip === vip.ip).sort((a, b) => a.atMs - b.atMs);
    const holders = new Set<string>();
    let next = 0;
    const apply = (until: number): void => {
      while (next < changes.length && (changes[next] as AddressChange).atMs <= until) {
        const c = changes[next++] as AddressChange;
        if (c.added) holders.add(c.host);
        else holders.delete(c.host);
      }
    };
    apply(t.fromMs);
    let dual: { from: number; hosts: Set<string>; connected: boolean; mergedAt: number | null; faults: number[] } | null = null;
    let orphan: { from: number; blamedFrom: number | null; faults: number[] } | null = null;
    let lastHolder = holders.size === 1 ? [...holders][0] : undefined;
    let lastChangeAt = t.fromMs;
    const closeDual = (at: number): void => {
      if (!dual) return;
      const ms = at - dual.from;
      const interval: Interval = { ip: vip.ip, fromMs: dual.from, ms, hosts: [...dual.hosts], faults: dual.faults };
      if (dual.connected) {
        report.dualConnected.count++;
        report.dualConnected.totalMs += ms;
        report.dualConnected.longestMs = Math.max(report.dualConnected.longestMs, ms);
        if (ms > bounds.dualMs) report.dualConnected.overBound.push(interval);
      } else {
        report.dualPartitioned.count++;
        report.dualPartitioned.totalMs += ms;
        report.dualPartitioned.longestMs = Math.max(report.dualPartitioned.longestMs, ms);
        if (dual.mergedAt !== null) report.dualPartitioned.longestAfterMergeMs = Math.max(report.dualPartitioned.longestAfterMergeMs, at - dual.mergedAt);
      }
      dual = null;
    };
    const closeOrphan = (at: number): void => {
      if (!orphan) return;
      if (orphan.blamedFrom !== null) {
        const ms = at - orphan.blamedFrom;
        const from = orphan.blamedFrom;
        const underLoss = t.faults.some((f) => f.kind === 'loss' && f.fromMs <= from && from < f.toMs + lossFade);
        const stats = underLoss ? report.orphanUnderLoss : report.orphan;
        stats.count++;
        stats.totalMs += ms;
        stats.longestMs = Math.max(stats.longestMs, ms);
        if (ms > (underLoss ? bounds.orphanUnderLossMs : bounds.orphanMs)) stats.overBound.push({ ip: vip.ip, fromMs: from, ms, hosts: [], faults: orphan.faults });
      }
      orphan = null;
    };
    const currentAt = activeAt(t.faults, 0);
    const recentAt = activeAt(t.faults, grace);
    for (let at = t.fromMs; at < t.toMs; at += step) {
      apply(at);
      const list = [...holders];
      const current = currentAt(at);
      const recent = recentAt(at);
      const faults = recent.map((f) => f.index);
      if (list.length >= 2) {
        closeOrphan(at);
        const apart = list.some((a) => list.some((b) => a < b && separated(a, b, current)));
        if (!dual) dual = { from: at, hosts: new Set(list), connected: !apart, mergedAt: null, faults };
        for (const h of list) dual.hosts.add(h);
        if (!dual.connected && !apart && dual.mergedAt === null) dual.mergedAt = at;
        if (!dual.connected && apart) dual.mergedAt = null;
      } else {
        closeDual(at);
      }
      if (list.length === 0) {
        if (!orphan) orphan = { from: at, blamedFrom: null, faults };
        const blamed = !brokenExcused(vip.binding, recent) && vip.declarers.some((n) => eligible(n, recent));
        if (blamed && orphan.blamedFrom === null) {
          orphan.blamedFrom = at;
          orphan.faults = faults;
        }
        // An excused stretch (no healthy declarer, or BROKEN) restarts the clock.
        if (!blamed) orphan.blamedFrom = null;
        // So does a fault begun meanwhile on a declarer (see hitsDeclarer).
        else if (orphan.blamedFrom !== null) {
          const blamedFrom: number = orphan.blamedFrom;
          const later = current.filter((f) => f.fromMs > blamedFrom && hitsDeclarer(f, vip.declarers));
          if (later.length) {
            orphan.blamedFrom = Math.max(...later.map((f) => f.fromMs));
            orphan.faults = [...new Set([...orphan.faults, ...later.map((f) => f.index)])];
          }
        }
      } else {
        closeOrphan(at);
      }
      if (list.length === 1 && list[0] !== lastHolder) {
        if (lastHolder !== undefined) {
          report.holderChanges++;
          // False: neither the old nor the new holder was down, cut off or BROKEN since the last
          // change (a failback to a node that came back is planned). Loss, deafness and muteness
          // do not excuse it: the old holder was alive and serving.
          const from = lastHolder;
          const to = list[0] as string;
          const excused = t.faults.some(
            (f) =>
              f.fromMs <= at &&
              f.toMs + grace >= lastChangeAt &&
              ((STOPPING.has(f.kind) && (f.node === from || f.node === to)) ||
                (f.kind === 'broken' && f.binding === vip.binding) ||
                (f.kind === 'partition' && (f.side ?? []).includes(from) !== (f.side ?? []).includes(to))),
          );
          if (!excused) report.falseFailovers++;
        }
        lastHolder = list[0];
        lastChangeAt = at;
      }
    }
    closeDual(t.toMs);
    closeOrphan(t.toMs);
  }
  return report;
}
