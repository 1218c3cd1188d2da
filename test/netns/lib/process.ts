import type { ChildProcess } from 'node:child_process';

/** How a process ended. */
export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface Waiter {
  predicate: (message: unknown) => boolean;
  resolve: (message: unknown) => void;
}

/** Output kept for diagnostics: enough for a failure message, bounded so a chatty child cannot eat memory. */
const OUTPUT_LIMIT = 256 * 1024;

/**
 * A node process running inside a lab namespace, with an IPC channel.
 * Messages the child sends with process.send() are queued in `messages` until a test takes them
 * with nextMessage(); stdout and stderr are kept for failure messages.
 */
export class LabProcess {
  /** The `ip netns exec` child; `ip` execs node, so this pid is node's pid. */
  readonly child: ChildProcess;
  /** Messages received and not yet taken by nextMessage(), oldest first. */
  readonly messages: unknown[] = [];
  stdout = '';
  stderr = '';
  /** Set once the process has exited. */
  exit: ProcessExit | null = null;
  /** Resolves when the process has exited. */
  readonly exited: Promise<ProcessExit>;
  private readonly waiters = new Set<Waiter>();
  private readonly listeners = new Set<(message: unknown) => boolean | void>();

  constructor(child: ChildProcess, readonly description: string) {
    this.child = child;
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout = (this.stdout + chunk).slice(-OUTPUT_LIMIT);
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-OUTPUT_LIMIT);
    });
    child.on('message', (message: unknown) => this.deliver(message));
    // A failed spawn emits 'error' and never 'exit'; turn both into one exit record.
    this.exited = new Promise((resolve) => {
      child.once('error', (error) => {
        this.stderr += `\nspawn error: ${error.message}`;
        if (!this.exit) {
          this.exit = { code: null, signal: null };
          resolve(this.exit);
        }
      });
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Sends a message over the IPC channel; false when the channel is closed. */
  send(message: unknown): boolean {
    if (!this.child.connected) return false;
    this.child.send(message as never);
    return true;
  }

  /**
   * Calls `listener` for every message from now on (for streams of events the test does not want
   * to take one by one). A listener returning true has consumed the message: it is not queued for
   * nextMessage(). Returns a function that removes the listener.
   */
  onMessage(listener: (message: unknown) => boolean | void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Takes the oldest queued message matching `predicate` (or waits for one), removing it from the queue.
   * Rejects after timeoutMs, or at once if the process exits first, with its stderr in the message.
   */
  nextMessage<T = unknown>(predicate: (message: any) => boolean = () => true, timeoutMs = 5000): Promise<T> {
    const index = this.messages.findIndex(predicate);
    if (index >= 0) return Promise.resolve(this.messages.splice(index, 1)[0] as T);
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = {
        predicate,
        resolve: (message) => {
          cleanup();
          resolve(message as T);
        },
      };
      const fail = (why: string) => {
        cleanup();
        reject(new Error(`${this.description}: ${why} (queued messages: ${JSON.stringify(this.messages).slice(0, 500)}; stderr: ${this.stderr.trim().slice(-2000) || 'empty'})`));
      };
      const timer = setTimeout(() => fail(`no matching message within ${timeoutMs}ms`), timeoutMs);
      const onExit = (exit: ProcessExit) => fail(`exited (code ${exit.code}, signal ${exit.signal}) before a matching message`);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
        this.child.off('exit', exitListener);
      };
      const exitListener = (code: number | null, signal: NodeJS.Signals | null) => onExit({ code, signal });
      if (this.exit) {
        onExit(this.exit);
        return;
      }
      this.waiters.add(waiter);
      this.child.on('exit', exitListener);
    });
  }

  /** Sends a signal if the process is still running. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (!this.exit && this.child.pid !== undefined) {
      try {
        this.child.kill(signal);
      } catch {
        // already gone
      }
    }
  }

  /** SIGTERM, then SIGKILL if it has not exited within graceMs; resolves once it has exited. */
  async stop(graceMs = 2000): Promise<ProcessExit> {
    if (this.exit) return this.exit;
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  private deliver(message: unknown): void {
    let consumed = false;
    for (const listener of this.listeners) if (listener(message) === true) consumed = true;
    if (consumed) return;
    for (const waiter of this.waiters) {
      if (waiter.predicate(message)) {
        waiter.resolve(message);
        return;
      }
    }
    this.messages.push(message);
  }
}
