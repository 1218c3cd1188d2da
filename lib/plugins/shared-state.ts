// What an MTA's main process tells its worker processes about the cluster.
//
// ZoneMTA (main, receivers, senders) and Haraka (master, workers) run in
// several processes, but the cluster (heartbeats, addresses) must run in
// exactly one of them. That process writes this small JSON file on every
// change; the others read it when a hook needs it, re-reading only when the
// file was replaced (inode, mtime, size). The file is replaced atomically
// (write to a temporary name, then rename), so a reader never sees half a file.
// A file whose writer is no longer running is ignored: a crashed main process
// must not leave workers believing they may use its bindings.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { VipCluster } from '../cluster';
import { codedError, ErrorCodes } from '../errors';
import type { BindingInfo } from '../mta/types';

/** A listener VIP as the receivers see it: 'serving' only while this node holds it and is not releasing it. */
export type ListenerGateState = 'idle' | 'serving' | 'releasing';

/** The file's content. */
export interface SharedClusterState {
  version: 1;
  /** pid of the process running the cluster. */
  pid: number;
  node: string;
  writtenAt: number;
  /** Listener IP -> gate state, for every failover listener of the config. */
  listeners: Record<string, ListenerGateState>;
  bindings: BindingInfo[];
  /** Live nodes' relay listeners (their cluster addresses), this node included. */
  relays: Record<string, { host: string; port: number }>;
}

/**
 * Where the cluster state is shared when the config does not say: one file per cluster and node,
 * in a directory only this user can enter — systemd's RuntimeDirectory when the service has one,
 * otherwise os.tmpdir()/mta-vip-<uid> — never a predictable name in a shared /tmp (where another
 * user could plant the file, or a symlink, and tell the workers which bindings are local).
 */
export function defaultStateFile(clusterId: string, node: string, env: NodeJS.ProcessEnv = process.env): string {
  const safe = (s: string): string => s.replace(/[^A-Za-z0-9._-]/g, '_');
  const runtime = env.RUNTIME_DIRECTORY?.split(':')[0];
  const dir = runtime || path.join(os.tmpdir(), `mta-vip-${typeof process.getuid === 'function' ? process.getuid() : 'user'}`);
  ensurePrivateDir(dir);
  return path.join(dir, `${safe(clusterId)}-${safe(node)}.json`);
}

/** Creates `dir` (mode 0700) or checks that the one there is ours alone: a real directory, our uid, no access for group or others. */
export function ensurePrivateDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stat = fs.lstatSync(dir);
  const uid = typeof process.getuid === 'function' ? process.getuid() : stat.uid;
  const problem = !stat.isDirectory() ? 'is not a directory (a symlink?)' : stat.uid !== uid ? `belongs to uid ${stat.uid}, not ${uid}` : (stat.mode & 0o077) !== 0 ? `has mode ${(stat.mode & 0o777).toString(8)}` : null;
  if (problem) {
    throw codedError(ErrorCodes.STATE_DIR, `mta-vip state directory ${dir} ${problem}: the workers would trust whatever is in it. Remove it (it is re-created with mode 0700), or set the plugin's stateFile to a file in a private directory`);
  }
}

/** Runs in the process that owns the cluster: keeps the file in step with it. */
export class SharedStateWriter {
  readonly file: string;
  private readonly cluster: VipCluster;
  private readonly listeners = new Map<string, ListenerGateState>();
  private readonly onChange = (): void => this.write();
  private closed = false;

  constructor(file: string, cluster: VipCluster, listenerIps: Iterable<string>) {
    this.file = file;
    this.cluster = cluster;
    for (const ip of listenerIps) this.listeners.set(ip, 'idle');
    for (const event of ['binding', 'acquired', 'released', 'peer-up', 'peer-down', 'state'] as const) cluster.on(event, this.onChange);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.write();
  }

  /** Sets a listener's gate state and writes the file before returning, so workers see it on their next connection. */
  setListener(ip: string, state: ListenerGateState): void {
    this.listeners.set(ip, state);
    this.write();
  }

  listenerState(ip: string): ListenerGateState | undefined {
    return this.listeners.get(ip);
  }

  /** Writes the current state now (also called on every cluster event). */
  write(): void {
    if (this.closed) return;
    const relays: SharedClusterState['relays'] = {};
    const own = this.cluster.clusterAddress(this.cluster.node);
    if (own) relays[this.cluster.node] = own;
    for (const peer of this.cluster.status().peers) {
      if (!peer.live) continue;
      const address = this.cluster.clusterAddress(peer.node);
      if (address) relays[peer.node] = address;
    }
    const state: SharedClusterState = {
      version: 1,
      pid: process.pid,
      node: this.cluster.node,
      writtenAt: Date.now(),
      listeners: Object.fromEntries(this.listeners),
      bindings: this.cluster.bindings(),
      relays,
    };
    const temporary = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(temporary, JSON.stringify(state), { mode: 0o600 });
    fs.renameSync(temporary, this.file);
  }

  /** Stops following the cluster and removes the file (workers then treat every binding as unknown). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const event of ['binding', 'acquired', 'released', 'peer-up', 'peer-down', 'state'] as const) this.cluster.off(event, this.onChange);
    fs.rmSync(this.file, { force: true });
  }
}

/** Runs in worker processes: the latest state the owning process wrote, or null when there is none (yet). */
export class SharedStateReader {
  readonly file: string;
  private cached: SharedClusterState | null = null;
  private stamp = '';
  private aliveCheckedAt = 0;

  constructor(file: string) {
    this.file = file;
  }

  /** The current state; re-reads the file only when it was replaced, and drops it when its writer is gone. */
  read(): SharedClusterState | null {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(this.file);
    } catch {
      this.cached = null;
      this.stamp = '';
      return null;
    }
    const stamp = `${stat.ino}:${stat.mtimeMs}:${stat.size}`;
    if (stamp !== this.stamp) {
      this.stamp = stamp;
      try {
        const parsed = JSON.parse(fs.readFileSync(this.file, 'utf8')) as SharedClusterState;
        this.cached = parsed.version === 1 ? parsed : null;
      } catch {
        // Replaced between stat and read: the next call reads the new one.
        this.cached = null;
        this.stamp = '';
      }
      this.aliveCheckedAt = 0;
    }
    if (this.cached && Date.now() - this.aliveCheckedAt > 1000) {
      this.aliveCheckedAt = Date.now();
      if (!processAlive(this.cached.pid)) this.cached = null;
    }
    return this.cached;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
