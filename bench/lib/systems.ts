/**
 * The failover systems bench/failover compares, each driving one daemon per
 * server namespace of a Lab: mta-vip (the cluster-node fixture, whose SMTP
 * listener lives in the same process), keepalived and ucarp (each next to a
 * plain smtp-server fixture that runs all the time).
 *
 * A system starts and restarts its daemon per node, tells which process to
 * kill (pid, and whether it is a process group), and collects the daemons'
 * own state-change times (wall clock) for the breakdown of a failover.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_HEARTBEAT_MS, DEFAULT_PROBE_TIMEOUT_MS } from '../../lib/core/config';
import { fixturePath, type Lab, type LabProcess } from '../../test/netns/harness';

/** A daemon state change seen on a node, on the wall clock (Date.now()). */
export interface NodeEvent {
  node: string;
  /** 'acquired', 'peer-down', 'MASTER', 'BACKUP', 'FAULT'… */
  name: string;
  wallMs: number;
  data?: unknown;
}

export interface FailoverSystem {
  /** Name in the results table: 'mta-vip 50/200'. */
  readonly name: string;
  readonly kind: 'mta-vip' | 'keepalived' | 'ucarp';
  /** How the holder is stopped in a trial. */
  readonly signal: 'SIGKILL' | 'SIGTERM';
  /** How long a (re)started daemon must have run before the cluster counts as stable. */
  readonly settleMs: number;
  /** The configuration used, for the report (filled templates, command lines, timers). */
  describe(): Record<string, unknown>;
  /** Starts the daemon (and for peers the SMTP server, once) on the node; resolves when it runs. */
  start(node: string): Promise<void>;
  /** The process to signal on the node. */
  victim(node: string): { pid: number; group: boolean };
  /** Resolves when the node's daemon has exited (after a kill), or rejects after timeoutMs. */
  exited(node: string, timeoutMs: number): Promise<void>;
  /** ms since the node's daemon was (re)started; null when it is not running. */
  runningForMs(node: string): number | null;
  /** Daemon events since `wallMs`. */
  eventsSince(wallMs: number): NodeEvent[];
  /** Stops every daemon and server of this system. */
  stop(): Promise<void>;
}

export const BENCH_SECRET = 'bench failover secret';

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------

/** mta-vip: one cluster-node fixture per node; the VIP's SMTP listener starts on acquisition. */
export class MtaVipSystem implements FailoverSystem {
  readonly kind = 'mta-vip';
  readonly settleMs: number;
  private readonly procs = new Map<string, { proc: LabProcess; startedAt: number }>();
  private readonly events: NodeEvent[] = [];

  constructor(
    private readonly lab: Lab,
    readonly name: string,
    private readonly nodes: string[],
    private readonly vip: string,
    /** undefined: the runtime's defaults (heartbeat 50 ms, dead-after 4 × heartbeat). */
    private readonly timers: { heartbeatMs: number; deadAfterMs: number } | undefined,
    readonly signal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL',
  ) {
    this.settleMs = Math.max(1000, 5 * (timers?.deadAfterMs ?? 4 * DEFAULT_HEARTBEAT_MS));
  }

  config(node: string): Record<string, unknown> {
    return {
      node,
      cluster: { id: 'bench', secret: BENCH_SECRET, bind: this.lab.host(node).ipv4, peers: this.nodes.map((n) => this.lab.host(n).ipv4) },
      listeners: [`${this.vip}:2525`],
      vips: { [this.vip]: {} },
      topology: [{ cidr: '198.18.0.0/16', interface: 'eth0' }],
      ...(this.timers ? { timers: this.timers } : {}),
    };
  }

  describe(): Record<string, unknown> {
    return { kind: this.kind, signal: this.signal, timers: this.timers ?? `defaults (heartbeat ${DEFAULT_HEARTBEAT_MS} ms, dead-after ${4 * DEFAULT_HEARTBEAT_MS} ms)`, probe: `default (${DEFAULT_PROBE_TIMEOUT_MS} ms timeout)`, config: this.config(this.nodes[0] as string) };
  }

  async start(node: string): Promise<void> {
    const proc = this.lab.spawnNode(node, fixturePath('cluster-node'), [JSON.stringify(this.config(node))]);
    proc.onMessage((message: any) => {
      if (message?.type === 'event' && (message.name === 'acquired' || message.name === 'peer-down' || message.name === 'released')) {
        this.events.push({ node, name: message.name, wallMs: message.at, data: message.data });
        if (this.events.length > 10_000) this.events.shift();
        return true;
      }
      return message?.type === 'event';
    });
    await proc.nextMessage((m: any) => m.type === 'started', 10_000);
    this.procs.set(node, { proc, startedAt: Date.now() });
  }

  victim(node: string): { pid: number; group: boolean } {
    const pid = this.procs.get(node)?.proc.pid;
    if (pid === undefined) throw new Error(`${this.name}: ${node} is not running`);
    return { pid, group: false };
  }

  async exited(node: string, timeoutMs: number): Promise<void> {
    const entry = this.procs.get(node);
    if (!entry) return;
    await withTimeout(entry.proc.exited, timeoutMs, `${this.name} on ${node} to exit`);
    this.procs.delete(node);
  }

  runningForMs(node: string): number | null {
    const entry = this.procs.get(node);
    return entry && !entry.proc.exit ? Date.now() - entry.startedAt : null;
  }

  eventsSince(wallMs: number): NodeEvent[] {
    return this.events.filter((e) => e.wallMs >= wallMs);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.procs.values()].map(({ proc }) => proc.stop(3000)));
    this.procs.clear();
  }
}

// ---------------------------------------------------------------------------

/** A daemon started with `ip netns exec` in its own process group (so the group can be killed). */
class Daemon {
  readonly child: ChildProcess;
  readonly startedAt = Date.now();
  readonly exited: Promise<void>;
  exit: { code: number | null; signal: string | null } | null = null;

  constructor(ns: string, argv: string[], logFile: string) {
    const log = fs.openSync(logFile, 'a');
    this.child = spawn('ip', ['netns', 'exec', ns, ...argv], { detached: true, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    LIVE_DAEMONS.add(this);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        LIVE_DAEMONS.delete(this);
        resolve();
      });
      this.child.once('error', () => {
        this.exit = { code: null, signal: null };
        LIVE_DAEMONS.delete(this);
        resolve();
      });
    });
  }

  /** Signals the whole process group (keepalived's parent and its VRRP child; ucarp and its scripts). */
  signalGroup(signal: NodeJS.Signals): void {
    if (this.exit || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      // already gone
    }
  }

  /** Whether any process (zombies included) is left in the daemon's process group. */
  groupAlive(): boolean {
    if (this.child.pid === undefined) return false;
    try {
      process.kill(-this.child.pid, 0);
      return true;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code !== 'ESRCH';
    }
  }

  async stop(graceMs = 2000): Promise<void> {
    this.signalGroup('SIGTERM');
    const timer = setTimeout(() => this.signalGroup('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

const LIVE_DAEMONS = new Set<Daemon>();

/** Kills every daemon still running, synchronously (for exit paths). */
export function killAllDaemonsSync(): void {
  for (const daemon of LIVE_DAEMONS) daemon.signalGroup('SIGKILL');
}

const PEERS_DIR = path.resolve(__dirname, '..', '..', '..', 'bench', 'peers');

function fill(template: string, values: Record<string, string>): string {
  return template.replace(/\{\{([A-Z_]+)\}\}/g, (whole, key: string) => {
    const value = values[key];
    if (value === undefined) throw new Error(`template placeholder ${whole} has no value`);
    return value;
  });
}

/** Reads "<epoch ns> <node> <state>" lines the notify/up/down scripts append. */
function readScriptEvents(file: string): NodeEvent[] {
  if (!fs.existsSync(file)) return [];
  const out: NodeEvent[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const [ns, node, state] = line.trim().split(/\s+/);
    if (!ns || !node || !state) continue;
    out.push({ node, name: state, wallMs: Number(BigInt(ns) / 1000n) / 1000 });
  }
  return out;
}

/** Shared part of keepalived and ucarp: a daemon per node plus an always-on smtp-server. */
abstract class PeerSystem implements FailoverSystem {
  abstract readonly kind: 'keepalived' | 'ucarp';
  readonly signal = 'SIGKILL' as const;
  protected readonly daemons = new Map<string, Daemon>();
  private readonly servers = new Map<string, LabProcess>();

  constructor(
    protected readonly lab: Lab,
    readonly name: string,
    protected readonly nodes: string[],
    protected readonly vip: string,
    /** Per-system temp dir: filled configs, scripts, logs. */
    protected readonly dir: string,
    readonly settleMs: number,
  ) {}

  abstract describe(): Record<string, unknown>;
  protected abstract argv(node: string): string[];

  async start(node: string): Promise<void> {
    if (!this.servers.has(node)) {
      const server = this.lab.spawnNode(node, path.join(__dirname, 'smtp-peer.js'), [JSON.stringify({ node, port: 2525 })]);
      await server.nextMessage((m: any) => m.type === 'ready', 10_000);
      this.servers.set(node, server);
    }
    const daemon = new Daemon(this.lab.host(node).ns, this.argv(node), path.join(this.dir, `${node}.log`));
    this.daemons.set(node, daemon);
    // Both daemons run in the foreground; "running" is all they tell. Give a
    // failed start (bad config) a moment to show.
    await new Promise((resolve) => setTimeout(resolve, 200));
    if (daemon.exit) throw new Error(`${this.name} on ${node} exited at start (${JSON.stringify(daemon.exit)}); log: ${fs.readFileSync(path.join(this.dir, `${node}.log`), 'utf8').slice(-2000)}`);
  }

  victim(node: string): { pid: number; group: boolean } {
    const pid = this.daemons.get(node)?.child.pid;
    if (pid === undefined) throw new Error(`${this.name}: ${node} is not running`);
    return { pid, group: true };
  }

  async exited(node: string, timeoutMs: number): Promise<void> {
    const daemon = this.daemons.get(node);
    if (!daemon) return;
    await withTimeout(daemon.exited, timeoutMs, `${this.name} on ${node} to exit`);
    // The group leader is reaped; its children (keepalived's VRRP child) may
    // linger as zombies until init reaps them, and a restarted keepalived that
    // finds their pid in its pid file refuses to start ("daemon is already running").
    const deadline = Date.now() + timeoutMs;
    while (daemon.groupAlive()) {
      if (Date.now() > deadline) throw new Error(`${this.name} on ${node}: process group ${daemon.child.pid} still has members ${timeoutMs} ms after the kill`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    this.daemons.delete(node);
  }

  runningForMs(node: string): number | null {
    const daemon = this.daemons.get(node);
    return daemon && !daemon.exit ? Date.now() - daemon.startedAt : null;
  }

  eventsSince(wallMs: number): NodeEvent[] {
    return readScriptEvents(path.join(this.dir, 'events.log')).filter((e) => e.wallMs >= wallMs);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.daemons.values()].map((d) => d.stop()));
    this.daemons.clear();
    await Promise.all([...this.servers.values()].map((s) => s.stop(2000)));
    this.servers.clear();
  }
}

/** keepalived (VRRP only, -P), equal priorities, nopreempt, multicast adverts on eth0. */
export class KeepalivedSystem extends PeerSystem {
  readonly kind = 'keepalived';
  private readonly configs = new Map<string, string>();

  constructor(lab: Lab, name: string, nodes: string[], vip: string, dir: string, private readonly vrrp: { version: 2 | 3; advertInt: string }) {
    // A restarted backup should have heard the master (one advert) before the next trial, plus a margin.
    super(lab, name, nodes, vip, dir, Number(vrrp.advertInt) * 1000 + 1000);
    const template = fs.readFileSync(path.join(PEERS_DIR, 'keepalived.conf.tmpl'), 'utf8');
    fs.copyFileSync(path.join(PEERS_DIR, 'keepalived-notify.sh'), path.join(dir, 'notify.sh'));
    fs.chmodSync(path.join(dir, 'notify.sh'), 0o755);
    for (const node of nodes) {
      const text = fill(template, { NODE: node, VRRP_VERSION: String(vrrp.version), ADVERT_INT: vrrp.advertInt, VIP: vip, DIR: dir });
      fs.writeFileSync(path.join(dir, `${node}.conf`), text);
      this.configs.set(node, text);
    }
  }

  protected argv(node: string): string[] {
    const file = (suffix: string) => path.join(this.dir, `${node}${suffix}`);
    // -n foreground, -l log to the console (our log file), -D detailed, -P VRRP only;
    // own pid files per node, since the namespaces share one filesystem.
    return ['keepalived', '-n', '-l', '-D', '-P', '-f', file('.conf'), '-p', file('.pid'), '-r', file('-vrrp.pid'), '-c', file('-checkers.pid')];
  }

  describe(): Record<string, unknown> {
    const first = this.nodes[0] as string;
    return { kind: this.kind, signal: 'SIGKILL to the process group (parent and VRRP child)', vrrp: this.vrrp, command: this.argv(first).join(' '), config: this.configs.get(first) };
  }
}

/** ucarp, equal advskew, multicast adverts; up/down scripts add and remove the /32. */
export class UcarpSystem extends PeerSystem {
  readonly kind = 'ucarp';

  constructor(lab: Lab, name: string, nodes: string[], vip: string, dir: string, private readonly advbase: number) {
    super(lab, name, nodes, vip, dir, advbase * 1000 + 1000);
    for (const script of ['ucarp-up.sh', 'ucarp-down.sh']) {
      fs.copyFileSync(path.join(PEERS_DIR, script), path.join(dir, script));
      fs.chmodSync(path.join(dir, script), 0o755);
    }
  }

  protected argv(node: string): string[] {
    return [
      'ucarp',
      '--interface=eth0',
      `--srcip=${this.lab.host(node).ipv4}`,
      '--vhid=1',
      '--pass=benchpass',
      `--addr=${this.vip}`,
      `--advbase=${this.advbase}`,
      '--advskew=0',
      `--upscript=${path.join(this.dir, 'ucarp-up.sh')}`,
      `--downscript=${path.join(this.dir, 'ucarp-down.sh')}`,
      // Run the downscript on a clean exit too; not --neutral, so a restarted
      // ucarp runs the downscript at start and removes a VIP its killed
      // predecessor left behind.
      '--shutdown',
      `--xparam=${node}`,
    ];
  }

  describe(): Record<string, unknown> {
    return { kind: this.kind, signal: 'SIGKILL to the process group', command: this.argv(this.nodes[0] as string).join(' ') };
  }
}
