/**
 * Counters of the membership transport, for the status API and metrics.
 *
 * Every packet that reaches the receive path ends in exactly one of `accepted`,
 * `ignored_own` or one `dropped_*` reason, so `received` always equals their sum.
 */
export const DROP_REASONS = [
  'oversized',
  'malformed',
  'unsupported_version',
  'unknown_cluster',
  'bad_mac',
  'old_incarnation',
  'replay',
  'name_clash',
  'peer_table_full',
  'after_goodbye',
] as const;

export type DropReason = (typeof DROP_REASONS)[number];

/** Counter names other than drops; all start at zero so a status page always lists them. */
const OTHER_COUNTERS = [
  'sent',
  'sent_bytes',
  'send_errors',
  /** ICMP port unreachable reports from peer endpoints (nothing listens there), live peer or not. */
  'send_refused',
  /** Live peers declared dead because their host refused a packet (see fastCrashDetection). */
  'peer_unreachable',
  /** Peers declared unreachable that were heard again with the same incarnation. */
  'refusals_disproved',
  'received',
  'received_bytes',
  'accepted',
  'ignored_own',
  'heartbeats_sent',
  'heartbeats_received',
  'chunks_sent',
  'chunks_received',
  'chunks_discarded',
  'requests_sent',
  'requests_received',
  'documents_completed',
  'documents_rejected',
  'reassembly_timeouts',
  'declarations_shared',
  'peers_evicted',
  'neighbours_truncated',
  'held_undeclared',
  'stalls',
  /**
   * Times a live peer was silent here for longer than dead-after and not declared dead (once per
   * silence): another peer still heard it (a witness), or the loss measured on its heartbeats
   * made such a silence likely.
   */
  'silences_tolerated',
  'max_loop_lag_ms',
] as const;

export type CounterName = (typeof OTHER_COUNTERS)[number] | `dropped_${DropReason}`;

/** A fixed set of named numeric counters; unknown names cannot be created by accident. */
export class Counters {
  private readonly values: Record<string, number> = {};

  constructor() {
    for (const name of OTHER_COUNTERS) this.values[name] = 0;
    for (const reason of DROP_REASONS) this.values[`dropped_${reason}`] = 0;
  }

  add(name: CounterName, amount = 1): void {
    this.values[name] = (this.values[name] ?? 0) + amount;
  }

  /** Keeps the largest value seen (for gauges such as the worst loop lag). */
  max(name: CounterName, value: number): void {
    if (value > (this.values[name] ?? 0)) this.values[name] = value;
  }

  drop(reason: DropReason): void {
    this.add(`dropped_${reason}`);
  }

  get(name: CounterName): number {
    return this.values[name] ?? 0;
  }

  /** Total of all `dropped_*` counters. */
  dropped(): number {
    let total = 0;
    for (const reason of DROP_REASONS) total += this.values[`dropped_${reason}`] ?? 0;
    return total;
  }

  /** A copy, safe to hand to callers. */
  snapshot(): Record<string, number> {
    return { ...this.values };
  }
}
