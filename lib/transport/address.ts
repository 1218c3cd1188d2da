import { isIP } from 'node:net';

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

/** Packed bytes of an IPv4 (4 bytes) or IPv6 (16 bytes) address. */
export function ipToBytes(address: string): Buffer {
  const family = familyOf(address);
  if (family === 4) return Buffer.from(address.split('.').map(Number));
  const [head = '', tail] = address.split('::');
  const groups = (part: string): string[] => (part === '' ? [] : part.split(':'));
  let left = groups(head);
  let right = tail === undefined ? [] : groups(tail);
  // An embedded IPv4 tail (::ffff:192.0.2.1) counts as two groups.
  const expand = (list: string[]): string[] => {
    const last = list[list.length - 1];
    if (last === undefined || !last.includes('.')) return list;
    const v4 = ipToBytes(last);
    return [...list.slice(0, -1), v4.readUInt16BE(0).toString(16), v4.readUInt16BE(2).toString(16)];
  };
  left = expand(left);
  right = expand(right);
  const missing = 8 - left.length - right.length;
  const all = [...left, ...new Array<string>(tail === undefined ? 0 : missing).fill('0'), ...right];
  const out = Buffer.alloc(16);
  all.forEach((group, i) => out.writeUInt16BE(parseInt(group, 16), i * 2));
  return out;
}

/** Text form of 4 or 16 packed bytes (IPv6 in RFC 5952 shortest form); null for other lengths. */
export function bytesToIp(bytes: Buffer): string | null {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) return null;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i));
  // Longest run of at least two zero groups becomes "::" (first one on ties).
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength && j - i >= 2) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** Canonical text of an IP (so '2001:DB8:0::1' and '2001:db8::1' compare equal); null if not an IP. */
export function canonicalIp(address: string): string | null {
  if (isIP(address) === 0) return null;
  return bytesToIp(ipToBytes(address));
}
