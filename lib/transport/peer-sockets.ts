/**
 * One UDP socket per unicast peer endpoint, bound to this node's own address and port (like the
 * main socket, both with SO_REUSEADDR) and connect()ed to that peer.
 *
 * Why: when a peer's process dies but its host lives on (OOM kill, segfault, SIGKILL), the
 * peer's kernel answers our next heartbeat with ICMP port unreachable. Linux reports that only
 * on a *connected* UDP socket, as ECONNREFUSED (Node emits it as an 'error' within a few ms),
 * so a crash is seen after at most one heartbeat instead of dead-after of silence.
 *
 * Linux delivers a datagram to the most specific matching socket, so the peer's packets now
 * arrive on its connected socket: every socket here feeds the same receive path.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { canonicalIp, formatHostPort } from '../core/ip';
import type { Endpoint } from './address';
import { codedError, ErrorCodes } from '../errors';

/**
 * Errors the kernel reports on a connected UDP socket because an ICMP error came back for an
 * earlier datagram (other than port unreachable). They say the path failed, not that the socket
 * is broken; the unconnected socket never reported them, so they are counted, not emitted.
 */
/** Most destination spellings socketFor remembers before starting over. */
const MAX_REMEMBERED_SPELLINGS = 1024;

const ICMP_REPORTED = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'EMSGSIZE', 'EPROTO', 'ENOPROTOOPT']);

export interface PeerSocketHandlers {
  /** A datagram from anyone, as the main socket would have delivered it. */
  message: (packet: Buffer, remote: RemoteInfo) => void;
  /** The peer's host said nothing listens on its endpoint (ICMP port unreachable). */
  refused: (peer: Endpoint) => void;
  /** The kernel reported another ICMP error for a datagram sent to the peer. */
  pathError: (peer: Endpoint, code: string) => void;
  /** Anything else: a socket error, or a peer that could not be connected. */
  error: (error: Error) => void;
}

/** The connected sockets of one Membership. */
export class PeerSockets {
  private readonly sockets = new Map<string, Socket>();
  private readonly bySpelling = new Map<string, Socket | null>();

  constructor(private readonly handlers: PeerSocketHandlers) {}

  /**
   * Opens one connected socket per peer. A peer that cannot be connected (no route yet, say) is
   * reported through `error` and keeps being sent to through the main socket, without fast
   * crash detection. Never rejects.
   */
  async open(type: 'udp4' | 'udp6', bind: string, port: number, peers: Endpoint[]): Promise<void> {
    const unique = new Map<string, Endpoint>();
    for (const peer of peers) unique.set(endpointKey(peer.address, peer.port), peer);
    await Promise.all([...unique].map(([key, peer]) => this.openOne(type, bind, port, key, peer)));
  }

  /** The connected socket for a destination, or undefined to send through the main socket. */
  socketFor(address: string, port: number): Socket | undefined {
    // Every packet sent asks: remember the answer per spelling instead of parsing the address
    // each time (bounded: addresses come from the configuration and authenticated peers).
    const spelling = `${address}|${port}`;
    let found = this.bySpelling.get(spelling);
    if (found === undefined) {
      found = this.sockets.get(endpointKey(address, port)) ?? null;
      if (this.bySpelling.size >= MAX_REMEMBERED_SPELLINGS) this.bySpelling.clear();
      this.bySpelling.set(spelling, found);
    }
    return found ?? undefined;
  }

  get size(): number {
    return this.sockets.size;
  }

  async close(): Promise<void> {
    const sockets = [...this.sockets.values()];
    this.sockets.clear();
    this.bySpelling.clear();
    await Promise.all(sockets.map((socket) => new Promise<void>((resolve) => socket.close(() => resolve()))));
  }

  private async openOne(type: 'udp4' | 'udp6', bind: string, port: number, key: string, peer: Endpoint): Promise<void> {
    const socket = createSocket({ type, reuseAddr: true });
    // Listening before bind: between bind and connect this socket is as specific as the main
    // one and may be handed a datagram from any peer.
    socket.on('message', (packet, remote) => this.handlers.message(packet, remote));
    try {
      await withErrorAsRejection(socket, (done) => socket.bind({ address: bind, port, exclusive: true }, done));
      await withErrorAsRejection(socket, (done) => socket.connect(peer.port, peer.address, done));
    } catch (error) {
      socket.close();
      const reason = error instanceof Error ? error.message : String(error);
      this.handlers.error(codedError(ErrorCodes.PEER_SOCKET, `mta-vip membership: cannot connect a socket to peer ${formatEndpoint(peer)} (${reason}); sending through the main socket, without fast crash detection`));
      return;
    }
    socket.on('error', (error: Error & { code?: string }) => {
      if (error.code === 'ECONNREFUSED') this.handlers.refused(peer);
      else if (error.code && ICMP_REPORTED.has(error.code)) this.handlers.pathError(peer, error.code);
      else this.handlers.error(error);
    });
    this.sockets.set(key, socket);
    this.bySpelling.clear();
  }
}

/**
 * One spelling per endpoint, so a configured peer and the source address of its packets find the
 * same socket. A zone (`fe80::1%eth0`) is left out: the kernel matches on address and port.
 */
export function endpointKey(address: string, port: number): string {
  const bare = address.includes('%') ? address.slice(0, address.indexOf('%')) : address;
  return `${canonicalIp(bare) ?? bare}|${port}`;
}

function formatEndpoint(peer: Endpoint): string {
  return formatHostPort(peer.address, peer.port);
}

/** Runs a callback-style socket operation, turning an 'error' emitted meanwhile into a rejection. */
function withErrorAsRejection(socket: Socket, operation: (done: () => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    socket.once('error', onError);
    operation(() => {
      socket.removeListener('error', onError);
      resolve();
    });
  });
}
