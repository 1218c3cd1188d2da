// Who takes over the queue of a node that is gone, and when.
//
// Nodes that share one queue (ZoneMTA's MongoDB) each keep the deliveries they
// locked or were given assigned to their own queue instance. A node that
// crashes for good keeps them: ZoneMTA frees an instance's locks only when that
// same instance boots again (or after its one-hour lock TTL), so mail it had
// started, and mail relayed to it, waits for a machine that may never return.
//
// A node is gone when two independent signs agree for `afterMs`: the cluster's
// failure detector has it down, AND its beat in the shared store has not
// changed. The second sign matters: a node cut off from the other mail nodes
// but still writing to the store is alive and may be in the middle of a
// delivery; taking its queue then would send that mail twice. Beats are
// counters compared by the observer's own clock, so no two clocks are compared.
//
// Exactly one live node takes over: the first by name among this node and the
// live peers whose beats are fresh. Two nodes that disagree for a moment both
// reassigning is harmless: each queue entry moves atomically, to one of them.

/** A node's record in the shared store. */
export interface QueueNodeRecord {
  node: string;
  /** The node's queue instance id (ZoneMTA's `queue.instanceId`). */
  instanceId: string;
  /** Grows by one at each of the node's beats. */
  beat: number;
}

/** A gone node whose queue entries this node should reassign to itself now. */
export interface TakeoverAction {
  node: string;
  instanceId: string;
  /** The gone node's beat this decision rests on: the takeover goes ahead only if the store still has it (compare-and-set). */
  beat: number;
  /** Whether this is the first takeover since the node went (a new episode): worth a log line. */
  first: boolean;
}

export interface QueueTakeoverDecision {
  takeOver: TakeoverAction[];
  /** Nodes out of the cluster whose beats still change: alive on the store, so left alone (reported once per episode). */
  stillWriting: string[];
}

interface Observed {
  beat: number;
  /** When this node last saw the beat change (or first saw the record). */
  changedAt: number;
  /** In the current gone episode, whether the takeover has already run once. */
  /** Whether the beat changed since the first look (a record first seen is not yet proof of life). */
  changed: boolean;
  taken: boolean;
  reportedWriting: boolean;
  /** When this node first saw it down in the cluster, in the current episode (null while live). */
  downAt: number | null;
}

export class QueueTakeoverBook {
  private readonly observed = new Map<string, Observed>();

  constructor(
    private readonly self: string,
    private readonly afterMs: number,
  ) {
    if (!(Number.isFinite(afterMs) && afterMs > 0)) throw new RangeError('afterMs must be a positive number of milliseconds');
  }

  /**
   * One look at the store's records at `now` (ms, this node's monotonic clock), with the peers the
   * cluster has live. Returns the gone nodes to take over (only when this node is the one to).
   */
  observe(now: number, records: readonly QueueNodeRecord[], livePeers: ReadonlySet<string>): QueueTakeoverDecision {
    for (const record of records) {
      if (record.node === this.self) continue;
      const seen = this.observed.get(record.node);
      if (!seen) {
        this.observed.set(record.node, { beat: record.beat, changedAt: now, changed: false, taken: false, reportedWriting: false, downAt: null });
      } else if (seen.beat !== record.beat) {
        seen.beat = record.beat;
        seen.changedAt = now;
        seen.changed = true;
      }
    }
    const fresh = (node: string): boolean => {
      const seen = this.observed.get(node);
      return seen !== undefined && now - seen.changedAt < this.afterMs;
    };
    const takers = [this.self, ...records.map((r) => r.node).filter((node) => node !== this.self && livePeers.has(node) && fresh(node))];
    const taker = takers.sort()[0];
    const decision: QueueTakeoverDecision = { takeOver: [], stillWriting: [] };
    for (const record of records) {
      if (record.node === this.self) continue;
      const seen = this.observed.get(record.node) as Observed;
      if (livePeers.has(record.node)) {
        // Back (or never gone): the next time it goes is a new episode.
        seen.taken = false;
        seen.reportedWriting = false;
        seen.downAt = null;
        continue;
      }
      seen.downAt ??= now;
      if (fresh(record.node)) {
        // Down in the cluster but still beating (a beat since it went down): alive, maybe partitioned.
        if (seen.changed && seen.changedAt > seen.downAt && !seen.reportedWriting) {
          seen.reportedWriting = true;
          decision.stillWriting.push(record.node);
        }
        seen.taken = false;
        continue;
      }
      if (taker !== this.self) continue;
      decision.takeOver.push({ node: record.node, instanceId: record.instanceId, beat: seen.beat, first: !seen.taken });
      seen.taken = true;
    }
    return decision;
  }
}

/**
 * Another node registered with this node's instance id and beating within `afterMs` of `now`
 * (wall clock of the records' writers), if any: two live instances with one id would take each
 * other's locks, and ZoneMTA's boot would free the other node's locks in flight (mail sent twice).
 */
export function instanceIdClash(self: { node: string; instanceId: string }, records: ReadonlyArray<QueueNodeRecord & { at?: Date | string | number }>, now: number, afterMs: number): (QueueNodeRecord & { at?: Date | string | number }) | undefined {
  return records.find((r) => r.node !== self.node && r.instanceId === self.instanceId && r.at !== undefined && now - new Date(r.at).getTime() < afterMs);
}
