/**
 * Concurrent drains share their kernel calls. A node releasing hundreds of
 * VIPs at once (a failback, a close) runs one drain per VIP, each listing its
 * address's sessions every poll and resetting what is left at its end. Each
 * such call is a full NETLINK_SOCK_DIAG dump of the host's sockets (the kernel
 * cannot filter by local address for both families), and hundreds of them
 * queue on libuv's four threads behind one another: in a 300-VIP failback the
 * resets alone held each VIP's address for 0.3–0.8 s after its sessions had
 * ended. Calls made within one turn of the event loop become one call for all
 * their addresses, and each caller gets its own addresses' share. The drains
 * of a batch start together and poll on the same timer tick, so they stay
 * together.
 */
import { canonicalIp } from '../core/ip';
import type { DestroyResult, TcpSocket } from '../net';
import type { SessionDrainPorts } from './session-drain';

/** The kernel calls a drain makes (the session drain's own port). */
export type SocketCalls = Pick<SessionDrainPorts, 'tcpSockets' | 'destroyTcpSockets'>;

interface Waiter<R> {
  addresses: ReadonlySet<string>;
  resolve(result: R): void;
  reject(error: unknown): void;
}

/** Questions of one kind asked in one turn: answered by one kernel call (one per value of `listening`). */
class Coalescer<R> {
  private readonly open = new Map<boolean, { addresses: Set<string>; waiters: Array<Waiter<R>> }>();
  /** Kernel calls made, and the calls they answered. */
  calls = 0;
  asked = 0;

  constructor(
    private readonly soon: (fn: () => void) => void,
    private readonly run: (addresses: string[], options: { listening: true } | undefined) => Promise<unknown>,
    private readonly share: (answer: unknown, addresses: ReadonlySet<string>) => R,
  ) {}

  ask(addresses: string[], listening: boolean): Promise<R> {
    this.asked++;
    let batch = this.open.get(listening);
    if (!batch) {
      const created = { addresses: new Set<string>(), waiters: [] as Array<Waiter<R>> };
      batch = created;
      this.open.set(listening, created);
      this.soon(() => {
        this.open.delete(listening);
        this.calls++;
        this.run([...created.addresses], listening ? { listening } : undefined).then(
          (answer) => {
            for (const waiter of created.waiters) waiter.resolve(this.share(answer, waiter.addresses));
          },
          (error: unknown) => {
            for (const waiter of created.waiters) waiter.reject(error);
          },
        );
      });
    }
    const wanted = new Set(addresses.map(canonical));
    for (const address of wanted) batch.addresses.add(address);
    return new Promise((resolve, reject) => (batch as { waiters: Array<Waiter<R>> }).waiters.push({ addresses: wanted, resolve, reject }));
  }
}

export class BatchedSocketCalls implements SocketCalls {
  private readonly lists: Coalescer<TcpSocket[]>;
  private readonly destroys: Coalescer<DestroyResult>;

  constructor(kernel: SocketCalls, soon: (fn: () => void) => void) {
    this.lists = new Coalescer(soon, (addresses, options) => kernel.tcpSockets(addresses, options), (answer, addresses) => (answer as TcpSocket[]).filter((s) => addresses.has(canonical(s.local))));
    this.destroys = new Coalescer(soon, (addresses, options) => kernel.destroyTcpSockets(addresses, options), (answer, addresses) => shareOfDestroy(answer as DestroyResult, addresses));
  }

  /** Kernel calls made and calls answered, for tests: { calls, asked }. */
  get stats(): { calls: number; asked: number } {
    return { calls: this.lists.calls + this.destroys.calls, asked: this.lists.asked + this.destroys.asked };
  }

  tcpSockets(addresses: string[], options?: { listening?: boolean }): Promise<TcpSocket[]> {
    if (addresses.length === 0) return Promise.resolve([]);
    return this.lists.ask(addresses, options?.listening === true);
  }

  destroyTcpSockets(addresses: string[], options?: { listening?: boolean }): Promise<DestroyResult> {
    if (addresses.length === 0) return Promise.resolve({ destroyed: 0, gone: 0, failed: 0, byAddress: {}, lastError: null });
    return this.destroys.ask(addresses, options?.listening === true);
  }
}

/**
 * A caller's share of a batched reset: its own addresses' resets. Sockets that had closed by
 * then, and failures, are the batch's (the kernel does not say whose); each caller is told of
 * failures so none reports a clean reset that was not.
 */
function shareOfDestroy(result: DestroyResult, addresses: ReadonlySet<string>): DestroyResult {
  const byAddress: Record<string, number> = {};
  let destroyed = 0;
  for (const [address, count] of Object.entries(result.byAddress ?? {})) {
    const key = canonical(address);
    if (!addresses.has(key)) continue;
    byAddress[key] = (byAddress[key] ?? 0) + count;
    destroyed += count;
  }
  return { destroyed, gone: 0, failed: result.failed, byAddress, lastError: result.lastError };
}

function canonical(address: string): string {
  return canonicalIp(address) ?? address;
}
