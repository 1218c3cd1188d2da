/**
 * Who holds an address, measured from the kernels: `ip -ts -o monitor address`
 * in every host's namespace, with the kernel's timestamps (one host clock for
 * all namespaces). Duals are intervals during which two hosts had the same
 * address on an interface.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Lab } from '../harness';
import { waitFor } from '../harness';

export interface AddressEvent {
  atMs: number;
  host: string;
  ip: string;
  added: boolean;
}

const LINE = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)\] (Deleted )?\d+: \S+\s+inet6? ([0-9a-f.:]+)\//;

export class AddressMonitor {
  readonly events: AddressEvent[] = [];
  private readonly children: ChildProcess[] = [];

  private constructor(private readonly initial: Map<string, Set<string>>) {}

  /** Starts one monitor per host and returns once each has reported a marker address. */
  static async start(lab: Lab, hosts: string[]): Promise<AddressMonitor> {
    const initial = new Map<string, Set<string>>();
    const monitor = new AddressMonitor(initial);
    try {
      for (const [i, host] of hosts.entries()) {
        const child = spawn('ip', ['netns', 'exec', lab.host(host).ns, 'ip', '-ts', '-o', 'monitor', 'address'], { stdio: ['ignore', 'pipe', 'ignore'] });
        monitor.children.push(child);
        let rest = '';
        child.stdout.on('data', (chunk: Buffer) => {
          rest += chunk.toString();
          const lines = rest.split('\n');
          rest = lines.pop() ?? '';
          for (const line of lines) {
            const m = LINE.exec(line);
            if (m) monitor.events.push({ atMs: Date.parse(`${m[1]}Z`), host, ip: m[3] as string, added: !m[2] });
          }
        });
        // Ready once it reports a marker address added on lo (then removed).
        const marker = `198.19.255.${200 + i}`;
        await waitFor(
          async () => {
            await lab.exec(host, ['ip', 'addr', 'replace', `${marker}/32`, 'dev', 'lo']);
            return monitor.events.some((e) => e.host === host && e.ip === marker) ? true : null;
          },
          { timeoutMs: 5000, intervalMs: 20, what: `address monitor in ${host}` },
        );
        await lab.exec(host, ['ip', 'addr', 'del', `${marker}/32`, 'dev', 'lo']);
        initial.set(host, new Set((await lab.addresses(host)).map((a) => a.address)));
      }
    } catch (error) {
      monitor.stop();
      throw error;
    }
    return monitor;
  }

  /** The monitors' pids (they run inside the host namespaces: a test signalling "everything in a namespace" must spare them). */
  pids(): number[] {
    return this.children.map((c) => c.pid).filter((pid): pid is number => pid !== undefined);
  }

  /** True while every monitor still runs (a dead one would make its host look empty). */
  alive(): boolean {
    return this.children.every((c) => c.exitCode === null && c.signalCode === null);
  }

  stop(): void {
    for (const child of this.children) child.kill('SIGKILL');
    this.children.length = 0;
  }

  /** Every interval (ms) during which two or more hosts had `ip` at once. */
  duals(ip: string): Array<{ fromMs: number; ms: number; hosts: string[] }> {
    const holders = new Set([...this.initial].filter(([, set]) => set.has(ip)).map(([host]) => host));
    const out: Array<{ fromMs: number; ms: number; hosts: string[] }> = [];
    let since: number | null = holders.size >= 2 ? 0 : null;
    let during = new Set(holders);
    for (const e of this.events.filter((x) => x.ip === ip).sort((a, b) => a.atMs - b.atMs)) {
      if (e.added) holders.add(e.host);
      else holders.delete(e.host);
      if (holders.size >= 2 && since === null) {
        since = e.atMs;
        during = new Set(holders);
      } else if (holders.size >= 2) {
        for (const h of holders) during.add(h);
      } else if (since !== null) {
        out.push({ fromMs: since, ms: e.atMs - since, hosts: [...during] });
        since = null;
      }
    }
    return out;
  }
}
