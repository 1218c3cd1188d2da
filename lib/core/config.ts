/**
 * The cluster config as the operator writes it, and its validation into a
 * ResolvedConfig the rest of mta-vip uses.
 *
 * Validation never stops at the first mistake: it collects every problem, each
 * with the path of the offending value and what to write instead, so one
 * restart is enough to see all of them. A config with any problem is refused.
 *
 * No I/O here: what the host looks like (hostname, interfaces and their
 * addresses) comes in as `env`.
 */
import {
  ParsedIp,
  canonicalIp,
  cidrContains,
  formatHostPort,
  hostPrefix,
  ipSortKey,
  isMulticast,
  parseCidr,
  parseHostPort,
  parseIp,
  samePrefix,
  ParsedCidr,
  IpFamily,
} from './ip';

/** A listener on a VIP: `'198.51.100.7:25'` or `'[2001:db8::7]:25'`. */
export interface ListenerConfig {
  /** 'ip:port' or '[ipv6]:port'. */
  address: string;
  /**
   * Managed by mta-vip (moves between nodes). Default true: a listener named in
   * the cluster config is there to fail over. Auto-upgrade: if any service on
   * the same IP has failover, this one is managed too.
   */
  failover?: boolean;
  /**
   * Make this listener's IP move with a binding: the binding's name, or its IP.
   * The follower IP is held by whichever node holds the binding, so mail
   * injected there always leaves locally. A follower is not elected on its own
   * and must not have its own `preferred` node.
   */
  follow?: string;
}

/** A named outbound source IP (`acme` = 198.51.100.7). */
export interface BindingConfig {
  /** Unique on this node, and bound to the same IP on every node. */
  name: string;
  /** The source IP (no port). */
  address: string;
  /** Managed by mta-vip (moves between nodes). Default true. */
  failover?: boolean;
  /** Free-form grouping for the MTA (e.g. a pool name). */
  group?: string;
  /** Relative weight for the MTA's own pool selection; default 1. */
  weight?: number;
}

/** Per-VIP settings, keyed by the IP. */
export interface VipConfig {
  /** Interface to add the VIP on; default from `topology` or the host's subnets. */
  interface?: string;
  /** Prefix length the VIP is added with; default 32 (IPv4) / 128 (IPv6). */
  prefix?: number;
  /**
   * The node that should hold this VIP, by name. Never a boolean: a config
   * copied between machines then still prefers one node, not all of them.
   */
  preferred?: string;
}

/** Which interface (and prefix) the IPs of a range are added on. */
export interface TopologyConfig {
  cidr: string;
  interface: string;
  prefix?: number;
}

export interface TimersConfig {
  /** Heartbeat period; default 50 ms. */
  heartbeatMs?: number;
  /** Silence after which a peer is dead; default 4 × heartbeatMs. */
  deadAfterMs?: number;
  /** How long a (re)joined preferred node must be live before it takes its VIP back; default 2000 ms. */
  holdDownMs?: number;
}

export interface AnnounceConfig {
  /** Gratuitous ARP / unsolicited NA packets per acquisition; default 3. */
  count?: number;
  /** Gap between them; default 100 ms. */
  intervalMs?: number;
  /** Gratuitous ARP form; default 'request' (updates existing neighbour entries at arp_accept=0). */
  mode?: 'request' | 'reply' | 'both';
  /** Also unicast ARP replies to every known neighbour; default false. */
  arpAllHosts?: boolean;
  /** Re-announce held VIPs this often; 0 (default) = never. */
  reannounceMs?: number;
}

/** The user-facing configuration of one node. */
export interface ClusterConfig {
  /** This node's unique name; default the hostname. */
  node?: string;
  cluster: {
    /** Cluster id; heartbeats of other clusters are dropped. */
    id: string;
    /** Shared secret for HMAC-SHA256, at least 16 bytes. Give this or secretFile. */
    secret?: string | Buffer;
    /**
     * A file holding the secret (surrounding whitespace ignored), so it need not sit in the
     * config: readable by its owner only (mode 0600 or 0400), or the node refuses to start.
     */
    secretFile?: string;
    /** This node's own cluster address (an address of this host). */
    bind: string;
    /** UDP port; default 7946. */
    port?: number;
    /** Peers: 'ip' or 'ip:port' / '[ipv6]:port'. */
    peers?: string[];
    /** Multicast group instead of (or besides) peers. */
    multicast?: string;
  };
  listeners?: Array<string | ListenerConfig>;
  bindings?: BindingConfig[];
  vips?: Record<string, VipConfig>;
  topology?: TopologyConfig[];
  timers?: TimersConfig;
  /** Only a side with a strict majority of known nodes holds VIPs; default false. */
  quorum?: boolean;
  /** 'never' (default): VIPs stay where they are; 'on-join': move VIPs gracefully to even the load. */
  rebalance?: 'never' | 'on-join';
  announce?: AnnounceConfig;
  probe?: {
    /**
     * Duplicate-address probe wait before adding a VIP; default 10 ms, 0 skips
     * the probe. It counts against failover time whenever nobody answers (a dead
     * host), so it is kept short: answered probes took 0.26 ms median and 2.2 ms
     * at worst over 50 tries between namespaces here; a LAN adds well under 1 ms.
     */
    timeoutMs?: number;
  };
}

/** What the host looks like; the runtime fills this from the addon. */
export interface HostInterface {
  name: string;
  up?: boolean;
  addresses: Array<{ family: 4 | 6; address: string; prefix: number }>;
}

export interface HostEnvironment {
  hostname: string;
  interfaces: HostInterface[];
  /**
   * Reads `cluster.secretFile` (the validation itself stays pure: the caller does the I/O).
   * Returns the bytes and the file's mode, or why it could not be read. Without it a
   * secretFile is refused.
   */
  readSecretFile?: (file: string) => { bytes: Buffer; mode: number } | { error: string };
}

export { ConfigError, type ConfigProblem } from '../errors';
import { ConfigError, type ConfigProblem } from '../errors';

export interface ResolvedListener {
  /** Canonical 'ip:port'. */
  address: string;
  ip: string;
  family: IpFamily;
  port: number;
  /** After auto-upgrade. */
  failover: boolean;
  /** IP of the VIP this listener's IP moves with, or null. */
  follows: string | null;
}

export interface ResolvedBinding {
  name: string;
  ip: string;
  family: IpFamily;
  /** After auto-upgrade. */
  failover: boolean;
  group: string | null;
  weight: number;
}

/** One IP this node manages (fails over). */
export interface ResolvedVip {
  ip: string;
  family: IpFamily;
  interface: string;
  /** Where the interface came from. */
  interfaceSource: 'vips' | 'topology' | 'subnet';
  prefix: number;
  preferred: string | null;
  /** Binding name on this IP, or null. */
  binding: string | null;
  /** Listener ports on this IP, sorted. */
  ports: number[];
  /** Leader VIP ip when this IP follows another VIP. */
  follows: string | null;
}

export interface ResolvedConfig {
  node: string;
  cluster: {
    id: string;
    secret: Buffer;
    bind: string;
    port: number;
    peers: Array<{ ip: string; port: number }>;
    multicast: string | null;
  };
  listeners: ResolvedListener[];
  bindings: ResolvedBinding[];
  /** Managed IPs, sorted by address. */
  vips: ResolvedVip[];
  timers: { heartbeatMs: number; deadAfterMs: number; holdDownMs: number };
  quorum: boolean;
  rebalance: 'never' | 'on-join';
  announce: { count: number; intervalMs: number; mode: 'request' | 'reply' | 'both'; arpAllHosts: boolean; reannounceMs: number };
  probe: { timeoutMs: number };
}

export const DEFAULT_PORT = 7946;
export const DEFAULT_HEARTBEAT_MS = 50;
export const DEFAULT_HOLD_DOWN_MS = 2000;
export const DEFAULT_PROBE_TIMEOUT_MS = 10;
const MIN_SECRET_BYTES = 16;
const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

type Record_ = Record<string, unknown>;

/** Collects problems while walking the config. */
class Problems {
  readonly list: ConfigProblem[] = [];
  add(path: string, message: string): void {
    this.list.push({ path, message });
  }
}

function isRecord(value: unknown): value is Record_ {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) return path ? `${path}.${key}` : key;
  return `${path}['${key}']`;
}

function checkKeys(record: Record_, path: string, allowed: string[], problems: Problems): void {
  for (const key of Object.keys(record)) {
    if (!allowed.includes(key)) {
      problems.add(join(path, key), `unknown setting; allowed here: ${allowed.join(', ')}`);
    }
  }
}

function optionalRecord(parent: Record_, key: string, path: string, problems: Problems): Record_ | null {
  const value = parent[key];
  if (value === undefined) return null;
  if (!isRecord(value)) {
    problems.add(join(path, key), `expected an object, got ${describe(value)}`);
    return null;
  }
  return value;
}

function optionalInteger(
  parent: Record_,
  key: string,
  path: string,
  problems: Problems,
  min: number,
  max: number,
  fallback: number,
): number {
  const value = parent[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    problems.add(join(path, key), `${describe(value)} is not an integer from ${min} to ${max}`);
    return fallback;
  }
  return value;
}

function optionalBoolean(parent: Record_, key: string, path: string, problems: Problems, fallback: boolean): boolean {
  const value = parent[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') {
    problems.add(join(path, key), `${describe(value)} is not true or false`);
    return fallback;
  }
  return value;
}

function nonEmptyString(value: unknown, path: string, problems: Problems, what: string): string | null {
  if (typeof value !== 'string') {
    problems.add(path, `expected ${what} (a string), got ${describe(value)}`);
    return null;
  }
  if (value.trim() === '') {
    problems.add(path, `${what} is an empty string; give ${what} or remove the setting`);
    return null;
  }
  return value;
}

function nodeName(value: unknown, path: string, problems: Problems, what: string): string | null {
  const text = nonEmptyString(value, path, problems, what);
  if (text === null) return null;
  if (!NODE_NAME.test(text)) {
    problems.add(path, `${JSON.stringify(text)} is not a valid node name (letters, digits, ".", "_", "-"; at most 63; starting with a letter or digit)`);
    return null;
  }
  return text;
}

function ipValue(value: unknown, path: string, problems: Problems): ParsedIp | null {
  if (typeof value !== 'string') {
    problems.add(path, `expected an IP address (a string), got ${describe(value)}`);
    return null;
  }
  const ip = parseIp(value);
  if (!ip) {
    problems.add(path, `${JSON.stringify(value)} is not an IP address; write an IPv4 or IPv6 address such as "198.51.100.7" or "2001:db8::7"`);
  }
  return ip;
}

interface ListenerDraft {
  path: string;
  ip: ParsedIp;
  port: number;
  failover: boolean;
  follow: string | null;
}

interface BindingDraft {
  path: string;
  name: string;
  ip: ParsedIp;
  failover: boolean;
  group: string | null;
  weight: number;
}

/**
 * Validates `input` against the host `env`. Returns every problem found, and
 * the resolved config when there are none. Never throws.
 */
export function validateConfig(input: unknown, env: HostEnvironment): { problems: ConfigProblem[]; config?: ResolvedConfig } {
  const problems = new Problems();
  if (!isRecord(input)) {
    problems.add('', `expected a config object, got ${describe(input)}`);
    return { problems: problems.list };
  }
  checkKeys(
    input,
    '',
    ['node', 'cluster', 'listeners', 'bindings', 'vips', 'topology', 'timers', 'quorum', 'rebalance', 'announce', 'probe'],
    problems,
  );

  const node = input.node === undefined ? nodeName(env.hostname, 'node', problems, 'the node name (from the hostname; set `node`)') : nodeName(input.node, 'node', problems, 'a node name');

  const hostAddresses: Array<{ iface: HostInterface; ip: ParsedIp; prefix: number }> = [];
  for (const iface of env.interfaces) {
    for (const a of iface.addresses) {
      const ip = parseIp(a.address);
      if (ip) hostAddresses.push({ iface, ip, prefix: a.prefix });
    }
  }

  const cluster = resolveCluster(input, problems, hostAddresses, env.readSecretFile);
  const { listeners, bindings } = readServices(input, problems);
  const topology = readTopology(input, problems, env);
  const vipSettings = readVipSettings(input, problems, env);
  const timers = readTimers(input, problems);
  const quorum = optionalBoolean(input, 'quorum', '', problems, false);
  let rebalance: 'never' | 'on-join' = 'never';
  if (input.rebalance !== undefined) {
    if (input.rebalance === 'never' || input.rebalance === 'on-join') rebalance = input.rebalance;
    else problems.add('rebalance', `${describe(input.rebalance)} is not a rebalance policy; use "never" or "on-join"`);
  }
  const announce = readAnnounce(input, problems);
  const probeRecord = optionalRecord(input, 'probe', '', problems);
  let probe = { timeoutMs: DEFAULT_PROBE_TIMEOUT_MS };
  if (probeRecord) {
    checkKeys(probeRecord, 'probe', ['timeoutMs'], problems);
    probe = { timeoutMs: optionalInteger(probeRecord, 'timeoutMs', 'probe', problems, 0, 60000, DEFAULT_PROBE_TIMEOUT_MS) };
  }

  const vips = resolveVips(listeners, bindings, vipSettings, topology, hostAddresses, problems);
  if (cluster && vips.some((v) => v.ip === cluster.bind)) {
    problems.add('cluster.bind', `${cluster.bind} is also a failover IP; the cluster address must be this host's own fixed address`);
  }

  if (problems.list.length > 0 || node === null || cluster === null) return { problems: problems.list };
  const failoverIps = new Set(vips.map((v) => v.ip));
  const followsOf = new Map(vips.map((v) => [v.ip, v.follows] as const));
  return {
    problems: [],
    config: {
      node,
      cluster,
      listeners: listeners.map((l) => ({
        address: formatHostPort(l.ip, l.port),
        ip: l.ip.text,
        family: l.ip.family,
        port: l.port,
        failover: failoverIps.has(l.ip.text),
        follows: followsOf.get(l.ip.text) ?? null,
      })),
      bindings: bindings.map((b) => ({
        name: b.name,
        ip: b.ip.text,
        family: b.ip.family,
        failover: failoverIps.has(b.ip.text),
        group: b.group,
        weight: b.weight,
      })),
      vips,
      timers,
      quorum,
      rebalance,
      announce,
      probe,
    },
  };
}

/** Like validateConfig, but throws a ConfigError listing every problem. */
export function resolveConfig(input: unknown, env: HostEnvironment): ResolvedConfig {
  const { problems, config } = validateConfig(input, env);
  if (!config) throw new ConfigError(problems);
  return config;
}

/** The secret in `cluster.secretFile`, or null with the problem recorded. */
function secretFromFile(file: unknown, problems: Problems, read: HostEnvironment['readSecretFile']): Buffer | null {
  if (typeof file !== 'string' || !file) {
    problems.add('cluster.secretFile', `expected the path of a file holding the secret, got ${describe(file)}`);
    return null;
  }
  if (!read) {
    problems.add('cluster.secretFile', 'this validation cannot read files; validate with createCluster, or give secret');
    return null;
  }
  const result = read(file);
  if ('error' in result) {
    problems.add('cluster.secretFile', `${file}: ${result.error}`);
    return null;
  }
  if ((result.mode & 0o077) !== 0) {
    problems.add('cluster.secretFile', `${file} has mode ${(result.mode & 0o777).toString(8)}: others can read the secret; chmod 600 ${file}`);
    return null;
  }
  const secret = Buffer.from(result.bytes.toString('utf8').trim(), 'utf8');
  if (secret.length < MIN_SECRET_BYTES) {
    problems.add('cluster.secretFile', `${file} holds ${secret.length} bytes; use at least ${MIN_SECRET_BYTES} random bytes (e.g. \`openssl rand -hex 32 > ${file}\`)`);
    return null;
  }
  return secret;
}

function resolveCluster(
  input: Record_,
  problems: Problems,
  hostAddresses: Array<{ ip: ParsedIp }>,
  readSecretFile: HostEnvironment['readSecretFile'],
): ResolvedConfig['cluster'] | null {
  const record = input.cluster;
  if (!isRecord(record)) {
    problems.add('cluster', record === undefined ? 'missing; give { id, secret, bind }' : `expected an object, got ${describe(record)}`);
    return null;
  }
  checkKeys(record, 'cluster', ['id', 'secret', 'secretFile', 'bind', 'port', 'peers', 'multicast'], problems);
  const id = nonEmptyString(record.id, 'cluster.id', problems, 'a cluster id');
  let secret: Buffer | null = null;
  if (record.secretFile !== undefined && record.secret !== undefined) {
    problems.add('cluster.secretFile', 'give either secret or secretFile, not both');
  } else if (record.secretFile !== undefined) {
    secret = secretFromFile(record.secretFile, problems, readSecretFile);
  } else if (typeof record.secret === 'string' || Buffer.isBuffer(record.secret)) {
    secret = Buffer.isBuffer(record.secret) ? Buffer.from(record.secret) : Buffer.from(record.secret, 'utf8');
    if (secret.length < MIN_SECRET_BYTES) {
      problems.add('cluster.secret', `${secret.length} bytes is too short; use at least ${MIN_SECRET_BYTES} random bytes (e.g. \`openssl rand -hex 32\`)`);
      secret = null;
    }
  } else {
    problems.add('cluster.secret', `expected a string or Buffer of at least ${MIN_SECRET_BYTES} bytes (or cluster.secretFile, a file holding it), got ${describe(record.secret)}`);
  }
  const bindIp = ipValue(record.bind, 'cluster.bind', problems);
  if (bindIp && !hostAddresses.some((a) => a.ip.text === bindIp.text)) {
    problems.add('cluster.bind', `${bindIp.text} is not an address of this host; give this node's own cluster address`);
  }
  const port = optionalInteger(record, 'port', 'cluster', problems, 1, 65535, DEFAULT_PORT);
  const peers: Array<{ ip: string; port: number }> = [];
  if (record.peers !== undefined) {
    if (!Array.isArray(record.peers)) {
      problems.add('cluster.peers', `expected an array of "ip" or "ip:port", got ${describe(record.peers)}`);
    } else {
      record.peers.forEach((peer, i) => {
        const parsed = typeof peer === 'string' ? parseHostPort(peer, port) : 'expected "ip" or "ip:port"';
        if (typeof parsed === 'string') problems.add(`cluster.peers[${i}]`, parsed);
        else peers.push({ ip: parsed.ip.text, port: parsed.port });
      });
    }
  }
  let multicast: string | null = null;
  if (record.multicast !== undefined) {
    const group = ipValue(record.multicast, 'cluster.multicast', problems);
    if (group && !isMulticast(group)) problems.add('cluster.multicast', `${group.text} is not a multicast group (224.0.0.0/4 or ff00::/8)`);
    else if (group) multicast = group.text;
  }
  if (id === null || secret === null || bindIp === null) return null;
  return { id, secret, bind: bindIp.text, port, peers, multicast };
}

function readServices(input: Record_, problems: Problems): { listeners: ListenerDraft[]; bindings: BindingDraft[] } {
  const listeners: ListenerDraft[] = [];
  const bindings: BindingDraft[] = [];
  if (input.listeners !== undefined && !Array.isArray(input.listeners)) {
    problems.add('listeners', `expected an array, got ${describe(input.listeners)}`);
  } else if (Array.isArray(input.listeners)) {
    const seen = new Map<string, string>();
    input.listeners.forEach((entry: unknown, i: number) => {
      const path = `listeners[${i}]`;
      let address: unknown = entry;
      let failover = true;
      let follow: string | null = null;
      if (isRecord(entry)) {
        checkKeys(entry, path, ['address', 'failover', 'follow'], problems);
        address = entry.address;
        failover = optionalBoolean(entry, 'failover', path, problems, true);
        if (entry.follow !== undefined) follow = nonEmptyString(entry.follow, `${path}.follow`, problems, 'a binding name or IP to follow');
      } else if (typeof entry !== 'string') {
        problems.add(path, `expected "ip:port" or { address, failover, follow }, got ${describe(entry)}`);
        return;
      }
      const addressPath = isRecord(entry) ? `${path}.address` : path;
      const parsed = typeof address === 'string' ? parseHostPort(address) : `expected "ip:port", got ${describe(address)}`;
      if (typeof parsed === 'string') {
        problems.add(addressPath, parsed);
        return;
      }
      const key = formatHostPort(parsed.ip, parsed.port);
      const earlier = seen.get(key);
      if (earlier) problems.add(addressPath, `${key} is already listed at ${earlier}; list each listener once`);
      seen.set(key, addressPath);
      if (follow !== null && !failover) {
        problems.add(`${path}.failover`, 'a listener that follows a binding moves with it; remove failover: false or follow');
      }
      listeners.push({ path, ip: parsed.ip, port: parsed.port, failover, follow });
    });
  }
  if (input.bindings !== undefined && !Array.isArray(input.bindings)) {
    problems.add('bindings', `expected an array, got ${describe(input.bindings)}`);
  } else if (Array.isArray(input.bindings)) {
    const byName = new Map<string, { path: string; name: string }>();
    const byIp = new Map<string, { path: string; name: string }>();
    input.bindings.forEach((entry: unknown, i: number) => {
      const path = `bindings[${i}]`;
      if (!isRecord(entry)) {
        problems.add(path, `expected { name, address, failover }, got ${describe(entry)}`);
        return;
      }
      checkKeys(entry, path, ['name', 'address', 'failover', 'group', 'weight'], problems);
      const name = nonEmptyString(entry.name, `${path}.name`, problems, 'a binding name');
      const ip = ipValue(entry.address, `${path}.address`, problems);
      const failover = optionalBoolean(entry, 'failover', path, problems, true);
      let group: string | null = null;
      if (entry.group !== undefined) group = nonEmptyString(entry.group, `${path}.group`, problems, 'a group name');
      let weight = 1;
      if (entry.weight !== undefined) {
        if (typeof entry.weight !== 'number' || !Number.isFinite(entry.weight) || entry.weight <= 0) {
          problems.add(`${path}.weight`, `${describe(entry.weight)} is not a positive number`);
        } else weight = entry.weight;
      }
      // Name and address are checked for duplicates each on its own, so a binding with a bad
      // address still claims its name: every problem is reported in one pass, not one per restart.
      const sameName = name === null ? undefined : byName.get(name);
      if (sameName) {
        problems.add(`${path}.name`, `binding name ${JSON.stringify(name)} is already used at ${sameName.path}; binding names must be unique on a node`);
      } else if (name !== null) byName.set(name, { path, name });
      const sameIp = ip === null ? undefined : byIp.get(ip.text);
      if (sameIp && ip !== null) {
        problems.add(
          `${path}.address`,
          `${ip.text} is already the address of binding ${JSON.stringify(sameIp.name)} (${sameIp.path}); one IP has one binding name, so mail for a customer only leaves from its own IP`,
        );
      } else if (ip !== null) byIp.set(ip.text, { path, name: name ?? `bindings[${i}]` });
      if (name === null || ip === null || sameName || sameIp) return;
      bindings.push({ path, name, ip, failover, group, weight });
    });
  }
  return { listeners, bindings };
}

interface TopologyEntry {
  path: string;
  cidr: ParsedCidr;
  interface: string;
  prefix: number | null;
}

function knownInterface(name: string, path: string, env: HostEnvironment, problems: Problems): boolean {
  if (env.interfaces.some((i) => i.name === name)) return true;
  problems.add(path, `interface ${JSON.stringify(name)} does not exist on this host (have: ${env.interfaces.map((i) => i.name).join(', ') || 'none'})`);
  return false;
}

function readPrefix(record: Record_, path: string, family: IpFamily | null, problems: Problems): number | null {
  if (record.prefix === undefined) return null;
  const max = family === null ? 128 : hostPrefix(family);
  const value = record.prefix;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    problems.add(join(path, 'prefix'), `${describe(value)} is not a prefix length from 1 to ${max}`);
    return null;
  }
  return value;
}

function readTopology(input: Record_, problems: Problems, env: HostEnvironment): TopologyEntry[] {
  const out: TopologyEntry[] = [];
  if (input.topology === undefined) return out;
  if (!Array.isArray(input.topology)) {
    problems.add('topology', `expected an array of { cidr, interface, prefix }, got ${describe(input.topology)}`);
    return out;
  }
  input.topology.forEach((entry: unknown, i: number) => {
    const path = `topology[${i}]`;
    if (!isRecord(entry)) {
      problems.add(path, `expected { cidr, interface, prefix }, got ${describe(entry)}`);
      return;
    }
    checkKeys(entry, path, ['cidr', 'interface', 'prefix'], problems);
    const cidr = typeof entry.cidr === 'string' ? parseCidr(entry.cidr) : null;
    if (!cidr) problems.add(`${path}.cidr`, `${describe(entry.cidr)} is not a CIDR range; write e.g. "198.51.100.0/24"`);
    const iface = nonEmptyString(entry.interface, `${path}.interface`, problems, 'an interface name');
    const ifaceOk = iface !== null && knownInterface(iface, `${path}.interface`, env, problems);
    const prefix = readPrefix(entry, path, cidr ? cidr.ip.family : null, problems);
    if (cidr && iface !== null && ifaceOk) out.push({ path, cidr, interface: iface, prefix });
  });
  return out;
}

interface VipSetting {
  path: string;
  ip: ParsedIp;
  interface: string | null;
  prefix: number | null;
  preferred: string | null;
}

function readVipSettings(input: Record_, problems: Problems, env: HostEnvironment): Map<string, VipSetting> {
  const out = new Map<string, VipSetting>();
  const record = optionalRecord(input, 'vips', '', problems);
  if (!record) return out;
  for (const [key, value] of Object.entries(record)) {
    const path = join('vips', key);
    const ip = parseIp(key);
    if (!ip) {
      problems.add(path, `${JSON.stringify(key)} is not an IP address; key vips by the VIP, e.g. vips['198.51.100.7']`);
      continue;
    }
    if (!isRecord(value)) {
      problems.add(path, `expected { interface, prefix, preferred }, got ${describe(value)}`);
      continue;
    }
    checkKeys(value, path, ['interface', 'prefix', 'preferred'], problems);
    let iface: string | null = null;
    if (value.interface !== undefined) {
      iface = nonEmptyString(value.interface, `${path}.interface`, problems, 'an interface name');
      if (iface !== null && !knownInterface(iface, `${path}.interface`, env, problems)) iface = null;
    }
    const prefix = readPrefix(value, path, ip.family, problems);
    let preferred: string | null = null;
    if (value.preferred !== undefined) {
      if (typeof value.preferred === 'boolean') {
        problems.add(`${path}.preferred`, 'a preference names the preferred node (e.g. preferred: "mx1"), never true/false, so a config copied between machines cannot make every node prefer this IP');
      } else {
        preferred = nodeName(value.preferred, `${path}.preferred`, problems, 'the preferred node name');
      }
    }
    const earlier = out.get(ip.text);
    if (earlier) {
      problems.add(path, `${ip.text} is already configured at ${earlier.path}; configure each VIP once`);
      continue;
    }
    out.set(ip.text, { path, ip, interface: iface, prefix, preferred });
  }
  return out;
}

function readTimers(input: Record_, problems: Problems): ResolvedConfig['timers'] {
  const record = optionalRecord(input, 'timers', '', problems) ?? {};
  checkKeys(record, 'timers', ['heartbeatMs', 'deadAfterMs', 'holdDownMs'], problems);
  const heartbeatMs = optionalInteger(record, 'heartbeatMs', 'timers', problems, 1, 60000, DEFAULT_HEARTBEAT_MS);
  const deadAfterMs = optionalInteger(record, 'deadAfterMs', 'timers', problems, 1, 600000, 4 * heartbeatMs);
  const holdDownMs = optionalInteger(record, 'holdDownMs', 'timers', problems, 0, 3600000, DEFAULT_HOLD_DOWN_MS);
  // One lost heartbeat must not kill a peer: dead-after spans at least two periods.
  if (deadAfterMs < 2 * heartbeatMs) {
    problems.add('timers.deadAfterMs', `${deadAfterMs} ms is less than two heartbeats (${2 * heartbeatMs} ms); a single lost packet would declare a peer dead. Use at least ${2 * heartbeatMs} (default 4 × heartbeatMs)`);
  }
  return { heartbeatMs, deadAfterMs, holdDownMs };
}

function readAnnounce(input: Record_, problems: Problems): ResolvedConfig['announce'] {
  const record = optionalRecord(input, 'announce', '', problems) ?? {};
  checkKeys(record, 'announce', ['count', 'intervalMs', 'mode', 'arpAllHosts', 'reannounceMs'], problems);
  let mode: 'request' | 'reply' | 'both' = 'request';
  if (record.mode !== undefined) {
    if (record.mode === 'request' || record.mode === 'reply' || record.mode === 'both') mode = record.mode;
    else problems.add('announce.mode', `${describe(record.mode)} is not a mode; use "request", "reply" or "both"`);
  }
  return {
    count: optionalInteger(record, 'count', 'announce', problems, 0, 100, 3),
    intervalMs: optionalInteger(record, 'intervalMs', 'announce', problems, 0, 60000, 100),
    mode,
    arpAllHosts: optionalBoolean(record, 'arpAllHosts', 'announce', problems, false),
    reannounceMs: optionalInteger(record, 'reannounceMs', 'announce', problems, 0, 86400000, 0),
  };
}

/**
 * Turns the services into the set of managed IPs (auto-upgrade, followers) and
 * finds the interface and prefix each is added with.
 */
function resolveVips(
  listeners: ListenerDraft[],
  bindings: BindingDraft[],
  settings: Map<string, VipSetting>,
  topology: TopologyEntry[],
  hostAddresses: Array<{ iface: HostInterface; ip: ParsedIp; prefix: number }>,
  problems: Problems,
): ResolvedVip[] {
  interface Draft {
    ip: ParsedIp;
    binding: BindingDraft | null;
    ports: Set<number>;
    failover: boolean;
    follow: { value: string; path: string } | null;
    firstPath: string;
  }
  const byIp = new Map<string, Draft>();
  const draftOf = (ip: ParsedIp, path: string): Draft => {
    let draft = byIp.get(ip.text);
    if (!draft) {
      draft = { ip, binding: null, ports: new Set(), failover: false, follow: null, firstPath: path };
      byIp.set(ip.text, draft);
    }
    return draft;
  };
  for (const b of bindings) {
    const draft = draftOf(b.ip, `${b.path}.address`);
    draft.binding = b;
    // Auto-upgrade: one failover service makes every service on the IP managed.
    draft.failover ||= b.failover;
  }
  for (const l of listeners) {
    const draft = draftOf(l.ip, l.path);
    draft.ports.add(l.port);
    draft.failover ||= l.failover;
    if (l.follow !== null) {
      if (draft.follow && draft.follow.value !== l.follow) {
        problems.add(`${l.path}.follow`, `${l.ip.text} already follows ${JSON.stringify(draft.follow.value)} (${draft.follow.path}); all listeners on one IP follow the same binding`);
      } else draft.follow = { value: l.follow, path: `${l.path}.follow` };
    }
  }

  for (const [ip, setting] of settings) {
    const draft = byIp.get(ip);
    if (!draft) problems.add(setting.path, `no listener or binding on this node uses ${ip}; declare a service on it or remove this entry`);
    else if (!draft.failover) problems.add(setting.path, `the services on ${ip} all have failover: false; enable failover on one of them or remove this entry`);
  }

  const bindingByName = new Map(bindings.map((b) => [b.name, b] as const));
  const out: ResolvedVip[] = [];
  for (const draft of byIp.values()) {
    if (!draft.failover) continue;
    const ip = draft.ip;
    const setting = settings.get(ip.text);
    const where = setting ? setting.path : draft.firstPath;

    let follows: string | null = null;
    if (draft.follow) {
      const target = draft.follow.value;
      const asIp = canonicalIp(target);
      const leader = asIp !== null ? byIp.get(asIp) : bindingByName.get(target) ? byIp.get((bindingByName.get(target) as BindingDraft).ip.text) : undefined;
      if (!leader || !leader.failover) {
        problems.add(draft.follow.path, asIp !== null
          ? `${asIp} is not a failover IP of this node; follow a binding (by name or IP) declared here with failover`
          : `no binding named ${JSON.stringify(target)} on this node; follow a binding declared here with failover`);
      } else if (leader.ip.text === ip.text) {
        problems.add(draft.follow.path, `${ip.text} cannot follow itself; follow a binding on another IP`);
      } else if (leader.follow) {
        problems.add(draft.follow.path, `${leader.ip.text} itself follows ${JSON.stringify(leader.follow.value)}; follow the leading binding directly`);
      } else {
        follows = leader.ip.text;
      }
      if (draft.binding) {
        problems.add(draft.follow.path, `${ip.text} carries binding ${JSON.stringify(draft.binding.name)}; a follower IP carries only listeners (give the binding its own IP, or drop follow)`);
      }
      if (setting?.preferred) {
        problems.add(`${setting.path}.preferred`, `${ip.text} follows ${JSON.stringify(target)} and moves with it, so it cannot have its own preferred node; set preferred on the leading VIP instead`);
      }
    }

    const familyPrefix = hostPrefix(ip.family);
    let iface: string | null = setting?.interface ?? null;
    let source: ResolvedVip['interfaceSource'] = 'vips';
    let prefix: number | null = setting?.prefix ?? null;
    if (iface === null) {
      const topo = topology.find((t) => cidrContains(t.cidr, ip));
      if (topo) {
        iface = topo.interface;
        source = 'topology';
        prefix ??= topo.prefix;
      }
    }
    if (iface === null) {
      // The interface whose own subnet contains the VIP is on the VIP's L2 segment.
      const onLink = hostAddresses.find((a) => a.prefix < hostPrefix(a.ip.family) && samePrefix(a.ip, ip, a.prefix));
      if (onLink) {
        iface = onLink.iface.name;
        source = 'subnet';
      }
    }
    // A VIP is added as a host route (/32, /128): added with the subnet prefix
    // it would become a secondary address that the kernel deletes together with
    // the primary unless promote_secondaries=1 (measured, shared/FACTS.md).
    prefix ??= familyPrefix;
    if (iface === null) {
      problems.add(where, `${ip.text}: no interface can carry it; add vips['${ip.text}'].interface or a topology entry whose cidr contains it`);
    }
    const own = hostAddresses.find((a) => a.ip.text === ip.text && a.prefix !== prefix);
    if (own) {
      problems.add(where, `${ip.text} is the host's own address on ${own.iface.name} (/${own.prefix}); a VIP is never the host's own address: pick another IP or remove the address from the host`);
    }
    if (iface === null) continue;
    out.push({
      ip: ip.text,
      family: ip.family,
      interface: iface,
      interfaceSource: source,
      prefix,
      preferred: setting?.preferred ?? null,
      binding: draft.binding ? draft.binding.name : null,
      ports: [...draft.ports].sort((a, b) => a - b),
      follows,
    });
  }
  const keys = new Map(out.map((v) => [v.ip, ipSortKey(parseIp(v.ip) as ParsedIp)] as const));
  out.sort((a, b) => ((keys.get(a.ip) as string) < (keys.get(b.ip) as string) ? -1 : 1));
  return out;
}
