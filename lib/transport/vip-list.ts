import { bitmapBytes, getBit, setBit } from './codec';
import { canonicalIp, ipToBytes } from './address';

/**
 * A node's declared VIPs in the order both ends agree on (IPv4 before IPv6, then by address
 * bytes), with the lookup needed to turn sets of VIPs into heartbeat bitmaps and back.
 */
export class VipList {
  readonly ips: readonly string[];
  private readonly indexOf: Map<string, number>;

  /** Non-IP entries are ignored; duplicates and spelling variants collapse to one. */
  constructor(ips: Iterable<string>) {
    const unique = new Map<string, Buffer>();
    for (const ip of ips) {
      const canonical = canonicalIp(ip);
      if (canonical !== null && !unique.has(canonical)) unique.set(canonical, ipToBytes(canonical));
    }
    const sorted = [...unique.entries()].sort(([, a], [, b]) => a.length - b.length || Buffer.compare(a, b));
    this.ips = sorted.map(([ip]) => ip);
    this.indexOf = new Map(this.ips.map((ip, i) => [ip, i]));
  }

  get size(): number {
    return this.ips.length;
  }

  /**
   * Bitmap with the bit of every member of `set` that is in this list.
   * @returns the bitmap and the members that are not declared (cannot be encoded).
   */
  toBitmap(set: Iterable<string>): { bitmap: Buffer; undeclared: string[] } {
    const bitmap = Buffer.alloc(bitmapBytes(this.size));
    const undeclared: string[] = [];
    for (const ip of set) {
      const index = this.indexOf.get(ip) ?? this.indexOf.get(canonicalIp(ip) ?? '');
      if (index === undefined) undeclared.push(ip);
      else setBit(bitmap, index);
    }
    return { bitmap, undeclared };
  }

  /** The VIPs whose bit is set; the bitmap must be `bitmapBytes(size)` long. */
  fromBitmap(bitmap: Buffer): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.ips.length; i++) if (getBit(bitmap, i)) out.push(this.ips[i] as string);
    return out;
  }
}
