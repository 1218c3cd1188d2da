/**
 * The membership's packets on real UDP sockets: the main socket (bound
 * exclusively first, so a second copy of a node fails loudly), one connected
 * socket per unicast peer for fast crash detection (see peer-sockets.ts), and
 * a group socket for multicast. The membership sees only PacketTransport, so
 * the deterministic simulation (test/sim) runs it over an in-memory network.
 */
import { createSocket, type Socket } from 'node:dgram';
import { parseEndpoint, type Endpoint } from './address';
import { PeerSockets } from './peer-sockets';

export interface TransportHandlers {
  /** A datagram from anyone. */
  message(packet: Buffer, remote: { address: string; port: number }): void;
  /** A peer's host said nothing listens on its endpoint (ICMP port unreachable). */
  refused(peer: Endpoint): void;
  /** The kernel reported another ICMP error for a datagram sent to a peer. */
  pathError(): void;
  error(error: Error): void;
}

export type SendOutcome = 'sent' | 'refused' | 'error';

/** How the membership sends and receives datagrams. */
export interface PacketTransport {
  open(handlers: TransportHandlers): Promise<void>;
  /** Sends one datagram; never throws. `done` says whether it left, or the destination refused it. */
  send(packet: Buffer, to: Endpoint, done: (outcome: SendOutcome) => void): void;
  close(): Promise<void>;
}

export interface UdpTransportOptions {
  family: 4 | 6;
  bind: string;
  port: number;
  /** Unicast peers other than this node: each gets a connected socket when `fastCrashDetection`. */
  unicastPeers: Endpoint[];
  fastCrashDetection: boolean;
  multicast?: string;
  multicastInterface?: string;
  multicastTtl?: number;
}

export class UdpTransport implements PacketTransport {
  private socket: Socket | null = null;
  private groupSocket: Socket | null = null;
  private peerSockets: PeerSockets | null = null;

  constructor(private readonly options: UdpTransportOptions) {}

  async open(handlers: TransportHandlers): Promise<void> {
    const { family, bind, port } = this.options;
    const type = family === 4 ? 'udp4' : 'udp6';
    const fast = this.options.fastCrashDetection && this.options.unicastPeers.length > 0;
    // SO_REUSEADDR (needed to bind the peer sockets to the same address and port) would also let
    // a second copy of this node bind silently: an exclusive bind first keeps EADDRINUSE loud.
    if (fast) await checkPortFree(type, bind, port);
    const socket = createSocket({ type, reuseAddr: fast });
    this.socket = socket;
    socket.on('message', (packet, remote) => handlers.message(packet, remote));
    await bindSocket(socket, bind, port);
    socket.on('error', (error) => handlers.error(error));
    if (fast) {
      this.peerSockets = new PeerSockets({
        message: (packet, remote) => handlers.message(packet, remote),
        refused: (peer) => handlers.refused(peer),
        pathError: () => handlers.pathError(),
        error: (error) => handlers.error(error),
      });
      await this.peerSockets.open(type, bind, port, this.options.unicastPeers);
    }
    if (this.options.multicast) {
      const group = parseEndpoint(this.options.multicast, port).address;
      const scope = bind.includes('%') ? bind.slice(bind.indexOf('%')) : '';
      const iface = this.options.multicastInterface ?? (family === 4 ? bind : scope ? `::${scope}` : undefined);
      if (iface) socket.setMulticastInterface(iface);
      socket.setMulticastTTL(this.options.multicastTtl ?? 1);
      socket.setMulticastLoopback(true);
      // A socket bound to a unicast address never sees group traffic: a second socket bound to
      // the group receives it (reuseAddr: several nodes of one host may join the same group).
      const groupSocket = createSocket({ type, reuseAddr: true });
      this.groupSocket = groupSocket;
      groupSocket.on('message', (packet, remote) => handlers.message(packet, remote));
      await bindSocket(groupSocket, family === 6 && scope ? `${group}${scope}` : group, port);
      groupSocket.on('error', (error) => handlers.error(error));
      groupSocket.addMembership(group, family === 4 ? bind : iface);
    }
  }

  send(packet: Buffer, to: Endpoint, done: (outcome: SendOutcome) => void): void {
    const socket = this.socket;
    if (!socket) return done('error');
    const connected = this.peerSockets?.socketFor(to.address, to.port);
    const sent = (error: (Error & { code?: string }) | null): void => {
      // A refusal still pending on a connected socket can fail the next send instead of
      // surfacing as an 'error' event: it means the same.
      if (error?.code === 'ECONNREFUSED' && connected) done('refused');
      else done(error ? 'error' : 'sent');
    };
    try {
      if (connected) connected.send(packet, sent);
      else socket.send(packet, to.port, to.address, sent);
    } catch {
      done('error');
    }
  }

  async close(): Promise<void> {
    const sockets = [this.socket, this.groupSocket].filter((s): s is Socket => s !== null);
    const peerSockets = this.peerSockets;
    this.socket = null;
    this.groupSocket = null;
    this.peerSockets = null;
    await Promise.all([...sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))), peerSockets?.close()]);
  }
}

/** Rejects with EADDRINUSE when any socket (SO_REUSEADDR or not) holds address:port. */
async function checkPortFree(type: 'udp4' | 'udp6', address: string, port: number): Promise<void> {
  const probe = createSocket({ type });
  try {
    await bindSocket(probe, address, port);
  } finally {
    await new Promise<void>((resolve) => {
      try {
        probe.close(() => resolve());
      } catch {
        resolve(); // never bound: nothing to close
      }
    });
  }
}

function bindSocket(socket: Socket, address: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    socket.once('error', onError);
    socket.bind({ address, port, exclusive: true }, () => {
      socket.removeListener('error', onError);
      resolve();
    });
  });
}
