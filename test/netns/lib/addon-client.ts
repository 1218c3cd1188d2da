/**
 * Test-side handle on fixtures/addon-rpc.js: the real lib/net API, called inside a lab host.
 *
 *   const n1 = await AddonClient.start(lab, 'n1');
 *   await n1.addAddress('eth0', `${vip4(1)}/32`);
 *   const sniffer = await n1.sniff('eth0', [vip4(1)]);
 *   const claim = await sniffer.next((event) => event.mac === lab.host('n2').mac, 2000);
 */
import type { AnnounceOptions, DestroyResult, InterfaceInfo, Neighbour, SniffEvent, TcpSocket, WatchEvent } from '../../../lib/net/index';
import type { Lab, SpawnNodeOptions } from '../harness';
import { fixturePath } from '../harness';
import type { LabProcess } from './process';
import { waitFor } from './wait';

/** What the fixture reports when it starts. */
export interface AddonReady {
  type: 'ready';
  pid: number;
  capability: { loaded: boolean; error?: string };
  /** Hex capability masks of the fixture process, from /proc/self/status. */
  caps: { effective: string; bounding: string };
}

/** An error thrown or rejected by the addon in the fixture, rebuilt with its name, code, errno and syscall. */
export class AddonCallError extends Error {
  code?: string;
  errno?: number;
  syscall?: string;
  /** The stack inside the fixture process. */
  remoteStack?: string;
  constructor(fn: string, remote: { name?: string; message?: string; code?: string; errno?: number; syscall?: string; stack?: string }) {
    super(remote.message ?? `${fn} failed`);
    this.name = remote.name ?? 'Error';
    if (remote.code !== undefined) this.code = remote.code;
    if (remote.errno !== undefined) this.errno = remote.errno;
    if (remote.syscall !== undefined) this.syscall = remote.syscall;
    if (remote.stack !== undefined) this.remoteStack = remote.stack;
  }
}

/** Events of one watch() or sniff() running in the fixture. */
export class Subscription<T> {
  /** Every event so far, oldest first. */
  readonly events: T[] = [];
  constructor(private readonly client: AddonClient, readonly handle: number, readonly what: string) {}

  /** The first event (already received or arriving within timeoutMs) matching predicate. */
  next(predicate: (event: T) => boolean = () => true, timeoutMs = 5000): Promise<T> {
    return waitFor(() => this.events.find(predicate), {
      timeoutMs,
      intervalMs: 10,
      what: `a matching ${this.what} event; got ${JSON.stringify(this.events).slice(0, 1500)}`,
    });
  }

  /** sniff only: replaces the watched addresses. */
  setAddresses(addresses: string[]): Promise<void> {
    return this.client.call('setAddresses', this.handle, addresses);
  }

  close(): Promise<void> {
    return this.client.call('close', this.handle);
  }
}

export class AddonClient {
  private nextId = 1;
  private readonly subscriptions = new Map<number, Subscription<unknown>>();

  private constructor(readonly process: LabProcess, readonly ready: AddonReady, readonly host: string) {
    process.onMessage((message: any) => {
      if (message?.type !== 'event') return false;
      this.subscriptions.get(message.handle)?.events.push(message.event);
      return true;
    });
  }

  /**
   * Starts the fixture in `host` and waits for it to load lib/net. Rejects when the addon is not
   * loadable there (not built), with the loader's error.
   */
  static async start(lab: Lab, host: string, options: SpawnNodeOptions = {}): Promise<AddonClient> {
    const child = lab.spawnNode(host, fixturePath('addon-rpc'), [], options);
    const ready = await child.nextMessage<AddonReady>((message) => message?.type === 'ready', 10_000);
    if (!ready.capability.loaded) {
      await child.stop();
      throw new Error(`the addon does not load in ${host}: ${ready.capability.error ?? 'no reason given'} (build it with npm run build:native)`);
    }
    return new AddonClient(child, ready, host);
  }

  /** Calls lib/net's `fn` in the fixture; resolves with its value or rejects with an AddonCallError. */
  async call<T = unknown>(fn: string, ...args: unknown[]): Promise<T> {
    const id = this.nextId++;
    // JSON over IPC turns undefined into null, and lib/net rightly refuses null for an optional
    // options object: leave omitted trailing arguments out instead.
    while (args.length && args[args.length - 1] === undefined) args.pop();
    if (!this.process.send({ id, fn, args })) throw new Error(`addon-rpc in ${this.host} is gone (stderr: ${this.process.stderr.trim()})`);
    const reply = await this.process.nextMessage<{ ok: boolean; value?: T; error?: Record<string, any> }>(
      (message) => message?.type === 'reply' && message.id === id,
      30_000,
    );
    if (!reply.ok) throw new AddonCallError(fn, reply.error ?? {});
    return reply.value as T;
  }

  interfaces(): Promise<InterfaceInfo[]> {
    return this.call('interfaces');
  }
  addAddress(ifname: string, cidr: string): Promise<void> {
    return this.call('addAddress', ifname, cidr);
  }
  removeAddress(ifname: string, cidr: string): Promise<void> {
    return this.call('removeAddress', ifname, cidr);
  }
  announce(ifname: string, addresses: string[], options?: AnnounceOptions): Promise<{ sent: number }> {
    return this.call('announce', ifname, addresses, options);
  }
  arpAllHosts(ifname: string, address: string): Promise<{ sent: number }> {
    return this.call('arpAllHosts', ifname, address);
  }
  probe(ifname: string, address: string, options?: { timeoutMs?: number }): Promise<string | null> {
    return this.call('probe', ifname, address, options);
  }
  async probeMany(ifname: string, addresses: string[], options?: { timeoutMs?: number }): Promise<Map<string, string | null>> {
    return new Map(await this.call<Array<[string, string | null]>>('probeMany', ifname, addresses, options));
  }
  neighbours(ifname: string): Promise<Neighbour[]> {
    return this.call('neighbours', ifname);
  }
  tcpSockets(addresses: string[], options?: { listening?: boolean }): Promise<TcpSocket[]> {
    return this.call('tcpSockets', addresses, options);
  }
  destroyTcpSockets(addresses: string[], options?: { listening?: boolean }): Promise<DestroyResult> {
    return this.call('destroyTcpSockets', addresses, options);
  }

  /** Starts net.watch() in the fixture; events are collected from the moment this resolves. */
  async watch(): Promise<Subscription<WatchEvent>> {
    const handle = await this.call<number>('watch');
    return this.track(new Subscription<WatchEvent>(this, handle, `watch in ${this.host}`));
  }

  /** Starts net.sniff() in the fixture. */
  async sniff(ifname: string, addresses: string[]): Promise<Subscription<SniffEvent>> {
    const handle = await this.call<number>('sniff', ifname, addresses);
    return this.track(new Subscription<SniffEvent>(this, handle, `sniff in ${this.host}`));
  }

  /** Closes the subscriptions and lets the fixture exit; kills it if it does not within 2 s. */
  async stop(): Promise<void> {
    if (!this.process.exit) await this.call('exit').catch(() => undefined);
    const timer = setTimeout(() => this.process.kill('SIGKILL'), 2000);
    await this.process.exited;
    clearTimeout(timer);
  }

  private track<T>(subscription: Subscription<T>): Subscription<T> {
    this.subscriptions.set(subscription.handle, subscription as Subscription<unknown>);
    return subscription;
  }
}
