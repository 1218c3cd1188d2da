import { setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';

export interface WaitForOptions {
  /** Give up after this long. */
  timeoutMs: number;
  /** Pause between probes (default 50 ms). */
  intervalMs?: number;
  /** What is awaited, for the error message ("client's neighbour entry for 198.18.1.1 to be n2's MAC"). */
  what: string;
}

/**
 * Calls `probe` until it returns something other than undefined, null or false, and resolves with that.
 * Rejects with "timed out after Xms waiting for <what>; last value: ..." at the deadline, so a failing
 * multi-process test says what it was waiting for and what it saw instead. A probe that throws is
 * treated like a false value (its error is shown as the last value), because the thing probed
 * (a process, an address) is often not there yet.
 */
export async function waitFor<T>(
  probe: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  options: WaitForOptions,
): Promise<T> {
  const interval = options.intervalMs ?? 50;
  const deadline = Date.now() + options.timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      last = await probe();
      if (last !== undefined && last !== null && last !== false) return last as T;
    } catch (error) {
      last = error;
    }
    if (Date.now() >= deadline) break;
    await sleep(Math.min(interval, Math.max(0, deadline - Date.now())));
  }
  const shown = last instanceof Error ? `${last.name}: ${last.message}` : inspect(last, { depth: 4, breakLength: Infinity });
  throw new Error(`timed out after ${options.timeoutMs}ms waiting for ${options.what}; last value: ${shown}`);
}
