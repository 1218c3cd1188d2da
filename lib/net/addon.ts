/**
 * The only module that loads the native addon (like node-usb's bindings.ts).
 *
 * Where the binary comes from, in order:
 *   1. the path in the environment variable MTA_VIP_ADDON;
 *   2. <package root>/build/Release/mta_vip.node, as built by cmake-js or node-gyp.
 * It is loaded on first use, so `require('mta-vip')` works on a machine where
 * the addon is not built; `capability` tells whether it is there.
 */
import fs from 'node:fs';
import path from 'node:path';
import { codedError, ErrorCodes } from '../errors';

/** A raw address entry as the addon reports it. */
export interface NativeInterfaceAddress { family: 4 | 6; address: string; prefix: number }
export interface NativeInterface {
  name: string; index: number; mac: string; mtu: number; up: boolean; running: boolean;
  addresses: NativeInterfaceAddress[];
}
export interface NativeNeighbour { address: string; mac: string | null; state: string }
export interface NativeTcpSocket {
  local: string; localPort: number; remote: string; remotePort: number; state: string; owned: boolean; sendQueue: number; lastSentMsAgo: number; lastReceivedMsAgo: number;
}
export interface NativeDestroyResult { destroyed: number; gone: number; failed: number; byAddress: Record<string, number>; lastError: string | null }
export type NativeWatchEvent =
  | { type: 'link'; ifname: string; index: number; up: boolean; running: boolean }
  | { type: 'address-added' | 'address-removed'; ifname: string; index: number; family: 4 | 6; address: string; prefix: number };
export interface NativeSniffEvent { address: string; mac: string; kind: 'arp-request' | 'arp-reply' | 'arp-probe' | 'na' }

/**
 * The raw addon (native/addon.cc). Thin syscalls: arguments are validated by
 * lib/net/index.ts before they get here. Failures are Errors with `code`,
 * `errno`, `syscall` and, on EPERM/EACCES, `capability`.
 */
export interface NativeAddon {
  /** RTM_GETLINK + RTM_GETADDR dumps. */
  interfaces(): NativeInterface[];
  /** if_nametoindex(); 0 when there is no such interface. */
  interfaceIndex(ifname: string): number;
  /** RTM_NEWADDR; EEXIST counts as success. IPv6 gets IFA_F_NODAD. */
  addAddress(ifname: string, address: string, prefix: number): Promise<void>;
  /** RTM_DELADDR of exactly address/prefix; EADDRNOTAVAIL counts as success. */
  removeAddress(ifname: string, address: string, prefix: number): Promise<void>;
  /** form: 0 ARP request, 1 ARP reply, 2 both (IPv4 only; IPv6 always sends an NA). */
  announce(ifname: string, addresses: string[], count: number, intervalMs: number, form: 0 | 1 | 2): Promise<{ sent: number }>;
  /** extraAddresses[i] is at extraMacs[i]; sent once per address+MAC with the kernel's neighbours. */
  arpAllHosts(ifname: string, address: string, extraAddresses: string[], extraMacs: string[]): Promise<{ sent: number }>;
  /** MAC of a host defending or probing the address, or null after timeoutMs. */
  probe(ifname: string, address: string, timeoutMs: number): Promise<string | null>;
  /** probe for every address with one socket and one wait; one MAC or null per address, in order. */
  probeMany(ifname: string, addresses: string[], timeoutMs: number): Promise<Array<string | null>>;
  neighbours(ifname: string): Promise<NativeNeighbour[]>;
  /** NETLINK_SOCK_DIAG dump: TCP sockets of any process whose local address is one of `addresses` (LISTEN only if `listening`). */
  tcpSockets(addresses: string[], listening: boolean): Promise<NativeTcpSocket[]>;
  /** The same sockets, each reset with SOCK_DESTROY (RST to the peer, ECONNABORTED locally). */
  destroyTcpSockets(addresses: string[], listening: boolean): Promise<NativeDestroyResult>;
  /** Reader thread on an AF_PACKET socket; keeps the process alive until close(). */
  Sniffer: new (ifname: string, addresses: string[], onClaim: (event: NativeSniffEvent) => void) => {
    close(): void;
    setAddresses(addresses: string[]): void;
  };
  /** Reader thread on a NETLINK_ROUTE socket; keeps the process alive until close(). */
  Watcher: new (onEvent: (event: NativeWatchEvent) => void) => { close(): void };
}

const BINARY = path.join('build', 'Release', 'mta_vip.node');

/** The directory holding mta-vip's package.json, found by walking up from here (dist/lib/net/ when compiled). */
export function packageRoot(start: string = __dirname): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    try {
      if (JSON.parse(fs.readFileSync(manifest, 'utf8')).name === 'mta-vip') return dir;
    } catch {
      // no package.json here, or not ours: keep walking
    }
    if (path.dirname(dir) === dir) return path.resolve(__dirname, '..', '..', '..');
  }
}

/** Candidate paths for the binary, in the order they are tried. */
export function addonCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const fromEnv = env.MTA_VIP_ADDON;
  if (fromEnv) return [path.resolve(fromEnv)];
  return [path.join(packageRoot(), BINARY)];
}

function notBuilt(looked: string[]): Error {
  const nodedir = path.dirname(path.dirname(fs.realpathSync(process.execPath)));
  return codedError(
    ErrorCodes.ADDON_NOT_BUILT,
    `mta-vip's native addon is not built (looked in ${looked.join(', ')}): ` +
      `run \`npm run build:native\` (cmake-js) or \`npx node-gyp rebuild --nodedir=${nodedir}\` ` +
      `in ${packageRoot()}` +
      (process.env.MTA_VIP_ADDON ? ', or fix MTA_VIP_ADDON' : ''),
  );
}

let cached: NativeAddon | undefined;
let failure: Error | undefined;

/** Loads the addon once; throws the same actionable error on every call when it cannot. */
export function loadAddon(): NativeAddon {
  if (cached) return cached;
  if (failure) throw failure;
  const candidates = addonCandidates();
  const found = candidates.find((candidate) => fs.existsSync(candidate));
  if (!found) {
    failure = notBuilt(candidates);
    throw failure;
  }
  try {
    cached = require(found) as NativeAddon;
    return cached;
  } catch (cause) {
    failure = codedError(ErrorCodes.ADDON_LOAD, `mta-vip's native addon at ${found} cannot be loaded (${(cause as Error).message}): rebuild it with \`npm run build:native\``, { cause });
    throw failure;
  }
}

/**
 * Whether the addon is built and loadable, without throwing (like zeromq.js).
 * Reading `loaded` tries the load once.
 */
export const capability: { readonly loaded: boolean; readonly error?: string } = {
  get loaded(): boolean {
    try {
      loadAddon();
      return true;
    } catch {
      return false;
    }
  },
  get error(): string | undefined {
    try {
      loadAddon();
      return undefined;
    } catch (error) {
      return (error as Error).message;
    }
  },
};

/** Forgets a cached load failure (tests change MTA_VIP_ADDON between cases). */
export function resetAddonForTests(): void {
  failure = undefined;
  cached = undefined;
}
