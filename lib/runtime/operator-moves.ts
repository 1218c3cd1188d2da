/**
 * Operator moves (planned failover): pins of a VIP to a node. Each node keeps
 * the pins it issued and publishes them; the pins in force are every live
 * node's, the newest per VIP (ordered by the issuer's wall clock, then name).
 */
import type { Assignment, VipOutcome } from '../core';

export interface Move {
  node: string;
  seq: number;
}

export class OperatorMoves {
  private readonly own = new Map<string, Move>();
  private lastSeq = 0;

  /** This node's pins (what it publishes). */
  get issued(): ReadonlyMap<string, Move> {
    return this.own;
  }

  /** Pins `ip` to `node`, or clears this node's pin (null); throws naming what is wrong. */
  move(ip: string, node: string | null, outcome: VipOutcome | undefined, wallMs: number): { ip: string; node: string | null; from: string | null; seq: number } {
    if (node === null) {
      this.own.delete(ip);
    } else {
      if (!outcome) throw new Error(`move: no live node declares ${ip}`);
      if (outcome.flags.broken) throw new Error(`move: ${ip} is BROKEN (${outcome.flags.broken.message}); fix the config first`);
      if (outcome.follows) throw new Error(`move: ${ip} follows ${outcome.follows}; move ${outcome.follows} instead`);
      if (!outcome.participants.includes(node)) {
        throw new Error(`move: ${node} is not a live participant of ${ip} (participants: ${outcome.participants.join(', ') || 'none'})`);
      }
      this.lastSeq = Math.max(wallMs, this.lastSeq + 1);
      this.own.set(ip, { node, seq: this.lastSeq });
    }
    return { ip, node, from: outcome?.owner ?? null, seq: this.own.get(ip)?.seq ?? 0 };
  }

  /** The pins in force: ours and every live peer's, the newest per VIP. */
  inForce(self: string, peers: Iterable<{ node: string; live: boolean; moves: ReadonlyMap<string, Move> }>): Map<string, string> {
    const newest = new Map<string, Move & { issuer: string }>();
    const consider = (issuer: string, moves: ReadonlyMap<string, Move>): void => {
      for (const [ip, move] of moves) {
        const current = newest.get(ip);
        if (!current || move.seq > current.seq || (move.seq === current.seq && issuer < current.issuer)) newest.set(ip, { ...move, issuer });
      }
    };
    consider(self, this.own);
    for (const peer of peers) if (peer.live) consider(peer.node, peer.moves);
    return new Map([...newest].map(([ip, m]) => [ip, m.node]));
  }

  /** Drops our pins whose target is no longer a live participant (they would pin nothing); true when any went. */
  dropStale(assignment: Assignment): boolean {
    let dropped = false;
    for (const [ip, move] of this.own) {
      const outcome = assignment.vips.get(ip);
      if (!outcome || !outcome.participants.includes(move.node)) {
        this.own.delete(ip);
        dropped = true;
      }
    }
    return dropped;
  }
}
