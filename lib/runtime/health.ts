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
  /** The VIP's other problems, when it has several (problem() shows the one that lasts longest). */
  also?: UnhealthyReason[];
}

export class HealthBook {
  /**
   * Every problem of each VIP, one per reason: a VIP can be not ready (the MTA said so) and have
   * failed to listen at once, and lifting one must not lift the other (setReady(true) must not
   * cancel a failure's back-off; a failure's retry must not make a not-ready VIP electable).
   */
  private readonly perVip = new Map<string, Map<UnhealthyReason, HealthProblem>>();
  private readonly downLinks = new Set<string>();

  /** Marks `ip` unhealthy for `reason` until `retryAt` (a listen or address failure; Infinity: until cleared). */
  fail(ip: string, reason: UnhealthyReason, detail: string, retryAt: number): void {
    this.problemsOf(ip).set(reason, { reason, detail, retryAt });
  }

  /** Marks `ip` unhealthy for `reason` until cleared; true unless it already was for that reason. */
  hold(ip: string, reason: UnhealthyReason, detail: string): boolean {
    const problems = this.problemsOf(ip);
    if (problems.get(reason)?.retryAt === Infinity) return false;
    problems.set(reason, { reason, detail, retryAt: Infinity });
    return true;
  }

  /** Forgets `ip`'s problem of `reason` (its others stay); true when there was one. */
  clear(ip: string, reason: UnhealthyReason): boolean {
    const problems = this.perVip.get(ip);
    if (!problems?.delete(reason)) return false;
    if (!problems.size) this.perVip.delete(ip);
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
    for (const [ip, problems] of this.perVip) {
      for (const [reason, problem] of problems) {
        if (problem.retryAt !== null && problem.retryAt <= now) {
          problems.delete(reason);
          changed = true;
        }
      }
      if (!problems.size) this.perVip.delete(ip);
    }
    return changed;
  }

  /** Earliest retry time, for the runtime's timer. */
  nextRetry(): number | null {
    let next: number | null = null;
    for (const problems of this.perVip.values()) {
      for (const problem of problems.values()) {
        // Infinity (shutdown, not ready) is never retried: no timer for it.
        if (problem.retryAt !== null && Number.isFinite(problem.retryAt) && (next === null || problem.retryAt < next)) next = problem.retryAt;
      }
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

  /**
   * Why `ip` is unhealthy, for status; undefined when it is healthy. With several problems the
   * one that lasts longest is shown (link down, then what only clearing lifts, then the latest
   * retry), and `also` names the others.
   */
  problem(ip: string, ifname: string): HealthProblem | undefined {
    const problems = [...(this.perVip.get(ip)?.values() ?? [])];
    if (this.downLinks.has(ifname)) problems.unshift({ reason: 'link-down', detail: `link ${ifname} is down`, retryAt: null });
    if (!problems.length) return undefined;
    const lasting = (p: HealthProblem): number => (p.retryAt === null ? Number.MAX_VALUE : p.retryAt === Infinity ? Number.MAX_VALUE / 2 : p.retryAt);
    problems.sort((a, b) => lasting(b) - lasting(a));
    const [first, ...rest] = problems as [HealthProblem, ...HealthProblem[]];
    return rest.length ? { ...first, also: rest.map((p) => p.reason) } : first;
  }

  private problemsOf(ip: string): Map<UnhealthyReason, HealthProblem> {
    let problems = this.perVip.get(ip);
    if (!problems) this.perVip.set(ip, (problems = new Map()));
    return problems;
  }
}
