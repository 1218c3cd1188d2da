/**
 * The one IP module: parsing and canonical spelling for the config, the
 * election, the transport (lib/transport/address.ts builds on it), the addon's
 * argument checks (lib/net/address.ts) and the MTA plugins.
 *
 * Every IP that enters the core is turned into one canonical text form (IPv4
 * dotted quad without leading zeros, IPv6 as RFC 5952 lower-case with the
 * longest zero run compressed) so that "2001:db8:0::7" on one node and
 * "2001:db8::7" on another are the same VIP, and declarations encode to the
 * same bytes everywhere.
 */
import { isIPv6 } from 'node:net';

export type IpFamily = 4 | 6;

export interface ParsedIp {
  family: IpFamily;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
  /** Canonical text form. */
  text: string;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function parseIpv4Bytes(input: string): Uint8Array | null {
  const match = IPV4.exec(input);
  if (!match) return null;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = match[i + 1] as string;
    // Leading zeros are refused: some tools read "010" as octal 8.
    if (part.length > 1 && part[0] === '0') return null;
    const value = Number(part);
    if (value > 255) return null;
    bytes[i] = value;
  }
  return bytes;
}

function parseIpv6Bytes(input: string): Uint8Array | null {
  // Zone ids ("fe80::1%eth0") name a link, not an address a VIP can be.
  if (input.includes('%') || !isIPv6(input)) return null;
  let text = input.toLowerCase();
  const bytes = new Uint8Array(16);
  let tailV4: Uint8Array | null = null;
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    tailV4 = parseIpv4Bytes(text.slice(lastColon + 1));
    if (!tailV4) return null;
    text = text.slice(0, lastColon + 1) + '0:0';
  }
  const halves = text.split('::');
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length > 1 && halves[1] ? halves[1].split(':') : [];
  const groups: number[] = [];
  for (const g of head) groups.push(parseInt(g, 16));
  const missing = 8 - head.length - tail.length;
  for (let i = 0; i < missing; i++) groups.push(0);
  for (const g of tail) groups.push(parseInt(g, 16));
  if (groups.length !== 8) return null;
  for (let i = 0; i < 8; i++) {
    const g = groups[i] as number;
    bytes[i * 2] = g >> 8;
    bytes[i * 2 + 1] = g & 0xff;
  }
  if (tailV4) bytes.set(tailV4, 12);
  return bytes;
}

function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(((bytes[i * 2] as number) << 8) | (bytes[i * 2 + 1] as number));
  // IPv4-mapped addresses are written the way Node reports them on sockets.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLength < 2) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** Canonical text of 4 or 16 packed bytes (IPv6 in RFC 5952 form); null for other lengths. */
export function formatIp(bytes: Uint8Array): string | null {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  return bytes.length === 16 ? formatIpv6(bytes) : null;
}

/** Parses an IPv4 or IPv6 address (no port, no prefix, no zone); null if it is not one. */
export function parseIp(input: string): ParsedIp | null {
  if (typeof input !== 'string') return null;
  const v4 = parseIpv4Bytes(input);
  if (v4) return { family: 4, bytes: v4, text: Array.from(v4).join('.') };
  const v6 = parseIpv6Bytes(input);
  if (v6) return { family: 6, bytes: v6, text: formatIpv6(v6) };
  return null;
}

/** The canonical text of an address, or null if it is not one. */
export function canonicalIp(input: string): string | null {
  return parseIp(input)?.text ?? null;
}

/**
 * A string that sorts like the address itself (IPv4 before IPv6, then
 * numerically), so "10.0.0.2" comes before "10.0.0.10".
 */
export function ipSortKey(ip: ParsedIp): string {
  let key = String(ip.family);
  for (const b of ip.bytes) key += b.toString(16).padStart(2, '0');
  return key;
}

/** Full-length prefix of a family: 32 or 128. */
export function hostPrefix(family: IpFamily): number {
  return family === 4 ? 32 : 128;
}

/** True when the first `prefix` bits of `a` and `b` are equal (same family required). */
export function samePrefix(a: ParsedIp, b: ParsedIp, prefix: number): boolean {
  if (a.family !== b.family) return false;
  let bits = prefix;
  for (let i = 0; i < a.bytes.length && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((a.bytes[i] as number) & mask) !== ((b.bytes[i] as number) & mask)) return false;
  }
  return true;
}

export interface ParsedCidr {
  ip: ParsedIp;
  prefix: number;
}

/** Parses "198.51.100.0/24" or "2001:db8::/64"; null if malformed. */
export function parseCidr(input: string): ParsedCidr | null {
  if (typeof input !== 'string') return null;
  const slash = input.indexOf('/');
  if (slash < 0) return null;
  const ip = parseIp(input.slice(0, slash));
  const prefixText = input.slice(slash + 1);
  if (!ip || !/^\d{1,3}$/.test(prefixText)) return null;
  const prefix = Number(prefixText);
  if (prefix > hostPrefix(ip.family)) return null;
  return { ip, prefix };
}

/** True when `ip` lies inside `cidr`. */
export function cidrContains(cidr: ParsedCidr, ip: ParsedIp): boolean {
  return samePrefix(cidr.ip, ip, cidr.prefix);
}

export interface HostPort {
  ip: ParsedIp;
  port: number;
}

/**
 * Parses "198.51.100.7:25" or "[2001:db8::7]:25". Returns an error text saying
 * how to write it when it cannot.
 */
export function parseHostPort(input: string, defaultPort?: number): HostPort | string {
  if (typeof input !== 'string' || input === '') return 'expected "ip:port" or "[ipv6]:port"';
  let host: string;
  let portText: string | undefined;
  if (input.startsWith('[')) {
    const close = input.indexOf(']');
    if (close < 0) return `"${input}" has no closing "]"; write "[ipv6]:port"`;
    host = input.slice(1, close);
    const rest = input.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return `"${input}": expected ":port" after "]"`;
      portText = rest.slice(1);
    }
  } else {
    const colons = input.split(':').length - 1;
    if (colons > 1) {
      if (defaultPort !== undefined && parseIp(input)) return { ip: parseIp(input) as ParsedIp, port: defaultPort };
      return `"${input}" is ambiguous; write an IPv6 address with a port as "[ipv6]:port"`;
    }
    if (colons === 1) {
      host = input.slice(0, input.indexOf(':'));
      portText = input.slice(input.indexOf(':') + 1);
    } else {
      host = input;
    }
  }
  const ip = parseIp(host);
  if (!ip) return `"${host}" is not an IP address`;
  if (portText === undefined) {
    if (defaultPort === undefined) return `"${input}" has no port; write "ip:port"`;
    return { ip, port: defaultPort };
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    return `"${portText}" is not a port (1-65535)`;
  }
  return { ip, port: Number(portText) };
}

/** Formats ip and port the way parseHostPort reads them. */
export function formatHostPort(ip: ParsedIp | string, port: number): string {
  const text = typeof ip === 'string' ? ip : ip.text;
  return text.includes(':') ? `[${text}]:${port}` : `${text}:${port}`;
}

/** True for 224.0.0.0/4 and ff00::/8. */
export function isMulticast(ip: ParsedIp): boolean {
  const first = ip.bytes[0] as number;
  return ip.family === 4 ? first >= 224 && first <= 239 : first === 0xff;
}

/**
 * An address with an optional zone ("fe80::1%eth0", as a link-local peer or bind address is
 * written); null when the part before the zone is not an address, or a zone follows IPv4.
 */
export function parseZonedIp(input: string): { ip: ParsedIp; zone: string } | null {
  if (typeof input !== 'string') return null;
  const percent = input.indexOf('%');
  const ip = parseIp(percent < 0 ? input : input.slice(0, percent));
  const zone = percent < 0 ? '' : input.slice(percent + 1);
  if (!ip || (percent >= 0 && (zone === '' || ip.family === 4))) return null;
  return { ip, zone };
}

/**
 * The address a client connected from or to, as a VIP is spelled: canonical, and an
 * IPv4-mapped IPv6 address (how a wildcard IPv6 socket reports an IPv4 peer) as IPv4.
 * Input that is no address comes back lower-cased, so it still compares as a non-match.
 */
export function clientIp(input: string): string {
  const ip = parseIp(input);
  if (!ip) return String(input).toLowerCase();
  const b = ip.bytes;
  if (ip.family === 6 && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  return ip.text;
}
