import { isIP } from 'node:net';
import { formatIp, parseIp } from '../core/ip';

/** A UDP destination. */
export interface Endpoint {
  address: string;
  port: number;
}

/**
 * Parses a peer as written in the configuration: `'192.0.2.1'`, `'192.0.2.1:7946'`,
 * `'2001:db8::1'` or `'[2001:db8::1]:7946'`. A missing port means `defaultPort`.
 * @throws Error naming the bad entry.
 */
export function parseEndpoint(text: string, defaultPort: number): Endpoint {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) return checked(text, bracketed[1] ?? '', bracketed[2], defaultPort, 6);
  if (isIP(text) !== 0) return checked(text, text, undefined, defaultPort, 0);
  const colon = text.lastIndexOf(':');
  if (colon > 0) return checked(text, text.slice(0, colon), text.slice(colon + 1), defaultPort, 4);
  throw new Error(`mta-vip membership: peer "${text}" is not an IP address, ip:port or [ipv6]:port`);
}

function checked(text: string, address: string, portText: string | undefined, defaultPort: number, family: 0 | 4 | 6): Endpoint {
  const found = isIP(address);
  if (found === 0 || (family !== 0 && found !== family)) {
    throw new Error(`mta-vip membership: peer "${text}" is not an IP address, ip:port or [ipv6]:port`);
  }
  const port = portText === undefined ? defaultPort : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`mta-vip membership: peer "${text}" has an invalid port`);
  }
  return { address, port };
}

/** 4 for IPv4, 6 for IPv6; throws for anything else. */
export function familyOf(address: string): 4 | 6 {
  const family = isIP(address);
  if (family === 4 || family === 6) return family;
  throw new Error(`mta-vip membership: "${address}" is not an IP address`);
}

/**
 * Packed bytes of an IPv4 (4 bytes) or IPv6 (16 bytes) address. Parsing and
 * formatting are lib/core's, so the transport and the election spell every
 * address the same way.
 */
export function ipToBytes(address: string): Buffer {
  const parsed = parseIp(address);
  if (!parsed) throw new Error(`mta-vip membership: "${address}" is not an IP address`);
  return Buffer.from(parsed.bytes);
}

/** Text form of 4 or 16 packed bytes (IPv6 in RFC 5952 shortest form); null for other lengths. */
export function bytesToIp(bytes: Buffer): string | null {
  return formatIp(bytes);
}

/** Canonical text of an IP (so '2001:DB8:0::1' and '2001:db8::1' compare equal); null if not an IP. */
export { canonicalIp } from '../core/ip';
