/**
 * A lab of network namespaces for multi-node tests and benchmarks.
 *
 * Topology: one namespace `${id}-br` holds a bridge `br0`; every host namespace `${id}-${host}`
 * has `eth0`, one end of a veth pair whose other end (`v<i>`) is a port of br0. Both ends are
 * created directly in their namespaces, so nothing is ever created in the root namespace and
 * deleting the namespaces deletes everything. Hosts get 198.18.0.(10+i)/16 and 2001:db8::(10+i)/64
 * (nodad) and a fixed MAC 02:6d:76:00:HH:LL; VIPs (vip4/vip6) are on-link for everyone because of
 * the /16 and /64.
 *
 *   const lab = await Lab.create({ hosts: ['n1', 'n2', 'client'] });
 *   after(() => lab.destroy());
 *   await lab.exec('client', ['ping', '-c1', lab.host('n1').ipv4]);
 *
 * Faults use nftables (this kernel has no netem): partition() drops every frame between two hosts
 * on the bridge, loss() drops a share of IP packets inside a host namespace.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { Capture } from './lib/capture';
import { FAULT_TABLE, checkMatch, lossScript, partitionScript, type LossDirection, type LossRule } from './lib/faults';
import { LabProcess } from './lib/process';
import { registerLab, unregisterLab } from './lib/registry';
import { run, type RunResult } from './lib/run';

export { Capture } from './lib/capture';
export { LabProcess, type ProcessExit } from './lib/process';
export { waitFor, type WaitForOptions } from './lib/wait';
export { run, type RunResult, type RunOptions } from './lib/run';
export type { LossDirection } from './lib/faults';

export interface LabHost {
  /** The name given to Lab.create ('n1'). */
  name: string;
  /** Its namespace, `${lab.id}-${name}`. */
  ns: string;
  ifname: 'eth0';
  /** 02:6d:76:00:HH:LL, lower-case, unique in the lab. */
  mac: string;
  /** 198.18.0.(10+i), configured as /16. */
  ipv4: string;
  /** 2001:db8::(10+i), configured as /64 (not configured when the lab has ipv6: false). */
  ipv6: string;
  /** The bridge-side end of its veth pair, in the bridge namespace. */
  bridgePort: string;
}

export interface LabOptions {
  /** Host names: lower-case letters and digits, starting with a letter, at most 12 characters. */
  hosts: string[];
  /** Configure IPv6 addresses (default true); when false IPv6 is disabled in the host namespaces. */
  ipv6?: boolean;
  /** sysctls set in every host namespace once eth0 exists, e.g. { 'net.ipv4.conf.all.arp_accept': '1' }. */
  sysctls?: Record<string, string>;
}

export interface ExecOptions {
  /** Kill the command after this long (default 10 s). */
  timeoutMs?: number;
  /** Resolve with the non-zero exit code instead of rejecting. */
  allowFailure?: boolean;
}

export interface SpawnNodeOptions {
  /** Added to this process's environment. */
  env?: NodeJS.ProcessEnv;
  /**
   * Argv placed between `ip netns exec NS` and node, for commands that exec their arguments,
   * e.g. ['setpriv', '--bounding-set', '-net_raw', '--'] to run node without a capability.
   */
  wrapper?: string[];
}

export interface Neighbour {
  address: string;
  mac: string | null;
  /** The kernel's NUD state(s): 'REACHABLE', 'STALE', 'DELAY', 'PROBE', 'FAILED', 'INCOMPLETE', 'PERMANENT', 'NOARP' (comma-joined if several). */
  state: string;
  /**
   * Whole seconds since the kernel last changed the entry. Matters for IPv4: within `locktime`
   * (1 s by default) of an update, the kernel ignores an ARP reply announcing a different MAC
   * unless it is gratuitous.
   */
  updatedSeconds: number | null;
}

export interface LabAddress {
  family: 4 | 6;
  address: string;
  prefix: number;
}

const HOST_NAME = /^[a-z][a-z0-9]{0,11}$/;

/** Path of a compiled fixture script next to this file: fixturePath('addon-rpc') -> dist/test/netns/fixtures/addon-rpc.js. */
export function fixturePath(name: string): string {
  return path.join(__dirname, 'fixtures', `${name}.js`);
}

/** The n-th IPv4 VIP of the lab: 198.18.1.n for n in 1..254, continuing into 198.18.2.x … up to 198.18.255.254. */
export function vip4(n: number): string {
  if (!Number.isInteger(n) || n < 1 || n > 254 * 256 + 254) throw new RangeError(`vip4: n must be an integer from 1 to 65278, got ${n}`);
  return `198.18.${1 + Math.floor(n / 256)}.${n % 256}`;
}

/** The n-th IPv6 VIP of the lab: 2001:db8::1:n, n written in decimal digits (so vip6(25) pairs with vip4(25)), 1..9999. */
export function vip6(n: number): string {
  if (!Number.isInteger(n) || n < 1 || n > 9999) throw new RangeError(`vip6: n must be an integer from 1 to 9999, got ${n}`);
  return `2001:db8::1:${n}`;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function onPath(command: string): boolean {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').concat('/usr/sbin', '/sbin')) {
    try {
      accessSync(path.join(dir, command), constants.X_OK);
      return true;
    } catch {
      // try the next directory
    }
  }
  return false;
}

/**
 * Why namespace tests cannot run here (not root, or a tool missing), or undefined when they can.
 * Under CI=true a reason is an error instead: there the namespace tests must run, never skip.
 * Use it for a whole suite: describe('…', { skip: labSkipReason() }, () => …).
 */
export function labSkipReason(): string | undefined {
  let reason: string | undefined;
  if (!isRoot()) reason = 'needs root: network namespaces, veth pairs and nftables need CAP_SYS_ADMIN and CAP_NET_ADMIN (run npm run test:netns as root)';
  else {
    const missing = ['ip', 'nft', 'tcpdump'].filter((tool) => !onPath(tool));
    if (missing.length) reason = `needs ${missing.join(', ')} (apt-get install iproute2 nftables tcpdump)`;
  }
  if (reason && process.env.CI === 'true') throw new Error(`CI=true but the namespace tests cannot run: ${reason}`);
  return reason;
}

/**
 * false after t.skip('needs root: …') when namespace tests cannot run here; true otherwise.
 * Under CI=true it throws instead of skipping.
 */
export function requireRoot(t: TestContext): boolean {
  const reason = labSkipReason();
  if (reason) {
    t.skip(reason);
    return false;
  }
  return true;
}

export class Lab {
  readonly id: string;
  /** Namespace holding br0 and the bridge ends of the veth pairs. */
  readonly bridgeNs: string;
  readonly ipv6: boolean;
  private readonly byName = new Map<string, LabHost>();
  private readonly processes = new Set<LabProcess>();
  private readonly captures = new Set<Capture>();
  private readonly partitions = new Map<string, [string, string]>();
  private readonly losses = new Map<string, LossRule[]>();
  private readonly created: string[] = [];
  private destroyed = false;

  private constructor(id: string, hosts: string[], ipv6: boolean) {
    this.id = id;
    this.bridgeNs = `${id}-br`;
    this.ipv6 = ipv6;
    hosts.forEach((name, i) => {
      const n = 10 + i;
      this.byName.set(name, {
        name,
        ns: `${id}-${name}`,
        ifname: 'eth0',
        mac: `02:6d:76:00:${hex2(Math.floor(n / 256))}:${hex2(n % 256)}`,
        ipv4: `198.18.${Math.floor(n / 256)}.${n % 256}`,
        ipv6: `2001:db8::${n}`,
        bridgePort: `v${i}`,
      });
    });
  }

  /** Creates the namespaces, bridge and links, and resolves when every host's eth0 is up and addressed. */
  static async create(options: LabOptions): Promise<Lab> {
    const names = options.hosts;
    if (!names.length) throw new TypeError('Lab.create: hosts is empty');
    for (const name of names) {
      if (!HOST_NAME.test(name) || name === 'br') throw new TypeError(`Lab.create: host name ${JSON.stringify(name)} must match ${HOST_NAME} and not be "br"`);
    }
    if (new Set(names).size !== names.length) throw new TypeError(`Lab.create: duplicate host names in ${names.join(', ')}`);
    if (names.length > 200) throw new RangeError('Lab.create: at most 200 hosts');
    const id = `${process.env.MTA_VIP_RUN_ID ?? 'mvdev'}-${randomBytes(3).toString('hex')}`;
    const lab = new Lab(id, names, options.ipv6 ?? true);
    // Registered before anything exists, so a half-built lab is deleted too.
    registerLab(lab);
    try {
      await lab.build(options.sysctls ?? {});
    } catch (error) {
      await lab.destroy();
      throw error;
    }
    return lab;
  }

  host(name: string): LabHost {
    const host = this.byName.get(name);
    if (!host) throw new Error(`lab ${this.id} has no host ${JSON.stringify(name)}; hosts: ${[...this.byName.keys()].join(', ')}`);
    return host;
  }

  hosts(): LabHost[] {
    return [...this.byName.values()];
  }

  /** Runs a command (no shell) inside the host's namespace. Rejects on a non-zero exit unless allowFailure. */
  exec(host: string, argv: string[], options: ExecOptions = {}): Promise<RunResult> {
    return run(['ip', 'netns', 'exec', this.host(host).ns, ...argv], options);
  }

  /**
   * Starts `node script ...args` inside the host's namespace with an IPC channel (the child can
   * process.send()). The lab stops it in destroy() if the test has not.
   */
  spawnNode(host: string, script: string, args: string[] = [], options: SpawnNodeOptions = {}): LabProcess {
    this.assertLive();
    const ns = this.host(host).ns;
    const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
    // The fixture is not a test file; inheriting the runner's marker would make node:test in it misbehave.
    delete env.NODE_TEST_CONTEXT;
    const argv = ['netns', 'exec', ns, ...(options.wrapper ?? []), process.execPath, script, ...args];
    const child = spawn('ip', argv, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env });
    const labProcess = new LabProcess(child, `node ${path.basename(script)} in ${host}`);
    this.processes.add(labProcess);
    void labProcess.exited.then(() => this.processes.delete(labProcess));
    return labProcess;
  }

  /** The pids of every process running in the host's namespace (`ip netns pids`). */
  async pids(host: string): Promise<number[]> {
    const { stdout } = await run(['ip', 'netns', 'pids', this.host(host).ns], { allowFailure: true });
    return stdout.split(/\s+/).filter(Boolean).map(Number);
  }

  /** Addresses on the host's eth0 (`ip -j addr show dev eth0`), link-local ones included. */
  async addresses(host: string): Promise<LabAddress[]> {
    const { stdout } = await run(['ip', '-n', this.host(host).ns, '-j', 'addr', 'show', 'dev', 'eth0']);
    const links = JSON.parse(stdout) as Array<{ addr_info?: Array<{ family: string; local: string; prefixlen: number }> }>;
    return links.flatMap((link) =>
      (link.addr_info ?? []).map((info) => ({ family: info.family === 'inet6' ? 6 : 4, address: info.local, prefix: info.prefixlen }) as LabAddress),
    );
  }

  /** The host's neighbour table on eth0, IPv4 and IPv6 (`ip -s -j neigh show dev eth0`). */
  async neighbours(host: string): Promise<Neighbour[]> {
    const { stdout } = await run(['ip', '-n', this.host(host).ns, '-s', '-j', 'neigh', 'show', 'dev', 'eth0']);
    const entries = JSON.parse(stdout || '[]') as Array<{ dst: string; lladdr?: string; state?: string[]; updated?: number }>;
    return entries.map((entry) => ({
      address: entry.dst,
      mac: entry.lladdr?.toLowerCase() ?? null,
      state: (entry.state ?? []).join(','),
      updatedSeconds: entry.updated ?? null,
    }));
  }

  /** The MAC the host currently resolves `address` to, or null when it has no usable entry (none, INCOMPLETE or FAILED). */
  async neighbourMac(host: string, address: string): Promise<string | null> {
    const entry = (await this.neighbours(host)).find((neighbour) => neighbour.address === address);
    if (!entry || /FAILED|INCOMPLETE/.test(entry.state)) return null;
    return entry.mac;
  }

  /** Starts tcpdump on the host's eth0 with a pcap filter ('arp', 'icmp6 and ip6[40] == 136'); resolves once it listens. */
  async capture(host: string, filter: string): Promise<Capture> {
    this.assertLive();
    const capture = await Capture.start(this.host(host).ns, 'eth0', filter);
    this.captures.add(capture);
    return capture;
  }

  /** `ip link set eth0 down` in the host. */
  async linkDown(host: string): Promise<void> {
    await run(['ip', '-n', this.host(host).ns, 'link', 'set', 'eth0', 'down']);
  }

  /** `ip link set eth0 up` in the host. */
  async linkUp(host: string): Promise<void> {
    await run(['ip', '-n', this.host(host).ns, 'link', 'set', 'eth0', 'up']);
  }

  /**
   * Cuts a and b off from each other in both directions, for every kind of frame (IPv4, IPv6, ARP,
   * neighbour discovery), by dropping what the bridge would forward between their ports (see
   * lib/faults.ts for why the bridge and not the hosts). Both keep talking to everybody else.
   */
  async partition(a: string, b: string): Promise<void> {
    const pair = this.pairOf(a, b);
    this.partitions.set(pair.key, pair.ports);
    await this.applyPartitions();
  }

  /**
   * Cuts every host of `side` off from every host of `rest` in one nft transaction, so the split
   * happens at one instant (pairwise partition() calls would cut one pair after another).
   */
  async split(side: string[], rest: string[]): Promise<void> {
    for (const a of side) for (const b of rest) {
      const pair = this.pairOf(a, b);
      this.partitions.set(pair.key, pair.ports);
    }
    await this.applyPartitions();
  }

  /** Removes every partition at once (the merge after split()). */
  async healAll(): Promise<void> {
    this.partitions.clear();
    await this.applyPartitions();
  }

  /** Removes the partition between a and b (no-op when there is none). */
  async heal(a: string, b: string): Promise<void> {
    this.partitions.delete(this.pairOf(a, b).key);
    await this.applyPartitions();
  }

  /**
   * Drops `percent` % (0–100) of the host's IP packets matching `match` (an nft expression such as
   * 'udp dport 7946'; all IP packets when omitted), chosen at random, in `direction` (default
   * 'both': received and sent). Calls add up; clearFaults() removes them.
   */
  async loss(host: string, percent: number, match = '', direction: LossDirection = 'both'): Promise<void> {
    if (!(percent >= 0 && percent <= 100)) throw new RangeError(`loss: percent must be within 0..100, got ${percent}`);
    checkMatch(match);
    const rules = [...(this.losses.get(host) ?? []), { percent, match: match.trim(), direction }];
    await this.applyLoss(host, rules);
  }

  /** Removes the host's loss rules and every partition involving it. */
  async clearFaults(host: string): Promise<void> {
    this.host(host);
    await this.applyLoss(host, []);
    const before = this.partitions.size;
    for (const key of [...this.partitions.keys()]) if (key.split('|').includes(host)) this.partitions.delete(key);
    if (this.partitions.size !== before) await this.applyPartitions();
  }

  /** `sysctl -w key=value` inside the host's namespace ('net.ipv4.conf.all.arp_accept', '1'). */
  async sysctl(host: string, key: string, value: string): Promise<void> {
    await this.exec(host, ['sysctl', '-q', '-w', `${key}=${value}`]);
  }

  /**
   * Stops every process and capture the lab started, then deletes all its namespaces (which
   * deletes the bridge, the veth pairs and the nft tables with them). Idempotent.
   */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await Promise.all([...this.processes].map((labProcess) => labProcess.stop(1000)));
    await Promise.all([...this.captures].map((capture) => capture.stop()));
    for (const ns of this.created) await run(['ip', 'netns', 'del', ns], { allowFailure: true });
    this.created.length = 0;
    unregisterLab(this);
  }

  /** The exit-path variant of destroy(): kills without waiting and deletes namespaces with spawnSync. */
  destroySync(): void {
    this.destroyed = true;
    for (const labProcess of this.processes) labProcess.kill('SIGKILL');
    for (const capture of this.captures) capture.killNow();
    for (const ns of this.created) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    this.created.length = 0;
  }

  private async build(sysctls: Record<string, string>): Promise<void> {
    const hosts = this.hosts();
    for (const ns of [this.bridgeNs, ...hosts.map((host) => host.ns)]) {
      await run(['ip', 'netns', 'add', ns]);
      this.created.push(ns);
    }
    // The bridge namespace only switches frames: no IPv6 there, or its ports would send their own
    // router solicitations and MLD reports into the captures. Snooping off so every multicast
    // (neighbour solicitations, unsolicited NAs to ff02::1) is flooded like on a plain switch.
    await run(['ip', 'netns', 'exec', this.bridgeNs, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    await run(['ip', '-n', this.bridgeNs, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'mcast_snooping', '0']);
    await run(['ip', '-n', this.bridgeNs, 'link', 'set', 'br0', 'up']);
    await Promise.all(hosts.map((host) => this.buildHost(host, sysctls)));
  }

  private async buildHost(host: LabHost, sysctls: Record<string, string>): Promise<void> {
    // Before eth0 exists, so it inherits them: no DAD (the link-local address is usable at once) or
    // no IPv6 at all.
    const defaults = this.ipv6
      ? ['net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']
      : ['net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'];
    await run(['ip', 'netns', 'exec', host.ns, 'sysctl', '-q', '-w', ...defaults]);
    await run(['ip', '-n', this.bridgeNs, 'link', 'add', host.bridgePort, 'type', 'veth', 'peer', 'name', 'eth0', 'address', host.mac, 'netns', host.ns]);
    await run(['ip', '-n', this.bridgeNs, 'link', 'set', host.bridgePort, 'master', 'br0', 'up']);
    await run(['ip', '-n', host.ns, 'link', 'set', 'lo', 'up']);
    await run(['ip', '-n', host.ns, 'addr', 'add', `${host.ipv4}/16`, 'dev', 'eth0']);
    if (this.ipv6) await run(['ip', '-n', host.ns, 'addr', 'add', `${host.ipv6}/64`, 'dev', 'eth0', 'nodad']);
    await run(['ip', '-n', host.ns, 'link', 'set', 'eth0', 'up']);
    const extra = Object.entries(sysctls).map(([key, value]) => `${key}=${value}`);
    if (extra.length) await run(['ip', 'netns', 'exec', host.ns, 'sysctl', '-q', '-w', ...extra]);
  }

  private pairOf(a: string, b: string): { key: string; ports: [string, string] } {
    if (a === b) throw new TypeError(`partition: a host cannot be partitioned from itself (${a})`);
    const [first, second] = [a, b].sort() as [string, string];
    return { key: `${first}|${second}`, ports: [this.host(first).bridgePort, this.host(second).bridgePort] };
  }

  private async applyPartitions(): Promise<void> {
    this.assertLive();
    await run(['ip', 'netns', 'exec', this.bridgeNs, 'nft', '-f', '-'], { input: partitionScript([...this.partitions.values()]) });
  }

  private async applyLoss(host: string, rules: LossRule[]): Promise<void> {
    this.assertLive();
    await run(['ip', 'netns', 'exec', this.host(host).ns, 'nft', '-f', '-'], { input: lossScript(rules) });
    if (rules.length) this.losses.set(host, rules);
    else this.losses.delete(host);
  }

  private assertLive(): void {
    if (this.destroyed) throw new Error(`lab ${this.id} was destroyed`);
  }
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/** Name of the nft table the lab's faults live in (for tests that inspect `nft list ruleset`). */
export const LAB_FAULT_TABLE = FAULT_TABLE;
