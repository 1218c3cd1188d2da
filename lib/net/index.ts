/**
 * Typed wrapper over the native addon: the network effects mta-vip needs
 * (addresses, gratuitous ARP / unsolicited NA, probes, sniffing, netlink
 * events). Every argument is checked here, with a message naming the function
 * and the argument, before any syscall; syscall failures are Errors with
 * `code`, `errno`, `syscall` and a message naming the operation, the interface
 * and, for EPERM, the missing capability and how to grant it.
 */
import { loadAddon, type NativeAddon } from './addon';
import { parseAddress, parseAddressList, parseCidr } from './address';

export { capability } from './addon';

export interface InterfaceAddress { family: 4 | 6; address: string; prefix: number }
export interface InterfaceInfo {
  name: string;
  index: number;
  /** "aa:bb:cc:dd:ee:ff", lower-case. */
  mac: string;
  mtu: number;
  up: boolean;
  running: boolean;
  addresses: InterfaceAddress[];
}
export interface AnnounceOptions {
  /** Rounds of frames; default 3. */
  count?: number;
  /** Pause between rounds; default 20 ms. */
  intervalMs?: number;
  /**
   * IPv4 gratuitous ARP form; default 'request' (an ARP request with sender IP
   * = target IP updates existing cache entries at the default arp_accept=0).
   * IPv6 addresses always get an unsolicited neighbour advertisement.
   */
  mode?: 'request' | 'reply' | 'both';
}
export interface Neighbour {
  address: string;
  mac: string | null;
  /** 'REACHABLE', 'STALE', 'DELAY', 'PROBE', 'FAILED', 'INCOMPLETE', 'PERMANENT', 'NOARP' */
  state: string;
}
export type WatchEvent =
  | { type: 'link'; ifname: string; index: number; up: boolean; running: boolean }
  | { type: 'address-added' | 'address-removed'; ifname: string; index: number; family: 4 | 6; address: string; prefix: number };
export interface SniffEvent { ifname: string; address: string; mac: string; kind: 'arp-request' | 'arp-reply' | 'arp-probe' | 'na' }
export interface Closable { close(): void }
export interface ArpAllHostsOptions {
  /**
   * Hosts to reach besides the kernel's neighbours on the link, e.g. learned
   * from peers (hosts that only talked to the previous holder). Same family as
   * `address`; each address+MAC pair gets one frame.
   */
  extra?: Array<{ address: string; mac: string }>;
}

/** Most addresses one announce/probeMany/sniff call takes (one socket, one batch). */
export const MAX_ADDRESSES = 65536;
const MAX_COUNT = 100;
const MAX_INTERVAL_MS = 10_000;
const MAX_TIMEOUT_MS = 60_000;
const ARP_FORMS = { request: 0, reply: 1, both: 2 } as const;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** Every interface with its index, MAC, MTU, flags and addresses (netlink dumps; synchronous, tens of µs). */
export function interfaces(): InterfaceInfo[] {
  try {
    return loadAddon().interfaces();
  } catch (error) {
    throw annotate('interfaces', undefined, error);
  }
}

/**
 * Adds `cidr` ('198.18.1.5/32', '2001:db8::1:5/128') to the interface.
 * Idempotent: an address already present resolves. IPv6 skips duplicate
 * address detection (IFA_F_NODAD) so the VIP is usable at once.
 * Needs CAP_NET_ADMIN.
 */
export async function addAddress(ifname: string, cidr: string): Promise<void> {
  checkIfname('addAddress', ifname);
  const parsed = parseCidr('addAddress', 'cidr', cidr);
  const addon = requireInterface('addAddress', ifname);
  await wrapNative('addAddress', ifname, () => addon.addAddress(ifname, parsed.address, parsed.prefix));
}

/** Removes exactly `cidr` (address and prefix) from the interface. Idempotent. Needs CAP_NET_ADMIN. */
export async function removeAddress(ifname: string, cidr: string): Promise<void> {
  checkIfname('removeAddress', ifname);
  const parsed = parseCidr('removeAddress', 'cidr', cidr);
  const addon = requireInterface('removeAddress', ifname);
  await wrapNative('removeAddress', ifname, () => addon.removeAddress(ifname, parsed.address, parsed.prefix));
}

/**
 * Tells the link that `addresses` are here now: gratuitous ARP for IPv4,
 * unsolicited neighbour advertisement (Override, to ff02::1) for IPv6; mixed
 * families allowed. `count` rounds `intervalMs` apart, all addresses per round,
 * one socket. Resolves with the number of frames sent. Needs CAP_NET_RAW.
 */
export async function announce(ifname: string, addresses: string[], options?: AnnounceOptions | null): Promise<{ sent: number }> {
  checkIfname('announce', ifname);
  const parsed = parseAddressList('announce', 'addresses', addresses, MAX_ADDRESSES);
  options = checkOptions('announce', options);
  const count = integerOption('announce', 'options.count', options.count, 3, 1, MAX_COUNT);
  const intervalMs = integerOption('announce', 'options.intervalMs', options.intervalMs, 20, 0, MAX_INTERVAL_MS);
  const mode = options.mode ?? 'request';
  if (!Object.prototype.hasOwnProperty.call(ARP_FORMS, mode)) {
    throw new TypeError(`announce: options.mode must be 'request', 'reply' or 'both', got ${JSON.stringify(mode)}`);
  }
  const addon = requireInterface('announce', ifname);
  if (parsed.length === 0) return { sent: 0 };
  return wrapNative('announce', ifname, () =>
    addon.announce(ifname, parsed.map((p) => p.address), count, intervalMs, ARP_FORMS[mode]),
  );
}

/**
 * Sends unicast ARP replies (IPv4) or a neighbour advertisement (IPv6) claiming
 * `address` to every neighbour the kernel knows on that link, and to
 * `options.extra`, for hosts and switches that ignore broadcast announcements.
 * IPv4 hosts get two replies: the RFC 826 form (target = the host) and the
 * gratuitous form (target = the VIP), which Linux applies even within
 * `locktime` of its last update. Resolves with the number of frames sent.
 * Needs CAP_NET_RAW.
 */
export async function arpAllHosts(ifname: string, address: string, options?: ArpAllHostsOptions | null): Promise<{ sent: number }> {
  checkIfname('arpAllHosts', ifname);
  const parsed = parseAddress('arpAllHosts', 'address', address);
  options = checkOptions('arpAllHosts', options);
  const extra = options.extra ?? [];
  if (!Array.isArray(extra)) throw new TypeError('arpAllHosts: options.extra must be an array of { address, mac }');
  if (extra.length > MAX_ADDRESSES) throw new RangeError(`arpAllHosts: options.extra has ${extra.length} hosts, at most ${MAX_ADDRESSES}`);
  const extraAddresses: string[] = [];
  const extraMacs: string[] = [];
  extra.forEach((host, i) => {
    if (host === null || typeof host !== 'object') throw new TypeError(`arpAllHosts: options.extra[${i}] must be { address, mac }`);
    const hostAddress = parseAddress('arpAllHosts', `options.extra[${i}].address`, host.address);
    if (hostAddress.family !== parsed.family) {
      throw new TypeError(`arpAllHosts: options.extra[${i}].address ${host.address} is IPv${hostAddress.family}, but address ${address} is IPv${parsed.family}`);
    }
    if (typeof host.mac !== 'string' || !MAC.test(host.mac)) {
      throw new TypeError(`arpAllHosts: options.extra[${i}].mac ${JSON.stringify(host.mac)} is not a MAC like aa:bb:cc:dd:ee:ff`);
    }
    extraAddresses.push(hostAddress.address);
    extraMacs.push(host.mac.toLowerCase());
  });
  const addon = requireInterface('arpAllHosts', ifname);
  return wrapNative('arpAllHosts', ifname, () => addon.arpAllHosts(ifname, parsed.address, extraAddresses, extraMacs));
}

/**
 * Is anybody else using `address` on the link? IPv4: RFC 5227 ARP probe;
 * IPv6: duplicate address detection NS. Resolves with the MAC of a host that
 * answers (or probes for the same address), or null after `timeoutMs`
 * (default 20). Needs CAP_NET_RAW.
 */
export async function probe(ifname: string, address: string, options?: { timeoutMs?: number } | null): Promise<string | null> {
  checkIfname('probe', ifname);
  const parsed = parseAddress('probe', 'address', address);
  options = checkOptions('probe', options);
  const timeoutMs = integerOption('probe', 'options.timeoutMs', options.timeoutMs, 20, 0, MAX_TIMEOUT_MS);
  const addon = requireInterface('probe', ifname);
  return wrapNative('probe', ifname, () => addon.probe(ifname, parsed.address, timeoutMs));
}

/**
 * probe() for a whole batch in one call: one socket, opened before anything
 * is sent, an RFC 5227 ARP probe for each IPv4 address and a DAD NS for each
 * IPv6 address (mixed families allowed), then one wait of `timeoutMs`
 * (default 20) for the answers; it ends early once every address has one.
 * Resolves with a Map from each address, as given, to the MAC of a host that
 * answered (or probed for it too), or null. Needs CAP_NET_RAW.
 */
export async function probeMany(
  ifname: string,
  addresses: string[],
  options?: { timeoutMs?: number } | null,
): Promise<Map<string, string | null>> {
  checkIfname('probeMany', ifname);
  const parsed = parseAddressList('probeMany', 'addresses', addresses, MAX_ADDRESSES);
  options = checkOptions('probeMany', options);
  const timeoutMs = integerOption('probeMany', 'options.timeoutMs', options.timeoutMs, 20, 0, MAX_TIMEOUT_MS);
  const addon = requireInterface('probeMany', ifname);
  const result = new Map<string, string | null>();
  if (parsed.length === 0) return result;
  const macs = await wrapNative('probeMany', ifname, () => addon.probeMany(ifname, parsed.map((p) => p.address), timeoutMs));
  parsed.forEach((p, i) => result.set(p.address, macs[i] ?? null));
  return result;
}

/** The kernel's neighbour (ARP/NDP) entries for the interface. */
export async function neighbours(ifname: string): Promise<Neighbour[]> {
  checkIfname('neighbours', ifname);
  const addon = requireInterface('neighbours', ifname);
  return wrapNative('neighbours', ifname, () => addon.neighbours(ifname));
}

/**
 * Reports ARP requests/replies, ARP probes and neighbour advertisements that
 * claim one of `addresses` from a MAC that is not the interface's own. The
 * sniffer keeps the process alive until close() (idempotent). An exception
 * thrown by `onClaim` surfaces as an 'uncaughtException', like an
 * EventEmitter listener's. Needs CAP_NET_RAW.
 */
export function sniff(
  ifname: string,
  addresses: string[],
  onClaim: (event: SniffEvent) => void,
): Closable & { setAddresses(addresses: string[]): void } {
  checkIfname('sniff', ifname);
  const parsed = parseAddressList('sniff', 'addresses', addresses, MAX_ADDRESSES);
  checkCallback('sniff', 'onClaim', onClaim);
  const addon = requireInterface('sniff', ifname);
  let closed = false;
  const deliver = guarded((event: { address: string; mac: string; kind: SniffEvent['kind'] }) => {
    if (!closed) onClaim({ ifname, address: event.address, mac: event.mac, kind: event.kind });
  });
  let sniffer: InstanceType<NativeAddon['Sniffer']>;
  try {
    sniffer = new addon.Sniffer(ifname, parsed.map((p) => p.address), deliver);
  } catch (error) {
    throw annotate('sniff', ifname, error);
  }
  return {
    close(): void {
      closed = true;
      sniffer.close();
    },
    setAddresses(next: string[]): void {
      const list = parseAddressList('sniff.setAddresses', 'addresses', next, MAX_ADDRESSES);
      sniffer.setAddresses(list.map((p) => p.address));
    },
  };
}

/**
 * Link up/down and address added/removed events from rtnetlink (all
 * interfaces). Keeps the process alive until close() (idempotent). An
 * exception thrown by `onEvent` surfaces as an 'uncaughtException'.
 */
export function watch(onEvent: (event: WatchEvent) => void): Closable {
  checkCallback('watch', 'onEvent', onEvent);
  let watcher: InstanceType<NativeAddon['Watcher']>;
  let closed = false;
  try {
    watcher = new (loadAddon().Watcher)(guarded((event: WatchEvent) => {
      if (!closed) onEvent(event);
    }));
  } catch (error) {
    throw annotate('watch', undefined, error);
  }
  return {
    close(): void {
      closed = true;
      watcher.close();
    },
  };
}

// ---- TCP sessions on an address ---------------------------------------------

/** A TCP socket of any process on this host, found by its local address. */
export interface TcpSocket {
  /** Local address (IPv4 for an IPv4 session on a dual-stack socket). */
  local: string;
  localPort: number;
  remote: string;
  remotePort: number;
  /** Kernel TCP state: 'ESTABLISHED', 'FIN_WAIT1', 'LISTEN', ... */
  state: string;
  /** A process still holds it; false for an orphan the kernel finishes alone (closed with data unsent). */
  owned: boolean;
  /** Bytes not yet acknowledged by the peer. */
  sendQueue: number;
  /** Milliseconds since data was last sent / received on it (-1 when the kernel did not say). */
  lastSentMsAgo: number;
  lastReceivedMsAgo: number;
}

/** What destroyTcpSockets did. */
export interface DestroyResult {
  /** Reset (RST sent to the peer; the owning process sees ECONNABORTED). */
  destroyed: number;
  /** Closed on their own between the listing and the reset. */
  gone: number;
  failed: number;
  /** `destroyed` per local address (canonical text), for callers that batched several addresses. */
  byAddress: Record<string, number>;
  lastError: string | null;
}

/**
 * The TCP sockets, of every process on this host, whose local address is one
 * of `addresses` (TIME_WAIT and CLOSE left out; LISTEN only with `listening`).
 * This is how a node knows whether sessions of other processes (MTA workers)
 * or orphans still use a VIP before it removes it. NETLINK_SOCK_DIAG; no
 * privilege needed to read.
 */
export async function tcpSockets(addresses: string[], options?: { listening?: boolean } | null): Promise<TcpSocket[]> {
  const parsed = parseAddressList('tcpSockets', 'addresses', addresses, MAX_ADDRESSES);
  const listening = booleanOption('tcpSockets', 'listening', checkOptions('tcpSockets', options).listening, false);
  if (parsed.length === 0) return [];
  return wrapNative('tcpSockets', undefined, () => loadAddon().tcpSockets(parsed.map((p) => p.address), listening));
}

/**
 * Resets every TCP socket whose local address is one of `addresses`
 * (SOCK_DESTROY): the peer gets a RST while the address can still send it, and
 * the process that owned the socket gets ECONNABORTED at once instead of
 * hanging on a vanished address. With `listening`, listening sockets bound to
 * exactly those addresses too (their unaccepted connections are reset).
 * Needs CAP_NET_ADMIN and a kernel with CONFIG_INET_DIAG_DESTROY (EOPNOTSUPP
 * otherwise).
 */
export async function destroyTcpSockets(addresses: string[], options?: { listening?: boolean } | null): Promise<DestroyResult> {
  const parsed = parseAddressList('destroyTcpSockets', 'addresses', addresses, MAX_ADDRESSES);
  const listening = booleanOption('destroyTcpSockets', 'listening', checkOptions('destroyTcpSockets', options).listening, false);
  if (parsed.length === 0) return { destroyed: 0, gone: 0, failed: 0, byAddress: {}, lastError: null };
  try {
    return await loadAddon().destroyTcpSockets(parsed.map((p) => p.address), listening);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EOPNOTSUPP') {
      (error as Error).message += '; this kernel cannot reset sockets (it needs CONFIG_INET_DIAG_DESTROY=y)';
    }
    throw annotate('destroyTcpSockets', undefined, error);
  }
}

// ---- argument checks -------------------------------------------------------

function booleanOption(fn: string, name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new TypeError(`${fn}: ${name} must be true or false, got ${typeof value}`);
  return value;
}

function checkIfname(fn: string, ifname: unknown): asserts ifname is string {
  if (typeof ifname !== 'string' || ifname.length === 0) {
    throw new TypeError(`${fn}: ifname must be a non-empty interface name like "eth0", got ${ifname === '' ? '""' : typeof ifname}`);
  }
  if (ifname.length > 15 || /[\s/:]/.test(ifname)) {
    throw new TypeError(`${fn}: ifname ${JSON.stringify(ifname)} is not a valid interface name (at most 15 characters, no spaces, '/' or ':')`);
  }
}

/** undefined and null (what JSON makes of a missing argument) mean "all defaults". */
function checkOptions<T extends object>(fn: string, options: T | null | undefined): T | Record<string, never> {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object') throw new TypeError(`${fn}: options must be an object, got ${typeof options}`);
  return options;
}

function checkCallback(fn: string, arg: string, callback: unknown): void {
  if (typeof callback !== 'function') throw new TypeError(`${fn}: ${arg} must be a function`);
}

function integerOption(fn: string, name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new TypeError(`${fn}: ${name} must be an integer, got ${typeof value === 'number' ? value : typeof value}`);
  }
  if (value < min || value > max) throw new RangeError(`${fn}: ${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

/** Loads the addon and fails with ENODEV, listing the interfaces that exist, when `ifname` is unknown. */
function requireInterface(fn: string, ifname: string): NativeAddon {
  const addon = loadAddon();
  if (addon.interfaceIndex(ifname) !== 0) return addon;
  const names = addon.interfaces().map((link) => link.name);
  const error = new Error(`${fn}: interface ${ifname} does not exist; interfaces here: ${names.join(', ')}`) as NodeJS.ErrnoException;
  error.code = 'ENODEV';
  error.errno = 19;
  error.syscall = 'if_nametoindex';
  throw error;
}

// ---- errors and callbacks --------------------------------------------------

/** Prefixes a native error's message with the operation and interface ("announce on eth0: ..."). */
function annotate(fn: string, ifname: string | undefined, error: unknown): unknown {
  if (error instanceof Error && typeof (error as NodeJS.ErrnoException).syscall === 'string') {
    const before = error.message;
    error.message = `${fn}${ifname === undefined ? '' : ` on ${ifname}`}: ${before}`;
    if (typeof error.stack === 'string') error.stack = error.stack.replace(before, error.message);
  }
  return error;
}

async function wrapNative<T>(fn: string, ifname: string | undefined, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw annotate(fn, ifname, error);
  }
}

/**
 * The addon calls back from a ThreadSafeFunction, where Node-API would only
 * print a warning for a thrown exception; rethrowing on the next tick gives
 * the usual 'uncaughtException' semantics instead.
 */
function guarded<A>(callback: (arg: A) => void): (arg: A) => void {
  return (arg: A) => {
    try {
      callback(arg);
    } catch (error) {
      process.nextTick(() => {
        throw error;
      });
    }
  };
}
