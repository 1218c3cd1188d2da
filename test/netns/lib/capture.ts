import { spawn, type ChildProcess } from 'node:child_process';
import { waitFor } from './wait';

/**
 * A running tcpdump inside a lab namespace. `lines` grows as packets arrive (one line per packet,
 * `-e` so the link-level header with the source MAC is included).
 */
export class Capture {
  readonly lines: string[] = [];
  private stderr = '';
  private partial = '';
  private exited = false;
  private readonly exit: Promise<void>;

  private constructor(private readonly child: ChildProcess, readonly description: string) {
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      const text = this.partial + chunk;
      const parts = text.split('\n');
      this.partial = parts.pop() ?? '';
      for (const line of parts) if (line) this.lines.push(line);
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    this.exit = new Promise((resolve) => {
      child.once('exit', () => {
        this.exited = true;
        if (this.partial) this.lines.push(this.partial);
        this.partial = '';
        resolve();
      });
      child.once('error', (error) => {
        this.stderr += `\nspawn error: ${error.message}`;
        this.exited = true;
        resolve();
      });
    });
  }

  /**
   * Starts `tcpdump -l -n -e --immediate-mode -s 2048 -B 16384 -i <ifname> <filter>` in namespace
   * `ns` and resolves once tcpdump says it is listening, so packets sent after this resolves are seen.
   * The snap length and buffer matter for bursts: with tcpdump's defaults (262144-byte snap length,
   * 2 MiB buffer in immediate mode) the ring holds about 8 frames, and a burst of 1,000 ARPs was
   * captured as 184 although all 1,000 arrived (interface counters).
   */
  static async start(ns: string, ifname: string, filter: string): Promise<Capture> {
    const argv = ['netns', 'exec', ns, 'tcpdump', '-l', '-n', '-e', '--immediate-mode', '-s', '2048', '-B', '16384', '-i', ifname, ...splitFilter(filter)];
    const child = spawn('ip', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    const capture = new Capture(child, `tcpdump in ${ns} (${filter})`);
    try {
      await waitFor(() => capture.exited ? Promise.reject(new Error(capture.stderr.trim())) : /listening on/.test(capture.stderr), {
        timeoutMs: 5000,
        intervalMs: 10,
        what: `${capture.description} to start`,
      });
    } catch (error) {
      await capture.stop();
      throw error;
    }
    return capture;
  }

  /** Lines matching `pattern` so far. */
  matching(pattern: RegExp): string[] {
    return this.lines.filter((line) => pattern.test(line));
  }

  /** Resolves with the first line matching `pattern` (already captured or arriving within timeoutMs). */
  waitFor(pattern: RegExp, timeoutMs = 5000): Promise<string> {
    return waitFor(() => this.lines.find((line) => pattern.test(line)), {
      timeoutMs,
      intervalMs: 10,
      what: `a packet matching ${pattern} in ${this.description}; captured ${this.lines.length} lines: ${this.lines.slice(-5).join(' | ')}`,
    });
  }

  /** Resolves once at least `count` lines match `pattern`, with those lines. */
  waitForCount(pattern: RegExp, count: number, timeoutMs = 5000): Promise<string[]> {
    return waitFor(
      () => {
        const found = this.matching(pattern);
        return found.length >= count ? found : undefined;
      },
      { timeoutMs, intervalMs: 20, what: `${count} packets matching ${pattern} in ${this.description} (have ${this.matching(pattern).length})` },
    );
  }

  /** Packets tcpdump lost because it read too slowly ("N packets dropped by kernel"), known once stopped. */
  get droppedByKernel(): number | null {
    const match = /(\d+) packets? dropped by kernel/.exec(this.stderr);
    return match ? Number(match[1]) : null;
  }

  /** Stops tcpdump and resolves with every captured line. Idempotent. */
  async stop(): Promise<string[]> {
    if (!this.exited) {
      this.child.kill('SIGINT');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
      await this.exit;
      clearTimeout(timer);
    }
    return this.lines;
  }

  /** Kills tcpdump without waiting (exit-path clean-up). */
  killNow(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

/** A pcap filter is passed as separate words, exactly as one would type it after tcpdump's options. */
function splitFilter(filter: string): string[] {
  return filter.split(/\s+/).filter(Boolean);
}
