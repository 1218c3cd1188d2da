/**
 * Endpoints of the membership transport, on lib/core's one IP module: peers
 * arrive parsed from the config (or as text from direct users of Membership),
 * and every address is spelled canonically, so the transport and the election
 * agree on it. A zone ("fe80::1%eth0") is kept: link-local peers need it.
 */
import { canonicalIp, formatIp, parseHostPort, parseIp, parseZonedIp } from '../core/ip';

/** A UDP destination. */
export interface Endpoint {
  address: string;
  port: number;
}

/**
 * A peer as written in the configuration: `'192.0.2.1'`, `'192.0.2.1:7946'`, `'2001:db8::1'`,
 * `'[2001:db8::1]:7946'` or `'[fe80::1%eth0]:7946'`, or an already parsed endpoint. A missing
 * port means `defaultPort`.
 * @throws Error naming the bad entry and what is wrong with it.
 */
export function parseEndpoint(peer: string | Endpoint, defaultPort: number): Endpoint {
  if (typeof peer !== 'string') return { address: zonedCanonical(peer.address, String(peer.address)), port: checkedPort(String(peer.address), peer.port) };
  const zone = /%[^\]:]+/.exec(peer)?.[0] ?? '';
  const parsed = parseHostPort(zone ? peer.replace(zone, '') : peer, defaultPort);
  if (typeof parsed === 'string') {
    const what = /port/.test(parsed) ? 'has an invalid port' : 'is not an IP address, ip:port or [ipv6]:port';
    throw new Error(`mta-vip membership: peer "${peer}" ${what} (${parsed})`);
  }
  if (zone && parsed.ip.family === 4) throw new Error(`mta-vip membership: peer "${peer}" is not an IP address, ip:port or [ipv6]:port (a zone needs IPv6)`);
  return { address: parsed.ip.text + zone, port: parsed.port };
}

function zonedCanonical(address: string, text: string): string {
  const zoned = parseZonedIp(address);
  if (!zoned) throw new Error(`mta-vip membership: peer "${text}" is not an IP address`);
  return zoned.zone ? `${zoned.ip.text}%${zoned.zone}` : zoned.ip.text;
}

function checkedPort(text: string, port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`mta-vip membership: peer "${text}" has an invalid port (${port})`);
  return port;
}

/** 4 for IPv4, 6 for IPv6 (a zone allowed); throws for anything else. */
export function familyOf(address: string): 4 | 6 {
  const zoned = parseZonedIp(address);
  if (zoned) return zoned.ip.family;
  throw new Error(`mta-vip membership: "${address}" is not an IP address`);
}

/** Packed bytes of an IPv4 (4 bytes) or IPv6 (16 bytes) address. */
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
export { canonicalIp };
