/**
 * Process-wide list of live labs, so their namespaces are deleted however the test process ends:
 * normal exit, SIGINT/SIGTERM (Ctrl-C, the test runner's timeout) or an uncaught exception.
 * The exit path cannot await, so each lab registers a synchronous clean-up (spawnSync).
 */

export interface SyncCleanup {
  /** Kills the lab's processes and deletes its namespaces, synchronously. Must be idempotent. */
  destroySync(): void;
}

const live = new Set<SyncCleanup>();
let installed = false;

function cleanupAll(): void {
  for (const lab of [...live]) {
    try {
      lab.destroySync();
    } catch {
      // keep going: the remaining labs still need deleting
    }
    live.delete(lab);
  }
}

function onSignal(signal: NodeJS.Signals): void {
  cleanupAll();
  // Re-raise with the default action so the exit status still says which signal ended us.
  process.removeListener(signal, onSignal);
  process.kill(process.pid, signal);
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', cleanupAll);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  // An uncaught exception is fatal only when nobody handles it. node:test handles them (it reports
  // them as test failures and carries on), and tearing labs down then would break the other tests of
  // the file; the 'exit' handler still runs at the end either way.
  process.on('uncaughtExceptionMonitor', () => {
    if (process.listenerCount('uncaughtException') === 0) cleanupAll();
  });
}

export function registerLab(lab: SyncCleanup): void {
  install();
  live.add(lab);
}

export function unregisterLab(lab: SyncCleanup): void {
  live.delete(lab);
}
