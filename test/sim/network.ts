/**
 * The simulated cluster network: datagrams between the nodes' membership
 * transports with a delay (so reordering), random loss, one-way blocks and
 * partitions (a partition cuts layer 2 too; a block or a deaf node loses only
 * the cluster's UDP, as an nftables rule on the port would); a host whose process is gone answers with ICMP port unreachable
 * (what fast crash detection sees), a host that is down answers nothing.
 */
import type { Endpoint } from '../../lib/transport/address';
import type { PacketTransport, SendOutcome, TransportHandlers } from '../../lib/transport/udp-transport';
import type { Rng } from './rng';
import type { Owner, Scheduler } from './scheduler';

export interface NetHost extends Owner {
  name: string;
  address: string;
  /** The process runs (possibly stalled); false after a crash, until the restart. */
  processUp: boolean;
  /** The host runs (a power loss takes it and its aliases off the wire). */
  hostUp: boolean;
  linkUp: boolean;
  handlers: TransportHandlers | null;
}

export class SimNetwork {
  /** Probability that one datagram is lost. */
  loss = 0;
  /** "a>b": datagrams from a to b are dropped. */
  readonly blocked = new Set<string>();
  /** host → side of a partition; hosts on different sides cannot talk. */
  partition: Map<string, number> | null = null;
  private readonly hosts = new Map<string, NetHost>();
  delivered = 0;
  dropped = 0;

  constructor(
    private readonly sched: Scheduler,
    private readonly rng: Rng,
    readonly port: number,
  ) {}

  add(host: NetHost): void {
    this.hosts.set(host.address, host);
  }

  /** True when a datagram from a to b can arrive (ignoring random loss). */
  canReach(a: NetHost, b: NetHost): boolean {
    if (!a.hostUp || !b.hostUp || !a.linkUp || !b.linkUp) return false;
    if (this.blocked.has(`${a.name}>${b.name}`)) return false;
    if (this.partition && this.partition.get(a.name) !== this.partition.get(b.name)) return false;
    return true;
  }

  /** True when frames pass between a and b at layer 2 (ARP): a partition cuts them, a UDP block does not. */
  sameLink(a: NetHost, b: NetHost): boolean {
    if (!a.hostUp || !b.hostUp || !a.linkUp || !b.linkUp) return false;
    return !(this.partition && this.partition.get(a.name) !== this.partition.get(b.name));
  }

  /** True when nothing but the nodes' own state stands between any two of them. */
  get clean(): boolean {
    return this.loss === 0 && this.blocked.size === 0 && this.partition === null;
  }

  transportFor(host: NetHost): PacketTransport {
    let mine: TransportHandlers | null = null;
    return {
      open: async (handlers) => {
        mine = handlers;
        host.handlers = handlers;
      },
      send: (packet, to, done) => this.send(host, packet, to, done),
      close: async () => {
        // A previous process's late close must not unplug the one that replaced it.
        if (host.handlers === mine) host.handlers = null;
      },
    };
  }

  private send(from: NetHost, packet: Buffer, to: Endpoint, done: (outcome: SendOutcome) => void): void {
    const target = this.hosts.get(to.address);
    const reply = (outcome: SendOutcome, ms: number): void => void this.sched.after(ms, from, () => done(outcome));
    if (!target || !this.canReach(from, target) || this.rng.chance(this.loss)) {
      this.dropped++;
      return reply('sent', 0);
    }
    const delay = 0.05 + this.rng.next() * 1.5;
    if (!target.processUp) {
      // Its kernel lives: ICMP port unreachable comes back (unless that way is cut too).
      return reply(this.canReach(target, from) ? 'refused' : 'sent', 2 * delay);
    }
    reply('sent', 0);
    const copy = Buffer.from(packet);
    this.sched.after(delay, target, () => {
      this.delivered++;
      target.handlers?.message(copy, { address: from.address, port: this.port });
    });
  }
}
