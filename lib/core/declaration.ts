/**
 * A node's declaration: what its config says about each IP it manages. Nodes
 * exchange declarations (by digest first, in full when the digest is unknown),
 * and the election compares them to detect conflict, UNSAFE and BROKEN VIPs.
 *
 * The encoding is canonical: the same declaration always gives the same bytes,
 * so equal configs have equal digests on every node.
 */
import { createHash } from 'node:crypto';
import type { ResolvedConfig } from './config';
import { IpFamily, hostPrefix, ipSortKey, parseIp, ParsedIp } from './ip';
import { codedError, ErrorCodes } from '../errors';

export interface VipDeclaration {
  /** Canonical IP. */
  ip: string;
  family: IpFamily;
  /** Interface this node adds the VIP on (names may differ between nodes). */
  interface: string;
  prefix: number;
  /** Binding name on this IP, or null when only listeners use it. */
  binding: string | null;
  /** Listener ports, sorted ascending, unique. */
  ports: number[];
  /** The node that should hold this VIP, by name, or null. */
  preferred: string | null;
  /**
   * When set, this IP is a follower: it is not elected on its own but held by
   * whoever holds the VIP `follows` (a binding's IP).
   */
  follows: string | null;
}

export interface NodeDeclaration {
  node: string;
  /** Sorted by address (IPv4 first, numerically). */
  vips: VipDeclaration[];
}

const FORMAT_VERSION = 1;
/** Keeps a hostile peer from making us allocate without bound. */
const MAX_VIPS = 65536;
const MAX_NAME = 255;

/** The declaration of this node from its resolved config. */
export function declare(config: ResolvedConfig): NodeDeclaration {
  return {
    node: config.node,
    vips: sortVips(
      config.vips.map((v) => ({
        ip: v.ip,
        family: v.family,
        interface: v.interface,
        prefix: v.prefix,
        binding: v.binding,
        ports: [...v.ports],
        preferred: v.preferred,
        follows: v.follows,
      })),
    ),
  };
}

function sortVips(vips: VipDeclaration[]): VipDeclaration[] {
  const keys = new Map<string, string>();
  for (const v of vips) keys.set(v.ip, ipSortKey(parseIp(v.ip) as ParsedIp));
  return vips.sort((a, b) => ((keys.get(a.ip) as string) < (keys.get(b.ip) as string) ? -1 : 1));
}

/**
 * Canonical bytes: compact JSON of positional arrays
 * `[version, node, [[ip, interface, prefix, binding, ports, preferred, follows], ...]]`.
 * Family is implied by the IP.
 */
export function encodeDeclaration(d: NodeDeclaration): Buffer {
  const vips = d.vips.map((v) => [v.ip, v.interface, v.prefix, v.binding, v.ports, v.preferred, v.follows]);
  return Buffer.from(JSON.stringify([FORMAT_VERSION, d.node, vips]), 'utf8');
}

/** SHA-256 of the canonical encoding (32 bytes). */
export function declarationDigest(d: NodeDeclaration): Buffer {
  return createHash('sha256').update(encodeDeclaration(d)).digest();
}

function fail(message: string): never {
  throw codedError(ErrorCodes.DECLARATION, `invalid declaration: ${message}`);
}

function name(value: unknown, what: string, nullable: boolean): string | null {
  if (value === null && nullable) return null;
  if (typeof value !== 'string' || value === '' || value.length > MAX_NAME) fail(`${what} is not a non-empty string of at most ${MAX_NAME} characters`);
  return value;
}

/**
 * Decodes bytes from encodeDeclaration. Validates every field and refuses
 * anything that is not in canonical form (so digest and content always agree).
 * Throws an Error with code 'EDECLARATION' on garbage.
 */
export function decodeDeclaration(buf: Buffer | Uint8Array): NodeDeclaration {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('utf8'));
  } catch {
    fail('not JSON');
  }
  if (!Array.isArray(raw) || raw.length !== 3) fail('expected [version, node, vips]');
  if (raw[0] !== FORMAT_VERSION) fail(`unsupported version ${JSON.stringify(raw[0])}`);
  const node = name(raw[1], 'node', false) as string;
  const list: unknown = raw[2];
  if (!Array.isArray(list) || list.length > MAX_VIPS) fail(`vips is not an array of at most ${MAX_VIPS}`);
  const vips: VipDeclaration[] = [];
  for (const [i, entry] of (list as unknown[]).entries()) {
    if (!Array.isArray(entry) || entry.length !== 7) fail(`vips[${i}] is not a 7-element array`);
    const [ipText, iface, prefix, binding, ports, preferred, follows] = entry as unknown[];
    const ip = typeof ipText === 'string' ? parseIp(ipText) : null;
    if (!ip || ip.text !== ipText) fail(`vips[${i}] ip is not a canonical IP address`);
    if (typeof prefix !== 'number' || !Number.isInteger(prefix) || prefix < 1 || prefix > hostPrefix(ip.family)) fail(`vips[${i}] prefix out of range`);
    if (!Array.isArray(ports) || ports.length > 65535) fail(`vips[${i}] ports is not an array`);
    for (let p = 0; p < ports.length; p++) {
      const port: unknown = ports[p];
      if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) fail(`vips[${i}] port ${p} out of range`);
      if (p > 0 && (ports[p - 1] as number) >= port) fail(`vips[${i}] ports not sorted and unique`);
    }
    let followsIp: string | null = null;
    if (follows !== null) {
      const leader = typeof follows === 'string' ? parseIp(follows) : null;
      if (!leader || leader.text !== follows || leader.text === ip.text) fail(`vips[${i}] follows is not a canonical IP of another VIP`);
      followsIp = leader.text;
    }
    vips.push({
      ip: ip.text,
      family: ip.family,
      interface: name(iface, `vips[${i}] interface`, false) as string,
      prefix,
      binding: name(binding, `vips[${i}] binding`, true),
      ports: ports as number[],
      preferred: name(preferred, `vips[${i}] preferred`, true),
      follows: followsIp,
    });
  }
  let previousKey = '';
  for (const v of vips) {
    const key = ipSortKey(parseIp(v.ip) as ParsedIp);
    if (key <= previousKey) fail(`vips not sorted by address or ${v.ip} listed twice`);
    previousKey = key;
  }
  const declaration: NodeDeclaration = { node, vips };
  // Canonical form only: unsorted or duplicate VIPs, extra whitespace and the like are refused.
  if (!encodeDeclaration(declaration).equals(Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength))) fail('not in canonical form');
  return declaration;
}

/** The IPs that travel with `ip` in this declaration (its followers), sorted. */
export function followersOf(d: NodeDeclaration, ip: string): string[] {
  return d.vips.filter((v) => v.follows === ip).map((v) => v.ip);
}
