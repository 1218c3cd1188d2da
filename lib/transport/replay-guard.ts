/** How far behind the highest sequence a late (reordered) packet may still be accepted. */
export const REPLAY_WINDOW = 128;

/**
 * Anti-replay window for one sender incarnation (the IPsec scheme, RFC 4303 §3.4.3):
 * a sequence is accepted once; anything at or below `highest - REPLAY_WINDOW` is old.
 * Senders number packets strictly increasing; the window only tolerates reordering,
 * e.g. a multicast and a unicast path delivering the same stream.
 */
export class ReplayGuard {
  private highest = -1;
  private readonly seen = new Uint8Array(REPLAY_WINDOW);

  /** True when `sequence` has not been accepted before and is inside the window. Does not record it. */
  isFresh(sequence: number): boolean {
    if (sequence > this.highest) return true;
    if (this.highest - sequence >= REPLAY_WINDOW) return false;
    return this.seen[sequence % REPLAY_WINDOW] === 0;
  }

  /** Records an accepted sequence (call only after `isFresh` and a successful decode). */
  accept(sequence: number): void {
    if (sequence > this.highest) {
      const gap = Math.min(sequence - this.highest, REPLAY_WINDOW);
      for (let i = 1; i < gap; i++) this.seen[(sequence - i) % REPLAY_WINDOW] = 0;
      this.highest = sequence;
    }
    this.seen[sequence % REPLAY_WINDOW] = 1;
  }

  /** Highest sequence accepted so far (-1 before the first). */
  get latest(): number {
    return this.highest;
  }
}
