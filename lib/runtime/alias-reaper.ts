/**
 * A crashed node must not leave its VIP aliases behind: its kernel would keep
 * answering ARP for them and refuse connections, and a client resolving a VIP
 * afresh can pick that dead host over the new holder (the process is gone, the
 * host is not). The reaper is a tiny child process that knows which aliases
 * this node holds; when this process ends without saying goodbye, its end of
 * the pipe closes and the reaper removes them at once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';

export interface Alias {
  ifname: string;
  cidr: string;
}

export class AliasReaper {
  private child: ChildProcess | null = null;
  private last = '';

  /**
   * Starts the child; `onError` hears about a reaper that could not start or died. With
   * `guardMs`, it also removes the aliases when checkIn() has not been called for that long.
   */
  start(onError: (error: Error) => void, options: { guardMs?: number } = {}): void {
    const child = spawn(process.execPath, [path.join(__dirname, 'alias-reaper-main.js')], {
      stdio: ['pipe', 'ignore', 'inherit'],
      env: { ...process.env, MTA_VIP_REAPER_PARENT: String(process.pid), MTA_VIP_GUARD_MS: String(options.guardMs ?? 0) },
    });
    child.on('error', onError);
    child.on('exit', (code, signal) => {
      if (this.child === child) {
        this.child = null;
        onError(new Error(`alias reaper exited (code ${code}, signal ${signal}); leftover aliases will only be removed at the next boot`));
      }
    });
    child.stdin?.on('error', () => undefined);
    // Neither the child nor the pipe keeps this process alive.
    child.unref();
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    this.child = child;
    this.last = '';
  }

  /** Tells the guardian this process's event loop runs (call it at least every guardMs / 2). */
  checkIn(): void {
    this.child?.stdin?.write('.\n');
  }

  /** Tells the reaper what this node holds now (sent only when it changed). */
  update(aliases: Alias[]): void {
    const line = JSON.stringify(aliases);
    if (!this.child?.stdin || line === this.last) return;
    this.last = line;
    this.child.stdin.write(`${line}\n`);
  }

  /** Graceful end: nothing held any more, so the reaper leaves without removing anything. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.stdin?.end('[]\n');
    await exited;
  }
}
