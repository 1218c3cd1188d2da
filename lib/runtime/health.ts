/**
 * Why this node cannot serve a VIP right now. Peers read the result from our
 * heartbeats and elect someone else: a node that cannot bind a listener or
 * whose link is down must not keep, or be given, a VIP it would black-hole.
 */
export type UnhealthyReason = 'link-down' | 'listen-failed' | 'address-failed' | 'announce-failed' | 'held-on-wire' | 'not-ready' | 'shutdown';

export interface HealthProblem {
  reason: UnhealthyReason;
  detail: string;
  /** When the VIP may be tried again (clock ms); null while the cause lasts (link down). */
  retryAt: number | null;
}

export class HealthBook {
  private readonly perVip = new Map<string, HealthProblem>();
  private readonly downLinks = new Set<string>();

  /** Marks `ip` unhealthy until `retryAt` (a listen or address failure). */
  fail(ip: string, reason: UnhealthyReason, detail: string, retryAt: number): void {
    this.perVip.set(ip, { reason, detail, retryAt });
  }

  /** Marks `ip` unhealthy for `reason` until cleared; true unless it already was for that reason. */
  hold(ip: string, reason: UnhealthyReason, detail: string): boolean {
    if (this.perVip.get(ip)?.reason === reason) return false;
    this.perVip.set(ip, { reason, detail, retryAt: Infinity });
    return true;
  }

  /** Forgets `ip`'s problem if it is of `reason`; true when it did. */
  clear(ip: string, reason: UnhealthyReason): boolean {
    if (this.perVip.get(ip)?.reason !== reason) return false;
    this.perVip.delete(ip);
    return true;
  }

  /** Link state from the addon's watch events; true when it changed. */
  setLink(ifname: string, usable: boolean): boolean {
    const wasDown = this.downLinks.has(ifname);
    if (usable) this.downLinks.delete(ifname);
    else this.downLinks.add(ifname);
    return wasDown === usable;
  }

  isLinkDown(ifname: string): boolean {
    return this.downLinks.has(ifname);
  }

  /** Forgets failures whose retry time has come; true when any was forgotten. */
  expire(now: number): boolean {
    let changed = false;
    for (const [ip, problem] of this.perVip) {
      if (problem.retryAt !== null && problem.retryAt <= now) {
        this.perVip.delete(ip);
        changed = true;
      }
    }
    return changed;
  }

  /** Earliest retry time, for the runtime's timer. */
  nextRetry(): number | null {
    let next: number | null = null;
    for (const problem of this.perVip.values()) {
      // Infinity (shutdown) is never retried: no timer for it.
      if (problem.retryAt !== null && Number.isFinite(problem.retryAt) && (next === null || problem.retryAt < next)) next = problem.retryAt;
    }
    return next;
  }

  /** The unhealthy VIPs among `vips` (ip → interface). */
  unhealthy(vips: Iterable<{ ip: string; interface: string }>): Set<string> {
    const out = new Set<string>();
    for (const vip of vips) {
      if (this.perVip.has(vip.ip) || this.downLinks.has(vip.interface)) out.add(vip.ip);
    }
    return out;
  }

  /** Why `ip` is unhealthy, for status; undefined when it is healthy. */
  problem(ip: string, ifname: string): HealthProblem | undefined {
    if (this.downLinks.has(ifname)) return { reason: 'link-down', detail: `link ${ifname} is down`, retryAt: null };
    return this.perVip.get(ip);
  }
}
