// Releases the VIPs before the MTA's own shutdown runs.
//
// ZoneMTA's main process exits from its SIGTERM handler once its servers are
// closed; Haraka's master has no SIGTERM handler at all (the default action
// kills it). Either way the process could end with the VIPs still on the
// interface, answering for addresses another node is about to take. So the
// plugin takes the signal first: cluster.close() (drain, remove addresses,
// goodbye to peers), then hands the signal back to whatever handled it before,
// or re-raises it for the default action.

import type { VipCluster } from '../cluster';

export interface CloseOnSignalOptions {
  signals?: NodeJS.Signals[];
  /** Give up waiting for cluster.close() after this long (default 15,000 ms). */
  timeoutMs?: number;
  log?: (message: string) => void;
}

/** Installs the handlers; returns a function that removes them and restores the previous ones. */
export function closeClusterOnSignal(cluster: VipCluster, options: CloseOnSignalOptions = {}): () => void {
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  const restorers: Array<() => void> = [];
  let closing: Promise<void> | null = null;
  for (const signal of signals) {
    const previous = process.listeners(signal) as Array<(signal: NodeJS.Signals) => void>;
    process.removeAllListeners(signal);
    let handedBack = false;
    const handler = (): void => {
      if (!closing) {
        options.log?.(`${signal}: releasing VIPs before shutdown`);
        const timeout = new Promise<void>((resolve) => setTimeout(resolve, options.timeoutMs ?? 15000).unref());
        closing = Promise.race([cluster.close().catch((error: Error) => options.log?.(`cluster.close failed: ${error.message}`)), timeout]).then(() => undefined);
      }
      void closing.then(() => {
        if (handedBack) return;
        handedBack = true;
        process.off(signal, handler);
        if (previous.length) {
          for (const listener of previous) process.on(signal, listener);
          for (const listener of previous) listener(signal);
        } else {
          process.kill(process.pid, signal);
        }
      });
    };
    process.on(signal, handler);
    restorers.push(() => {
      process.off(signal, handler);
      for (const listener of previous) if (!process.listeners(signal).includes(listener)) process.on(signal, listener);
    });
  }
  return () => restorers.forEach((restore) => restore());
}
