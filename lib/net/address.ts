/**
 * Checking of IP addresses and CIDRs given to lib/net, so bad input fails
 * with a TypeError/RangeError naming the function and argument before any
 * syscall. What is an address is lib/core's one IP module's answer; the
 * address goes to the addon as the caller spelled it (results are keyed by it).
 */
import { parseIp } from '../core/ip';

export interface ParsedAddress { family: 4 | 6; address: string }
export interface ParsedCidr extends ParsedAddress { prefix: number }

/** A single IPv4 or IPv6 address (no prefix, no zone). */
export function parseAddress(fn: string, arg: string, value: unknown): ParsedAddress {
  if (typeof value !== 'string') {
    throw new TypeError(`${fn}: ${arg} must be a string IP address, got ${describe(value)}`);
  }
  const parsed = parseIp(value);
  if (!parsed) {
    throw new TypeError(`${fn}: ${arg} ${JSON.stringify(value)} is not an IPv4 or IPv6 address, e.g. 198.51.100.7 or 2001:db8::7`);
  }
  return { family: parsed.family, address: value };
}

/** "198.51.100.7/32" or "2001:db8::7/128": the prefix is required. */
export function parseCidr(fn: string, arg: string, value: unknown): ParsedCidr {
  if (typeof value !== 'string') {
    throw new TypeError(`${fn}: ${arg} must be a string like 198.51.100.7/32, got ${describe(value)}`);
  }
  const slash = value.lastIndexOf('/');
  const address = slash < 0 ? value : value.slice(0, slash);
  const prefixText = slash < 0 ? '' : value.slice(slash + 1);
  const family = parseIp(address)?.family;
  if (family === undefined || !/^\d{1,3}$/.test(prefixText)) {
    throw new TypeError(
      `${fn}: ${arg} ${JSON.stringify(value)} is not an IPv4 or IPv6 address with a prefix, e.g. 198.51.100.7/32 or 2001:db8::7/128`,
    );
  }
  const prefix = Number(prefixText);
  const max = family === 4 ? 32 : 128;
  if (prefix > max) {
    throw new RangeError(`${fn}: ${arg} ${JSON.stringify(value)} has prefix /${prefix}, more than /${max} for IPv${family}`);
  }
  return { family, address, prefix };
}

/** A non-empty-or-empty array of addresses, each checked. */
export function parseAddressList(fn: string, arg: string, value: unknown, max: number): ParsedAddress[] {
  if (!Array.isArray(value)) {
    throw new TypeError(`${fn}: ${arg} must be an array of IP address strings, got ${describe(value)}`);
  }
  if (value.length > max) {
    throw new RangeError(`${fn}: ${arg} has ${value.length} addresses, at most ${max} per call`);
  }
  return value.map((item, i) => parseAddress(fn, `${arg}[${i}]`, item));
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value);
  return typeof value;
}
