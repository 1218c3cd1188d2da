/**
 * The membership's public types: its options, what this node announces
 * (LocalState), and what it knows of a peer (PeerState).
 */
import type { Clock } from '../runtime/ports';
import type { Endpoint } from './address';
import type { Move } from './documents';
import type { PacketTransport } from './udp-transport';

export interface MembershipOptions {
  /** Cluster id (1..64 UTF-8 bytes); packets of other clusters are dropped as `unknown_cluster`. */
  clusterId: string;
  /** This node's unique name (1..64 UTF-8 bytes). */
  node: string;
  /** Shared cluster secret, at least 16 bytes; the constructor throws (code `ESECRET`) otherwise. */
  secret: Buffer | string;
  /** Local IP to bind (IPv4 or IPv6); peers and the multicast group must be of the same family. */
  bind: string;
  /** UDP port to bind and default port of peers. Default 7946. */
  port?: number;
  /**
   * Unicast peers: 'ip' | 'ip:port' | '[v6]:port'. May include this node's own endpoint (`bind`
   * and `port`), which is left out, so all nodes can share one list.
   */
  peers?: Array<string | Endpoint>;
  /** Multicast group (e.g. '239.255.0.1' or 'ff02::1:7946'), on the same port. */
  multicast?: string;
  /**
   * Interface for multicast sends and membership. IPv4: defaults to `bind`. IPv6: give
   * '::%eth0' (an interface name is needed for link-local groups); default '::%<scope of bind>'
   * when bind has a scope, else the kernel's choice.
   */
  multicastInterface?: string;
  /** Multicast TTL / hop limit. Default 1 (one link). 0 keeps packets on this host (tests). */
  multicastTtl?: number;
  /** Heartbeat period. Default 50 ms. */
  heartbeatMs?: number;
  /** A peer is dead after this long without a valid heartbeat. Default 200 ms; must exceed heartbeatMs. */
  deadAfterMs?: number;
  /** Declared VIPs of a declaration; the runtime passes one built on lib/core's decoder. May throw for bad input. */
  vipsOf: (declaration: Buffer) => string[];
  /** Most neighbour entries sent or accepted per node. Default 1024. */
  maxNeighbours?: number;
  /** Most peers remembered (dead ones are evicted first). Default 1024. */
  maxPeers?: number;
  /** Largest declaration accepted from a peer, in bytes. Default 2 MiB. */
  maxDeclarationBytes?: number;
  /** Cap on bytes held by all unfinished transfers together. Default 32 MiB. */
  maxReassemblyBytes?: number;
  /** An unfinished transfer without progress for this long is discarded. Default 2,000 ms. */
  reassemblyTimeoutMs?: number;
  /** A peer's changed neighbour table is fetched at most this often. Default 1,000 ms. */
  neighboursIntervalMs?: number;
  /**
   * Declare a live unicast peer dead as soon as its host answers a heartbeat with ICMP port
   * unreachable (its process crashed, its host did not): within one heartbeat instead of
   * deadAfterMs. Default true. Needs one extra socket per unicast peer, bound to `bind`:`port`
   * with SO_REUSEADDR (start() first checks nobody else has the port). Multicast is unaffected.
   *
   * ICMP is not authenticated, and Linux does not check who sent it: besides an on-path attacker
   * (who could as well drop heartbeats), any host that can send ICMP to this node can forge a
   * refusal. The harm is bounded: only a peer that is live can be declared dead this way; a
   * refusal for a peer never heard from (a rolling start) changes nothing; and a peer heard again
   * with the same incarnation after such a refusal was not a crash, so refusals are ignored for
   * that peer until it restarts (emitting EFALSEREFUSAL once): at most one false peer-down (and
   * a possible brief VIP overlap, settled by epochs) per peer boot. A firewall that *rejects*
   * the cluster port one way has the same effect. Filter inbound ICMP from outside the cluster
   * network, or set false to rely on deadAfterMs alone.
   */
  fastCrashDetection?: boolean;
  /** Boot id; default `newIncarnation()` (ms clock << 16 | 16 random bits). For tests. */
  incarnation?: bigint;
  /** Clock in ms, monotonic. Default `performance.timeOrigin + performance.now()`. For tests. */
  now?: () => number;
  /** Timers and time (overrides `now`); default the process's. The simulation passes a virtual clock. */
  clock?: Pick<Clock, 'now' | 'wall' | 'after' | 'soon'>;
  /** Where packets go; default UDP sockets (udp-transport.ts). The simulation passes an in-memory network. */
  transport?: PacketTransport;
}

/** What this node tells its peers. */
export interface LocalState {
  /** Canonical declaration bytes (opaque here); its SHA-256 is sent in every heartbeat. */
  declaration: Buffer;
  /** VIPs this node holds and the epoch of each. */
  holdings: Map<string, number>;
  /** VIPs this node cannot serve, or 'all'. */
  unhealthy: Set<string> | 'all';
  /** Hosts this node's kernel knows on the VIP links (shared so a new holder can reach them). */
  neighbours?: Array<{ address: string; mac: string }>;
  /**
   * Operator moves this node issued and still holds to: VIP → { node, seq } (at most 64; seq
   * increases with every move the issuer makes, so a newer move wins). Absent means none.
   */
  moves?: ReadonlyMap<string, Move>;
}

/**
 * What is known about one peer. `complete` is true when its declaration is known and its
 * holdings copy matches the latest heartbeat; until then `holdings` may miss VIPs or carry
 * epoch 0, and `unhealthy` is only accurate when 'all'. Treat the maps as read-only.
 */
export interface PeerState {
  node: string;
  incarnation: bigint;
  /** Source IP of its last packet. */
  address: string;
  port: number;
  live: boolean;
  liveSince: number;
  lastHeard: number;
  /**
   * The share of its heartbeats this node reckons lost on the way here (0..1), and the silence
   * after which it is declared dead: dead-after on a clean network, longer under loss (see
   * loss-estimate.ts).
   */
  lossRate: number;
  silenceLimitMs: number;
  complete: boolean;
  declaration: Buffer | null;
  /** SHA-256 of the declaration it announces (zero bytes before its first heartbeat). */
  digest: Buffer;
  holdings: Map<string, number>;
  unhealthy: Set<string> | 'all';
  neighbours: Array<{ address: string; mac: string }>;
  /**
   * Its operator moves as last received, keys in canonical IP spelling (empty when it has none
   * or they are not known yet). A change emits 'change'.
   */
  moves: Map<string, Move>;
  /** It said goodbye (this incarnation will not come back). */
  leaving: boolean;
}

/** The membership's events (see membership.ts for when each fires). */
export interface MembershipEvents {
  'peer-up': (peer: PeerState) => void;
  'peer-down': (peer: PeerState, reason: 'timeout' | 'goodbye' | 'unreachable') => void;
  'peer-restart': (peer: PeerState) => void;
  change: (peer: PeerState) => void;
  neighbours: (peer: PeerState) => void;
  stall: (event: { lagMs: number }) => void;
  /** The destinations whose host refused our packets (nothing listens there), after any change. */
  refused: (addresses: string[]) => void;
  error: (error: Error) => void;
}
