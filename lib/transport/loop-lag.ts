/**
 * Measures how late a periodic timer fires. A timer that fires much later than scheduled
 * means this process did not run (SIGSTOP, long GC, a blocked event loop): silence from
 * peers during that time says nothing about them.
 */
export class LoopLagMeter {
  private expectedAt: number | null = null;

  constructor(private readonly now: () => number) {}

  /** Call when scheduling the next tick `intervalMs` from now. */
  scheduled(intervalMs: number): void {
    this.expectedAt = this.now() + intervalMs;
  }

  /** Call when the tick runs: how many ms later than scheduled it ran (never negative). */
  fired(): number {
    if (this.expectedAt === null) return 0;
    const lag = this.now() - this.expectedAt;
    this.expectedAt = null;
    return lag > 0 ? lag : 0;
  }
}
