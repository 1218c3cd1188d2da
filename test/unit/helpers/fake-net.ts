/**
 * A NetPort that records what the runtime asks of the addon (addresses added
 * and removed, announcements, probes) on one pretend interface, and reports
 * address removals through watch() as the kernel would. For the runtime's
 * tests without root.
 */
import type * as net from '../../../lib/net';
import type { NetPort } from '../../../lib/runtime/ports';

export class FakeNet implements NetPort {
  /** ifname → CIDRs currently on it. */
  readonly addresses = new Map<string, Set<string>>();
  readonly announcements: Array<{ ifname: string; addresses: string[]; count: number }> = [];
  readonly probes: string[][] = [];
  /** Every add and remove, in order: '+198.18.1.1/32', '-198.18.1.1/32'. */
  readonly log: string[] = [];
  private readonly watchers = new Set<(event: net.WatchEvent) => void>();

  /** `hostAddresses`: this host's own addresses (on 'lo'), where its cluster address must be. */
  constructor(
    private readonly hostAddresses: string[] = [],
    private readonly ifname = 'eth0',
  ) {
    this.addresses.set(ifname, new Set());
  }

  has(cidr: string): boolean {
    return this.addresses.get(this.ifname)?.has(cidr) ?? false;
  }

  interfaces(): net.InterfaceInfo[] {
    const lo: net.InterfaceInfo = { name: 'lo', index: 1, mac: '00:00:00:00:00:00', mtu: 65536, up: true, running: true, addresses: this.hostAddresses.map((address) => ({ family: 4 as const, address, prefix: 8 })) };
    return [lo, { name: this.ifname, index: 2, mac: '02:00:00:00:00:01', mtu: 1500, up: true, running: true, addresses: [...(this.addresses.get(this.ifname) ?? [])].map((c) => ({ family: 4 as const, address: c.split('/')[0] as string, prefix: Number(c.split('/')[1]) })) }];
  }

  async addAddress(ifname: string, cidr: string): Promise<void> {
    this.addresses.get(ifname)?.add(cidr);
    this.log.push(`+${cidr}`);
  }

  async removeAddress(ifname: string, cidr: string): Promise<void> {
    if (!this.addresses.get(ifname)?.delete(cidr)) return;
    this.log.push(`-${cidr}`);
    const [address, prefix] = cidr.split('/');
    for (const watcher of this.watchers) watcher({ type: 'address-removed', ifname, index: 2, family: 4, address: address as string, prefix: Number(prefix) });
  }

  /** Someone else (an operator, a network manager) removes an address. */
  async removeBehindBack(cidr: string): Promise<void> {
    await this.removeAddress(this.ifname, cidr);
  }

  async probeMany(_ifname: string, addresses: string[]): Promise<Map<string, string | null>> {
    this.probes.push([...addresses]);
    return new Map(addresses.map((a) => [a, null]));
  }

  async announce(ifname: string, addresses: string[], options?: net.AnnounceOptions | null): Promise<{ sent: number }> {
    this.announcements.push({ ifname, addresses: [...addresses], count: options?.count ?? 1 });
    return { sent: addresses.length };
  }

  async arpAllHosts(): Promise<{ sent: number }> {
    return { sent: 0 };
  }

  watch(onEvent: (event: net.WatchEvent) => void): net.Closable {
    this.watchers.add(onEvent);
    return { close: () => void this.watchers.delete(onEvent) };
  }

  sniff(): ReturnType<typeof net.sniff> {
    return { close() {}, setAddresses() {} } as unknown as ReturnType<typeof net.sniff>;
  }

  async neighbours(): Promise<net.Neighbour[]> {
    return [];
  }

  async tcpSockets(): Promise<net.TcpSocket[]> {
    return [];
  }

  async destroyTcpSockets(): Promise<net.DestroyResult> {
    return { destroyed: 0, gone: 0, failed: 0, byAddress: {}, lastError: null };
  }
}
