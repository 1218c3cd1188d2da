/**
 * Before a VIP's address leaves this host, the TCP sessions on it — of any
 * process: this one, an MTA's worker processes, orphans the kernel finishes
 * alone — must end or be told. An address removed under a live session
 * leaves both ends in silence: the peer waits for its greeting or command
 * timeout (minutes), the local MTA for nodemailer's 10-minute socket timeout,
 * and an orphan keeps retransmitting a killed worker's final "." until the
 * address comes back, delivering a message its queue will send again.
 *
 * So a release drains in the kernel's terms, seen through NETLINK_SOCK_DIAG:
 * wait (up to a deadline) while sessions are *busy*, then reset every socket
 * still on the address (RST to the peer while the address can still send
 * it; ECONNABORTED to the owning process, which defers at once), remove the
 * address, and reset once more for a connection accepted in between.
 *
 * Busy, decided by `busySessions` (pure):
 * - inbound (the local port is a listener port of the VIP) and present when
 *   the drain began: a client's session in flight. Clients arriving during
 *   the drain are not waited for — the MTA's gate answers them 421, and
 *   whatever is left at the end is reset — or a steady stream of new clients
 *   would hold the address for the whole deadline.
 * - outbound and waiting for its peer (we sent last, or have unacknowledged
 *   bytes): a delivery between its command and the reply, e.g. after the
 *   final "." — resetting it there is how a message gets sent twice.
 * - outbound with the turn on our side but recent (< idleMs): still talking.
 * - outbound whose last send and receive fell in one clock tick, for 5 s: whose
 *   turn it is cannot be told then.
 * Not busy: an outbound connection idle on our side for idleMs (a pooled
 * connection waiting for its next message — ZoneMTA keeps them 5 s), and
 * every orphan outbound socket (its process is gone, so nobody will record
 * the reply; better the remote never gets the end of that message).
 */
import type { DestroyResult, TcpSocket } from '../net';

export interface SessionDrainPorts {
  tcpSockets(addresses: string[], options?: { listening?: boolean }): Promise<TcpSocket[]>;
  destroyTcpSockets(addresses: string[], options?: { listening?: boolean }): Promise<DestroyResult>;
  /** Milliseconds, monotonic. */
  now(): number;
  sleep(ms: number): Promise<void>;
}

export interface SessionDrainOptions {
  /** The VIP's listener ports: sessions on them are inbound. */
  listenerPorts: Iterable<number>;
  /** Longest the drain waits for busy sessions before resetting them. */
  deadlineMs: number;
  /** An outbound connection silent on our side this long is idle (pooled). Default 1,000 ms. */
  idleMs?: number;
  /** How often the kernel is asked. Default 25 ms. */
  pollMs?: number;
  /** Asked at each poll: true ends the wait now (what is left is reset), as at the deadline. */
  cutShort?: () => boolean;
}

export interface SessionDrainResult {
  /** How long the drain waited. */
  waitedMs: number;
  /** Sessions that ended on their own while the drain waited. */
  drained: number;
  /** Sockets reset because the deadline passed or they were idle or orphaned. */
  reset: number;
  /** True when busy sessions were still there at the deadline. */
  timedOut: boolean;
}

export const DEFAULT_IDLE_MS = 1000;
/** Silence both ways after which a session whose last send and receive fell in one clock tick is idle. */
export const AMBIGUOUS_IDLE_MS = 5000;

/** A session's identity within one address: the peer's end of its 4-tuple and our port. */
export function sessionKey(socket: Pick<TcpSocket, 'localPort' | 'remote' | 'remotePort'>): string {
  return `${socket.localPort}|${socket.remote}|${socket.remotePort}`;
}

/**
 * The sessions a drain must still wait for (see the file comment).
 * `present` holds the inbound sessions that existed when the drain began.
 */
export function busySessions(sockets: readonly TcpSocket[], listenerPorts: ReadonlySet<number>, present: ReadonlySet<string>, idleMs: number): TcpSocket[] {
  return sockets.filter((socket) => {
    if (socket.state === 'LISTEN') return false;
    if (listenerPorts.has(socket.localPort)) {
      // Inbound: a client already in session when the drain began, or the server's
      // last words (a 221 or 421 already written by a process that closed) still going out.
      if (!present.has(sessionKey(socket))) return false;
      return socket.owned || socket.sendQueue > 0;
    }
    if (!socket.owned) return false;
    if (socket.sendQueue > 0) return true;
    const sent = socket.lastSentMsAgo;
    const received = socket.lastReceivedMsAgo;
    if (sent < 0 || received < 0) return true; // the kernel did not say: do not guess idle
    // We sent after we last heard: waiting for the peer's reply.
    if (sent < received) return true;
    // They spoke last: our turn, idle once we have been silent for idleMs.
    if (received < sent) return received < idleMs;
    // Both in the same clock tick (the kernel counts in jiffies, 4 ms here): a
    // reply that came at once (a pooled connection after its 250) or a command
    // sent at once after a reply (a client now waiting). Undecidable, so only a
    // longer silence both ways counts as idle.
    return received < AMBIGUOUS_IDLE_MS;
  });
}

/**
 * Waits for the busy sessions on `address` to end (up to the deadline), then
 * resets every socket left on it. The caller removes the address next and
 * should call `resetSessions` once more right after.
 */
export async function drainSessions(ports: SessionDrainPorts, address: string, options: SessionDrainOptions): Promise<SessionDrainResult> {
  const listenerPorts = new Set(options.listenerPorts);
  const idleMs = options.idleMs ?? DEFAULT_IDLE_MS;
  const pollMs = options.pollMs ?? 25;
  const started = ports.now();
  const first = await ports.tcpSockets([address]);
  const present = new Set(first.filter((s) => listenerPorts.has(s.localPort)).map(sessionKey));
  const waitedFor = new Set<string>();
  let busy = busySessions(first, listenerPorts, present, idleMs);
  let timedOut = false;
  while (busy.length > 0) {
    for (const socket of busy) waitedFor.add(sessionKey(socket));
    if (ports.now() - started >= options.deadlineMs || options.cutShort?.()) {
      timedOut = true;
      break;
    }
    await ports.sleep(Math.min(pollMs, Math.max(1, options.deadlineMs - (ports.now() - started))));
    busy = busySessions(await ports.tcpSockets([address]), listenerPorts, present, idleMs);
  }
  const stillBusy = new Set(busy.map(sessionKey));
  const drained = [...waitedFor].filter((key) => !stillBusy.has(key)).length;
  const { destroyed } = await ports.destroyTcpSockets([address]);
  return { waitedMs: Math.round(ports.now() - started), drained, reset: destroyed, timedOut };
}

/** Resets every socket on the addresses (listening ones too with `listening`); the count reset. */
export async function resetSessions(ports: Pick<SessionDrainPorts, 'destroyTcpSockets'>, addresses: string[], listening = false): Promise<number> {
  if (addresses.length === 0) return 0;
  return (await ports.destroyTcpSockets(addresses, { listening })).destroyed;
}
