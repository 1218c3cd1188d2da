/**
 * "The wire": which hosts have each VIP on their interface (what the kernel
 * would answer ARP for), and what a client's neighbour entry for the VIP
 * points at (the last gratuitous ARP it heard). Hosts sniffing a VIP hear
 * every other claim on it, as the addon's sniffer would.
 */
/** A node's MAC on the VIP link: '02:00:00:00:00:<n>' for node 'n<n>'. */
export function macOf(node: string): string {
  return `02:00:00:00:00:${Number(node.slice(1)).toString(16).padStart(2, '0')}`;
}

export interface WireHost {
  name: string;
  hostUp: boolean;
  linkUp: boolean;
  /** VIPs this host's process watches for foreign claims. */
  sniffing: Set<string>;
  onAddressRemoved(ip: string): void;
  onForeignClaim(ip: string, mac: string): void;
}

export class Wire {
  private readonly aliases = new Map<string, Set<WireHost>>();

  /** `sameLink(a, b)`: frames pass between the two hosts (a partition cuts them). */
  constructor(private readonly sameLink: (a: WireHost, b: WireHost) => boolean = () => true) {}

  /** The hosts that answer `from`'s probe for `ip` (an ARP request reaches them). */
  answering(from: WireHost, ip: string): WireHost[] {
    return this.holders(ip).filter((h) => h !== from && this.sameLink(from, h));
  }
  /** ip → who a client's neighbour entry points at (a host name, or a foreign MAC). */
  readonly neighbour = new Map<string, string>();

  has(host: WireHost, ip: string): boolean {
    return this.aliases.get(ip)?.has(host) ?? false;
  }

  add(host: WireHost, ip: string): void {
    let set = this.aliases.get(ip);
    if (!set) this.aliases.set(ip, (set = new Set()));
    set.add(host);
  }

  /** Removes an alias; the host's process hears of it (the addon's watch) whoever removed it. */
  remove(host: WireHost, ip: string, notify = true): void {
    if (!this.aliases.get(ip)?.delete(host)) return;
    if (notify) host.onAddressRemoved(ip);
  }

  /** Every alias of `host`. */
  of(host: WireHost): string[] {
    return [...this.aliases].filter(([, set]) => set.has(host)).map(([ip]) => ip);
  }

  /** Hosts that would answer for `ip` now: the alias is on an interface of a running host with its link up. */
  holders(ip: string): WireHost[] {
    return [...(this.aliases.get(ip) ?? [])].filter((h) => h.hostUp && h.linkUp);
  }

  /** A gratuitous ARP for `ip` from `by` (a host, or a foreign MAC): clients follow it; holders that sniff hear it. */
  claim(ip: string, by: WireHost | string): void {
    const name = typeof by === 'string' ? by : by.name;
    this.neighbour.set(ip, name);
    for (const host of this.aliases.get(ip) ?? []) {
      if (host === by || !host.hostUp || !host.linkUp || !host.sniffing.has(ip)) continue;
      if (typeof by !== 'string' && !this.sameLink(by, host)) continue;
      host.onForeignClaim(ip, name.startsWith('n') ? macOf(name) : '02:ff:00:00:00:01');
    }
  }
}
