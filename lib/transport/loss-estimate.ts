/**
 * How much of one peer's heartbeat stream is lost on its way here, and how long a silence of
 * that peer must last before it is more likely dead than unlucky.
 *
 * A fixed dead-after of four heartbeats is right on a clean network (a crash is declared in
 * 200 ms at defaults) and wrong under heavy loss: at 51 % loss end to end (30 % at each of two
 * nodes, both ways) four heartbeats in a row are lost 7 % of the time, so every pair of nodes
 * flaps every few seconds and each flap moves VIPs. Like the phi-accrual detector of Cassandra
 * and Akka, the silence a peer is allowed grows with the loss measured on its own stream: long
 * enough that losing that many heartbeats in a row has odds below FALSE_DOWN_ODDS, never
 * shorter than dead-after, never longer than MAX_LOSS_DEAD_AFTERS dead-afters.
 *
 * Two estimates with different memories, the larger wins: the fast one sees loss begin within
 * a few heartbeats, the slow one does not dip in the noise of steady loss. Both forget: a few
 * seconds after loss ends, a crash is again declared at dead-after.
 */

/** Odds of a false peer-down per silence (per peer) this node accepts. */
export const FALSE_DOWN_ODDS = 1e-6;
/** The longest silence loss can earn a peer, in dead-afters (1.6 s at defaults). */
export const MAX_LOSS_DEAD_AFTERS = 8;
/** Memories of the two estimates, in heartbeat intervals (0.5 s and 2 s at defaults). */
const FAST_MEMORY_BEATS = 10;
const SLOW_MEMORY_BEATS = 40;
/**
 * How long after loss ends the estimates may still stretch a limit: three slow memories (6 s at
 * defaults; measured: 5.5 s after 51 % loss, 4.5 s after 30 %). After it a crash is declared at
 * dead-after again.
 */
export function lossFadeMs(heartbeatMs: number): number {
  return 3 * SLOW_MEMORY_BEATS * heartbeatMs;
}
/** More missed heartbeats than this between two arrivals count as this many (callers pass only gaps up to dead-after). */
const MAX_MISSED_PER_SAMPLE = 32;

/** Heartbeats lost and heard, decayed with time so the past fades. */
class DecayingRatio {
  private lost = 0;
  private heard = 0;
  private at = 0;

  constructor(private readonly memoryMs: number) {}

  add(now: number, lost: number): void {
    const decay = Math.exp(-Math.max(0, now - this.at) / this.memoryMs);
    this.lost = this.lost * decay + lost;
    this.heard = this.heard * decay + 1;
    this.at = now;
  }

  rate(): number {
    return this.lost / (this.lost + this.heard || 1);
  }
}

export class LossEstimate {
  private readonly fast: DecayingRatio;
  private readonly slow: DecayingRatio;

  constructor(private readonly heartbeatMs: number) {
    this.fast = new DecayingRatio(FAST_MEMORY_BEATS * heartbeatMs);
    this.slow = new DecayingRatio(SLOW_MEMORY_BEATS * heartbeatMs);
  }

  /**
   * A heartbeat arrived `gapMs` after the one before. Heartbeats fall on ticks of heartbeatMs,
   * so a gap of about k intervals means k - 1 were lost. A gap counts as a loss only from 1.75
   * intervals on: a heartbeat late by most of an interval (a busy sender) is not a loss, nor is
   * one sent early for a change of state.
   */
  heard(now: number, gapMs: number): void {
    const missed = Math.min(MAX_MISSED_PER_SAMPLE, Math.max(0, Math.floor(gapMs / this.heartbeatMs + 0.25) - 1));
    this.fast.add(now, missed);
    this.slow.add(now, missed);
  }

  /** The fraction of this peer's heartbeats lost lately (0 until one is). */
  rate(): number {
    return Math.max(this.fast.rate(), this.slow.rate());
  }
}

/** How long a peer whose heartbeats are lost at `lossRate` may stay silent before it is declared dead. */
export function silenceLimitMs(lossRate: number, heartbeatMs: number, deadAfterMs: number): number {
  const longest = MAX_LOSS_DEAD_AFTERS * deadAfterMs;
  if (lossRate <= 0) return deadAfterMs;
  if (lossRate >= 1) return longest;
  const beats = Math.ceil(Math.log(FALSE_DOWN_ODDS) / Math.log(lossRate));
  return Math.min(longest, Math.max(deadAfterMs, beats * heartbeatMs));
}
