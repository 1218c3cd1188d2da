/**
 * UDP membership: heartbeats to unicast peers and/or a multicast group, a peer table fed by
 * authenticated packets, document sync (declarations, holdings with epochs, neighbour tables,
 * operator moves), and a failure detector that does not blame peers for this process's own stalls.
 *
 * Events (eventemitter3):
 *   'peer-up'      (PeerState)                      first heartbeat of a peer, or again after it was down
 *   'peer-down'    (PeerState, 'timeout'|'goodbye'|'unreachable')
 *                                                   no heartbeat for deadAfterMs, it said goodbye, or its
 *                                                   host refused our packet (ICMP port unreachable: its
 *                                                   process is gone, see fastCrashDetection)
 *   'peer-restart' (PeerState)                      a higher incarnation: everything known about it was reset
 *                                                   (followed by 'peer-up' if it was down)
 *   'change'       (PeerState)                      a live peer's declaration, held VIPs, epochs, health,
 *                                                   operator moves or completeness changed
 *   'neighbours'   (PeerState)                      a peer's neighbour table arrived or changed
 *   'stall'        ({ lagMs })                      this process did not run for longer than deadAfterMs
 *   'error'        (Error)                          socket errors; a foreign process using this node's name
 *                                                   (ENODENAMECLASH); a peer socket that could not be
 *                                                   connected (EPEERSOCKET); a refusal proved false (EFALSEREFUSAL)
 */
import type { RemoteInfo } from 'node:dgram';
import { EventEmitter } from 'eventemitter3';
import { PacketAuthenticator } from './auth';
import { familyOf, parseEndpoint, type Endpoint } from './address';
import {
  DIGEST_BYTES,
  DocumentKind,
  MAX_DECLARED_VIPS,
  MAX_NAME_BYTES,
  PacketType,
  SHORT_DIGEST_BYTES,
  decodeChunk,
  decodeGoodbye,
  decodeHeartbeat,
  decodeRequest,
  encodeChunk,
  encodeHeartbeat,
  encodePacket,
  encodeRequest,
  readEnvelope,
  type Chunk,
  type Heartbeat,
} from './codec';
import { Counters, type DropReason } from './counters';
import { CHUNK_WINDOW, OutgoingDocument, Reassembly, ReassemblyBudget } from './document-sync';
import {
  MAX_HOLDING_ENTRY_BYTES,
  MAX_MOVES,
  MAX_MOVE_ENTRY_BYTES,
  MAX_NEIGHBOUR_ENTRY_BYTES,
  decodeHoldings,
  decodeMoves,
  decodeNeighbours,
  encodeHoldings,
  encodeMoves,
  encodeNeighbours,
  type Move,
  type Neighbour,
} from './documents';
import { codedError, ErrorCodes } from '../errors';
import { newIncarnation } from './incarnation';
import { LoopLagMeter } from './loop-lag';
import { endpointKey } from './peer-sockets';
import { UdpTransport, type PacketTransport, type SendOutcome } from './udp-transport';
import type { Clock } from '../runtime/ports';
import { ReplayGuard } from './replay-guard';
import { VipList } from './vip-list';

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

interface KnownDeclaration {
  digest: Buffer;
  bytes: Buffer;
  vips: VipList;
}

interface PendingRequest {
  at: number;
  from: number;
}

/** Everything this node keeps about one peer incarnation. */
interface PeerRecord {
  node: string;
  incarnation: bigint;
  address: string;
  port: number;
  replay: ReplayGuard;
  live: boolean;
  liveSince: number;
  lastHeard: number;
  leaving: boolean;
  /** Copy of the last heartbeat body, to notice changes with one compare. */
  lastBody: Buffer | null;
  beat: Heartbeat | null;
  /** The last two declarations received (a reload keeps the previous one until the new arrives). */
  declarations: KnownDeclaration[];
  holdingsDoc: { digest: Buffer; map: Map<string, number> } | null;
  neighboursDoc: { digest: Buffer; list: Neighbour[] } | null;
  /** Starts as the empty document, so a peer without moves costs no transfer. */
  movesDoc: { digest: Buffer; map: Map<string, Move> };
  incoming: Map<DocumentKind, Reassembly>;
  requested: Map<DocumentKind, PendingRequest>;
  /** Declared dead on an ICMP refusal; a heartbeat of this incarnation afterwards proves it false. */
  downByRefusal: boolean;
  /** False once a refusal proved false for this incarnation: only silence counts from then on. */
  trustRefusals: boolean;
  view: PeerState;
}

const ZERO_DIGEST = Buffer.alloc(DIGEST_BYTES);
const KINDS = [DocumentKind.Declaration, DocumentKind.Holdings, DocumentKind.Neighbours, DocumentKind.Moves] as const;
/** SHA-256 of the empty document: what a node without moves announces. */
const EMPTY_DOCUMENT_DIGEST = new OutgoingDocument(DocumentKind.Moves, Buffer.alloc(0)).digest;
const GOODBYE_COPIES = 3;

/** Peer membership over UDP. See the file comment for events. */
export class Membership extends EventEmitter {
  readonly node: string;
  readonly incarnation: bigint;
  readonly port: number;
  readonly heartbeatMs: number;
  readonly deadAfterMs: number;

  private readonly clusterBytes: Buffer;
  private readonly nodeBytes: Buffer;
  private readonly auth: PacketAuthenticator;
  private readonly family: 4 | 6;
  private readonly destinations: Endpoint[];
  /** Configured unicast peers other than this node itself: each gets a connected socket. */
  private readonly unicastPeers: Endpoint[];
  private readonly now: () => number;
  private readonly counter = new Counters();
  private readonly peerTable = new Map<string, PeerRecord>();
  private readonly lag: LoopLagMeter;
  private readonly budget: ReassemblyBudget;
  private readonly maxNeighbours: number;
  private readonly maxPeers: number;
  private readonly maxDeclarationBytes: number;
  private readonly reassemblyTimeoutMs: number;
  private readonly neighboursIntervalMs: number;

  private readonly clock: Pick<Clock, 'now' | 'wall' | 'after' | 'soon'>;
  private readonly transport: PacketTransport;
  private sequence = 0;
  private transportOpen = false;
  private timer: { cancel(): void } | null = null;
  /** A pending announcement of local changes (see announceSoon), and when the last one went out. */
  private announceTimer: { cancel(): void } | null = null;
  private lastAnnouncedAt = -Infinity;
  /** Digests of the holdings and moves documents last pushed to every destination. */
  private pushedHoldings: Buffer = ZERO_DIGEST;
  private pushedMoves: Buffer = ZERO_DIGEST;
  private running = false;
  private clashReported: bigint | null = null;

  private localVips = new VipList([]);
  private declarationDoc: OutgoingDocument;
  private holdingsDoc: OutgoingDocument;
  private neighboursDoc: OutgoingDocument;
  private movesDoc: OutgoingDocument;
  private heartbeatBody: Buffer;

  constructor(private readonly options: MembershipOptions) {
    super();
    this.auth = new PacketAuthenticator(options.secret);
    this.clusterBytes = Buffer.from(String(options.clusterId ?? ''), 'utf8');
    this.nodeBytes = Buffer.from(String(options.node ?? ''), 'utf8');
    if (this.clusterBytes.length < 1 || this.clusterBytes.length > MAX_NAME_BYTES) {
      throw new Error(`mta-vip membership: clusterId must be 1..${MAX_NAME_BYTES} bytes of UTF-8`);
    }
    if (this.nodeBytes.length < 1 || this.nodeBytes.length > MAX_NAME_BYTES) {
      throw new Error(`mta-vip membership: node name must be 1..${MAX_NAME_BYTES} bytes of UTF-8`);
    }
    if (typeof options.vipsOf !== 'function') throw new Error('mta-vip membership: vipsOf(declaration) is required');
    this.node = options.node;
    this.family = familyOf(options.bind);
    this.port = options.port ?? 7946;
    this.heartbeatMs = options.heartbeatMs ?? 50;
    this.deadAfterMs = options.deadAfterMs ?? 200;
    if (!(this.heartbeatMs > 0) || !(this.deadAfterMs > this.heartbeatMs)) {
      throw new Error('mta-vip membership: need 0 < heartbeatMs < deadAfterMs');
    }
    this.maxNeighbours = options.maxNeighbours ?? 1024;
    this.maxPeers = options.maxPeers ?? 1024;
    this.maxDeclarationBytes = options.maxDeclarationBytes ?? 2 * 1024 * 1024;
    this.reassemblyTimeoutMs = options.reassemblyTimeoutMs ?? 2000;
    this.neighboursIntervalMs = options.neighboursIntervalMs ?? 1000;
    this.budget = new ReassemblyBudget(options.maxReassemblyBytes ?? 32 * 1024 * 1024);
    const now = options.clock ? () => (options.clock as Pick<Clock, 'now'>).now() : (options.now ?? (() => performance.timeOrigin + performance.now()));
    this.now = now;
    this.clock = options.clock ?? {
      now,
      wall: () => Date.now(),
      after: (ms, fn) => {
        const timer = setTimeout(fn, ms);
        return { cancel: () => clearTimeout(timer) };
      },
      soon: (fn) => void setImmediate(fn),
    };
    this.lag = new LoopLagMeter(this.now);
    this.incarnation = options.incarnation ?? newIncarnation();

    const configured = (options.peers ?? []).map((peer) => parseEndpoint(peer, this.port));
    const group = options.multicast ? [parseEndpoint(options.multicast, this.port)] : [];
    for (const destination of [...configured, ...group]) {
      if (familyOf(destination.address) !== this.family) {
        throw new Error(`mta-vip membership: ${destination.address} is not of the same IP family as bind ${options.bind}`);
      }
    }
    // One peer list for the whole cluster names this node too: sending to ourselves would cost a
    // packet sent, read, verified and ignored per heartbeat (a quarter of the work of 4 nodes).
    const ownKey = endpointKey(options.bind, this.port);
    const unique = new Map<string, Endpoint>();
    for (const peer of configured) if (endpointKey(peer.address, peer.port) !== ownKey) unique.set(endpointKey(peer.address, peer.port), peer);
    this.unicastPeers = [...unique.values()];
    this.destinations = [...this.unicastPeers, ...group];
    this.transport =
      options.transport ??
      new UdpTransport({
        family: this.family,
        bind: options.bind,
        port: this.port,
        unicastPeers: this.unicastPeers,
        fastCrashDetection: options.fastCrashDetection !== false,
        ...(options.multicast ? { multicast: options.multicast } : {}),
        ...(options.multicastInterface ? { multicastInterface: options.multicastInterface } : {}),
        ...(options.multicastTtl !== undefined ? { multicastTtl: options.multicastTtl } : {}),
      });

    this.declarationDoc = new OutgoingDocument(DocumentKind.Declaration, Buffer.alloc(0));
    this.holdingsDoc = new OutgoingDocument(DocumentKind.Holdings, Buffer.alloc(0));
    this.neighboursDoc = new OutgoingDocument(DocumentKind.Neighbours, Buffer.alloc(0));
    this.movesDoc = new OutgoingDocument(DocumentKind.Moves, Buffer.alloc(0));
    this.heartbeatBody = this.buildHeartbeat(new Set(), new Set());
  }

  /** Opens the transport (binds the sockets, joins the multicast group), and starts heartbeats. */
  async start(): Promise<void> {
    if (this.running) return;
    await this.transport.open({
      message: (packet, remote) => this.receive(packet, remote),
      refused: (peer) => this.onRefused(peer),
      pathError: () => this.counter.add('send_errors'),
      error: (error) => this.emit('error', error),
    });
    this.transportOpen = true;

    this.running = true;
    // What was set before start is not pushed: peers ask for what the heartbeat announces.
    this.pushedHoldings = this.holdingsDoc.digest;
    this.pushedMoves = this.movesDoc.digest;
    this.lastAnnouncedAt = this.now();
    this.sendHeartbeat();
    this.scheduleTick();
  }

  /**
   * Replaces what this node announces. Sends at once (holdings and moves chunks first, then a
   * heartbeat) when anything changed, instead of waiting for the next tick.
   * @throws when a declaration has more than 4,096 VIPs or vipsOf throws, an epoch is invalid,
   * or a move is (see encodeMoves: more than 64, a bad IP, node name or seq).
   */
  setLocal(state: LocalState): void {
    // Encoded first: a bad move must throw before anything else of the new state is taken.
    const movesBytes = encodeMoves(state.moves ?? new Map<string, Move>());
    if (!state.declaration.equals(this.declarationDoc.bytes)) {
      const vips = new VipList(state.declaration.length ? this.options.vipsOf(state.declaration) : []);
      if (vips.size > MAX_DECLARED_VIPS) throw new Error(`mta-vip membership: at most ${MAX_DECLARED_VIPS} VIPs per node (declared ${vips.size})`);
      this.declarationDoc = new OutgoingDocument(DocumentKind.Declaration, Buffer.from(state.declaration));
      this.localVips = vips;
    }
    const holdingsBytes = encodeHoldings(state.holdings);
    const holdingsChanged = !holdingsBytes.equals(this.holdingsDoc.bytes);
    if (holdingsChanged) this.holdingsDoc = new OutgoingDocument(DocumentKind.Holdings, holdingsBytes);
    const neighbours = encodeNeighbours(state.neighbours ?? [], this.maxNeighbours);
    if (neighbours.truncated) this.counter.add('neighbours_truncated', neighbours.truncated);
    if (!neighbours.bytes.equals(this.neighboursDoc.bytes)) this.neighboursDoc = new OutgoingDocument(DocumentKind.Neighbours, neighbours.bytes);
    const movesChanged = !movesBytes.equals(this.movesDoc.bytes);
    if (movesChanged) this.movesDoc = new OutgoingDocument(DocumentKind.Moves, movesBytes);

    const body = this.buildHeartbeat(state.holdings.keys(), state.unhealthy);
    const changed = !body.equals(this.heartbeatBody);
    this.heartbeatBody = body;
    if (this.running && (changed || holdingsChanged || movesChanged)) this.announceSoon();
  }

  /**
   * Sends what setLocal changed without waiting for the next tick: at once, unless the previous
   * such announcement is less than heartbeatMs old; then when that period ends, with everything
   * that changed meanwhile. A single change (a failover) still goes out at once, while a burst
   * (hundreds of VIPs acquired or released one by one) costs one holdings push and one heartbeat
   * per heartbeatMs instead of one per VIP.
   */
  private announceSoon(): void {
    if (this.announceTimer) return;
    const wait = Math.min(this.heartbeatMs, this.lastAnnouncedAt + this.heartbeatMs - this.now());
    if (wait <= 0) {
      this.announce();
      return;
    }
    this.announceTimer = this.clock.after(wait, () => {
      this.announceTimer = null;
      this.announce();
    });
  }

  private announce(): void {
    if (!this.running) return;
    this.lastAnnouncedAt = this.now();
    // Documents before the heartbeat that announces them, so receivers rarely need to ask.
    if (!this.holdingsDoc.digest.equals(this.pushedHoldings)) {
      this.pushedHoldings = this.holdingsDoc.digest;
      this.sendChunks(this.holdingsDoc, 0, this.destinations);
    }
    if (!this.movesDoc.digest.equals(this.pushedMoves)) {
      this.pushedMoves = this.movesDoc.digest;
      this.sendChunks(this.movesDoc, 0, this.destinations);
    }
    this.sendHeartbeat();
  }

  /** Every peer known (live or not), newest data. */
  peers(): PeerState[] {
    return [...this.peerTable.values()].map((record) => this.viewOf(record));
  }

  /** Counter snapshot, see counters.ts for names. */
  counters(): Record<string, number> {
    const values = this.counter.snapshot();
    values.peers_known = this.peerTable.size;
    values.peers_live = [...this.peerTable.values()].filter((r) => r.live).length;
    values.reassembly_bytes = this.budget.used;
    return values;
  }

  /**
   * Stops heartbeats, sends a goodbye (3 copies, so one lost packet does not make peers wait for
   * dead-after) unless `goodbye: false` (which looks like a crash to peers), and closes the sockets.
   */
  async close(options: { goodbye?: boolean } = {}): Promise<void> {
    this.timer?.cancel();
    this.timer = null;
    this.announceTimer?.cancel();
    this.announceTimer = null;
    const wasRunning = this.running;
    this.running = false;
    if (wasRunning && options.goodbye !== false) {
      await Promise.all(
        Array.from({ length: GOODBYE_COPIES }, () => new Promise<void>((resolve) => this.send(PacketType.Goodbye, Buffer.alloc(0), this.destinations, resolve))),
      );
    }
    for (const record of this.peerTable.values()) this.discardTransfers(record);
    if (this.transportOpen) {
      this.transportOpen = false;
      await this.transport.close();
    }
  }

  /**
   * The receive path, public for tests and the fuzzer: any bytes from anyone. Never throws;
   * every packet ends in exactly one counter (accepted, ignored_own or dropped_<reason>).
   */
  receive(packet: Buffer, remote: Pick<RemoteInfo, 'address' | 'port'>): void {
    this.counter.add('received');
    this.counter.add('received_bytes', packet.length);
    let outcome: DropReason | 'accepted' | 'own';
    try {
      outcome = this.handle(packet, remote);
    } catch (error) {
      // A bug, not an attack we can classify: count it and tell the owner, never crash.
      outcome = 'malformed';
      this.emit('error', error instanceof Error ? error : new Error(String(error)));
    }
    if (outcome === 'accepted') this.counter.add('accepted');
    else if (outcome === 'own') this.counter.add('ignored_own');
    else this.counter.drop(outcome);
  }

  private handle(packet: Buffer, remote: Pick<RemoteInfo, 'address' | 'port'>): DropReason | 'accepted' | 'own' {
    const envelope = readEnvelope(packet);
    if (typeof envelope === 'string') return envelope;
    if (!envelope.cluster.equals(this.clusterBytes)) return 'unknown_cluster';
    if (!this.auth.verify(packet)) return 'bad_mac';

    if (envelope.node === this.node) {
      if (envelope.incarnation === this.incarnation) return 'own';
      if (this.clashReported !== envelope.incarnation) {
        this.clashReported = envelope.incarnation;
        this.emit('error', codedError(ErrorCodes.NODE_NAME_CLASH, `another process sends as node "${this.node}" from ${remote.address}: node names must be unique`));
      }
      return 'name_clash';
    }

    let record = this.peerTable.get(envelope.node);
    if (!record) {
      if (!this.makeRoomForPeer()) return 'peer_table_full';
      record = this.newRecord(envelope.node, envelope.incarnation, remote);
      this.peerTable.set(envelope.node, record);
    } else if (envelope.incarnation < record.incarnation) {
      return 'old_incarnation';
    } else if (envelope.incarnation > record.incarnation) {
      record = this.restart(record, envelope.incarnation, remote);
    }
    if (!record.replay.isFresh(envelope.sequence)) return 'replay';

    const now = this.now();
    switch (envelope.type) {
      case PacketType.Heartbeat: {
        // Most heartbeats repeat the last one, which decoded fine: compare instead of decoding again.
        const beat = record.lastBody !== null && record.lastBody.equals(envelope.body) ? record.beat : decodeHeartbeat(envelope.body);
        if (typeof beat === 'string') return beat;
        if (record.leaving) return 'after_goodbye';
        record.replay.accept(envelope.sequence);
        this.onHeartbeat(record, envelope.body, remote, now);
        return 'accepted';
      }
      case PacketType.Chunk: {
        const chunk = decodeChunk(envelope.body);
        if (typeof chunk === 'string') return chunk;
        record.replay.accept(envelope.sequence);
        this.onChunk(record, chunk, now);
        return 'accepted';
      }
      case PacketType.Request: {
        const request = decodeRequest(envelope.body);
        if (typeof request === 'string') return request;
        record.replay.accept(envelope.sequence);
        this.counter.add('requests_received');
        if (request.target === this.node && this.running) {
          const document = this.localDocument(request.kind);
          const from = request.digest.subarray(0, SHORT_DIGEST_BYTES).equals(document.digest.subarray(0, SHORT_DIGEST_BYTES)) ? request.from : 0;
          this.sendChunks(document, from, [{ address: remote.address, port: remote.port }]);
        }
        return 'accepted';
      }
      case PacketType.Goodbye: {
        const goodbye = decodeGoodbye(envelope.body);
        if (typeof goodbye === 'string') return goodbye;
        record.replay.accept(envelope.sequence);
        if (!record.leaving) {
          record.leaving = true;
          const wasLive = record.live;
          record.live = false;
          this.discardTransfers(record);
          if (wasLive) this.emit('peer-down', this.viewOf(record), 'goodbye');
        }
        return 'accepted';
      }
      default:
        return 'malformed';
    }
  }

  private onHeartbeat(record: PeerRecord, body: Buffer, remote: Pick<RemoteInfo, 'address' | 'port'>, now: number): void {
    this.counter.add('heartbeats_received');
    record.address = remote.address;
    record.port = remote.port;
    record.lastHeard = now;
    const changed = record.lastBody === null || !record.lastBody.equals(body);
    if (changed) {
      record.lastBody = Buffer.from(body);
      // Decoding our own copy cannot fail: the same bytes decoded a moment ago.
      record.beat = decodeHeartbeat(record.lastBody) as Heartbeat;
      this.refreshView(record);
    }
    if (!record.live) {
      if (record.downByRefusal) this.refusalDisproved(record);
      record.live = true;
      record.liveSince = now;
      this.emit('peer-up', this.viewOf(record));
    } else if (changed) {
      this.emit('change', this.viewOf(record));
    }
    if (changed) this.requestMissing(record, now);
  }

  private onChunk(record: PeerRecord, chunk: Chunk, now: number): void {
    this.counter.add('chunks_received');
    const limit = this.documentLimit(chunk.kind);
    if (chunk.length > limit) {
      this.counter.add('chunks_discarded');
      return;
    }
    let reassembly = record.incoming.get(chunk.kind);
    if (reassembly && !reassembly.matches(chunk)) {
      // A newer document replaces an unfinished older one of the same kind.
      reassembly.release();
      reassembly = undefined;
    }
    if (!reassembly) {
      if (this.alreadyHave(record, chunk.kind, chunk.digest)) return;
      reassembly = new Reassembly(chunk.kind, Buffer.from(chunk.digest), chunk.length, chunk.count, this.budget, now);
      record.incoming.set(chunk.kind, reassembly);
    }
    const outcome = reassembly.add(chunk, now);
    if (outcome === 'over-budget') this.counter.add('chunks_discarded');
    if (!reassembly.complete) {
      // The window we asked for is complete: ask for the next one at once.
      const pending = record.requested.get(chunk.kind);
      if (outcome === 'added' && pending && reassembly.firstMissing(pending.from) >= pending.from + CHUNK_WINDOW) {
        this.sendRequest(record, chunk.kind, reassembly.digest, reassembly.firstMissing(), now);
      }
      return;
    }
    record.incoming.delete(chunk.kind);
    record.requested.delete(chunk.kind);
    const bytes = reassembly.assemble();
    reassembly.release();
    if (bytes === null || !this.applyDocument(record, chunk.kind, reassembly.digest, bytes)) {
      this.counter.add('documents_rejected');
      return;
    }
    this.counter.add('documents_completed');
    this.refreshView(record);
    if (chunk.kind === DocumentKind.Neighbours) this.emit('neighbours', this.viewOf(record));
    // Also for a peer that is not live: its holdings' epochs are what a takeover must outbid.
    else this.emit('change', this.viewOf(record));
  }

  /** Stores a verified document; false when its content does not decode. */
  private applyDocument(record: PeerRecord, kind: DocumentKind, digest: Buffer, bytes: Buffer): boolean {
    if (kind === DocumentKind.Declaration) {
      let vips: VipList;
      try {
        vips = new VipList(bytes.length ? this.options.vipsOf(bytes) : []);
      } catch {
        return false;
      }
      if (vips.size > MAX_DECLARED_VIPS) return false;
      record.declarations = [{ digest, bytes, vips }, ...record.declarations.filter((d) => !d.digest.equals(digest))].slice(0, 2);
      return true;
    }
    if (kind === DocumentKind.Holdings) {
      const map = decodeHoldings(bytes);
      if (!map) return false;
      record.holdingsDoc = { digest, map };
      return true;
    }
    if (kind === DocumentKind.Moves) {
      const map = decodeMoves(bytes);
      if (!map) return false;
      record.movesDoc = { digest, map };
      return true;
    }
    const list = decodeNeighbours(bytes);
    if (!list || list.length > this.maxNeighbours) return false;
    record.neighboursDoc = { digest, list };
    return true;
  }

  /** Recomputes the public view of a peer from its last heartbeat and documents. */
  private refreshView(record: PeerRecord): void {
    const beat = record.beat;
    const view = record.view;
    if (!beat) return;
    const declaration = this.findDeclaration(record, beat.declarationDigest);
    const holdingsCurrent = record.holdingsDoc !== null && prefixEquals(record.holdingsDoc.digest, beat.holdingsDigest);
    const epochs = record.holdingsDoc?.map ?? new Map<string, number>();
    const interpretable = declaration !== null && declaration.vips.size === beat.vipCount;
    let holdings: Map<string, number>;
    let unhealthy: Set<string> | 'all';
    if (interpretable) {
      holdings = new Map(declaration.vips.fromBitmap(beat.held).map((ip) => [ip, epochs.get(ip) ?? 0]));
      unhealthy = beat.allUnhealthy ? 'all' : new Set(beat.unhealthy ? declaration.vips.fromBitmap(beat.unhealthy) : []);
    } else {
      holdings = holdingsCurrent ? new Map(epochs) : new Map();
      unhealthy = beat.allUnhealthy ? 'all' : new Set();
    }
    view.digest = Buffer.from(beat.declarationDigest);
    view.declaration = declaration ? declaration.bytes : null;
    view.holdings = holdings;
    view.unhealthy = unhealthy;
    view.complete = interpretable && holdingsCurrent;
    view.neighbours = record.neighboursDoc?.list ?? [];
    view.moves = record.movesDoc.map;
  }

  /** The declaration with this digest: from the peer, or shared with another peer (same config). */
  private findDeclaration(record: PeerRecord, digest: Buffer): KnownDeclaration | null {
    const own = record.declarations.find((d) => d.digest.equals(digest));
    if (own) return own;
    for (const other of this.peerTable.values()) {
      const shared = other.declarations.find((d) => d.digest.equals(digest));
      if (shared) {
        this.counter.add('declarations_shared');
        record.declarations = [shared, ...record.declarations].slice(0, 2);
        return shared;
      }
    }
    return null;
  }

  private alreadyHave(record: PeerRecord, kind: DocumentKind, digest: Buffer): boolean {
    if (kind === DocumentKind.Declaration) return this.findDeclaration(record, digest) !== null;
    if (kind === DocumentKind.Holdings) return record.holdingsDoc !== null && record.holdingsDoc.digest.equals(digest);
    if (kind === DocumentKind.Moves) return record.movesDoc.digest.equals(digest);
    return record.neighboursDoc !== null && record.neighboursDoc.digest.equals(digest);
  }

  /** Asks a live peer for each document its heartbeat announces that we do not have. */
  private requestMissing(record: PeerRecord, now: number): void {
    const beat = record.beat;
    if (!beat || !record.live || record.leaving || !this.running) return;
    for (const kind of KINDS) {
      const announced = announcedDigest(beat, kind);
      if (this.haveAnnounced(record, kind, announced)) continue;
      const reassembly = record.incoming.get(kind);
      const inProgress = reassembly && prefixEquals(reassembly.digest, announced) ? reassembly : undefined;
      const from = inProgress ? inProgress.firstMissing() : 0;
      const pending = record.requested.get(kind);
      const retryMs = kind === DocumentKind.Neighbours ? this.neighboursIntervalMs : Math.max(this.heartbeatMs, 20);
      // Ask again only when nothing came for retryMs: a transfer still arriving (a window
      // asked for, or a push) would otherwise be sent again while its chunks are in flight.
      const lastActivity = Math.max(pending?.at ?? -Infinity, inProgress?.lastProgressAt ?? -Infinity);
      if (now - lastActivity < retryMs) continue;
      this.sendRequest(record, kind, inProgress ? inProgress.digest : announced, from, now);
    }
  }

  private haveAnnounced(record: PeerRecord, kind: DocumentKind, announced: Buffer): boolean {
    if (kind === DocumentKind.Declaration) return this.findDeclaration(record, announced) !== null;
    const doc = kind === DocumentKind.Holdings ? record.holdingsDoc : kind === DocumentKind.Moves ? record.movesDoc : record.neighboursDoc;
    return doc !== null && prefixEquals(doc.digest, announced);
  }

  private sendRequest(record: PeerRecord, kind: DocumentKind, digest: Buffer, from: number, now: number): void {
    const padded = Buffer.alloc(DIGEST_BYTES);
    digest.copy(padded, 0, 0, Math.min(digest.length, DIGEST_BYTES));
    record.requested.set(kind, { at: now, from });
    this.counter.add('requests_sent');
    this.send(PacketType.Request, encodeRequest({ kind, target: record.node, digest: padded, from }), [{ address: record.address, port: record.port }]);
  }

  private localDocument(kind: DocumentKind): OutgoingDocument {
    if (kind === DocumentKind.Declaration) return this.declarationDoc;
    if (kind === DocumentKind.Holdings) return this.holdingsDoc;
    if (kind === DocumentKind.Moves) return this.movesDoc;
    return this.neighboursDoc;
  }

  private documentLimit(kind: DocumentKind): number {
    if (kind === DocumentKind.Declaration) return this.maxDeclarationBytes;
    if (kind === DocumentKind.Holdings) return MAX_DECLARED_VIPS * MAX_HOLDING_ENTRY_BYTES;
    if (kind === DocumentKind.Moves) return MAX_MOVES * MAX_MOVE_ENTRY_BYTES;
    return this.maxNeighbours * MAX_NEIGHBOUR_ENTRY_BYTES;
  }

  private sendChunks(document: OutgoingDocument, from: number, to: Endpoint[]): void {
    for (const index of document.window(from)) {
      this.counter.add('chunks_sent');
      this.send(PacketType.Chunk, encodeChunk(document.chunk(index)), to);
    }
  }

  private buildHeartbeat(held: Iterable<string>, unhealthy: Set<string> | 'all'): Buffer {
    const heldMap = this.localVips.toBitmap(held);
    if (heldMap.undeclared.length) this.counter.add('held_undeclared', heldMap.undeclared.length);
    const unhealthyMap = unhealthy === 'all' || unhealthy.size === 0 ? null : this.localVips.toBitmap(unhealthy).bitmap;
    return encodeHeartbeat({
      allUnhealthy: unhealthy === 'all',
      declarationDigest: this.declarationDoc.digest,
      holdingsDigest: this.holdingsDoc.digest,
      neighboursDigest: this.neighboursDoc.digest,
      movesDigest: this.movesDoc.digest,
      vipCount: this.localVips.size,
      held: heldMap.bitmap,
      unhealthy: unhealthyMap,
    });
  }

  private sendHeartbeat(): void {
    this.counter.add('heartbeats_sent');
    this.send(PacketType.Heartbeat, this.heartbeatBody, this.destinations);
  }

  /**
   * Signs one packet (one sequence number) and sends it to every destination, through the
   * destination's connected socket when it has one; never throws. `allDone` runs once every
   * send has completed or failed.
   */
  private send(type: PacketType, body: Buffer, to: Endpoint[], allDone?: () => void): void {
    if (!this.transportOpen || to.length === 0) {
      allDone?.();
      return;
    }
    const packet = encodePacket(type, this.clusterBytes, this.nodeBytes, this.incarnation, ++this.sequence, body);
    this.auth.sign(packet);
    let pending = to.length;
    for (const destination of to) {
      this.transport.send(packet, destination, (outcome: SendOutcome) => {
        if (outcome === 'refused') this.onRefused(destination);
        else if (outcome === 'error') this.counter.add('send_errors');
        else {
          this.counter.add('sent');
          this.counter.add('sent_bytes', packet.length);
        }
        if (--pending === 0) allDone?.();
      });
    }
  }

  /**
   * Ticks fall on multiples of heartbeatMs of the wall clock. Nodes whose clocks agree (one host,
   * or NTP) then send at about the same moment, so a node reads its peers' heartbeats in one or
   * two wake-ups around its own tick instead of one wake-up each: waking up is most of what an
   * idle node costs. Clocks that disagree only lose that saving.
   */
  private scheduleTick(): void {
    if (!this.running) return;
    // The boundary nearest one period from now: 0.5 to 1.5 periods away, exactly one when on time.
    const wall = this.clock.wall();
    const delay = Math.round((wall + this.heartbeatMs) / this.heartbeatMs) * this.heartbeatMs - wall;
    this.lag.scheduled(delay);
    this.timer = this.clock.after(delay, () => this.tick());
  }

  /**
   * Every heartbeatMs: notice our own stalls, send a heartbeat, then (after pending packets have
   * been read, via setImmediate) declare silent peers dead and retry document requests.
   */
  private tick(): void {
    if (!this.running) return;
    const lagMs = this.lag.fired();
    this.counter.max('max_loop_lag_ms', Math.round(lagMs));
    if (lagMs > this.deadAfterMs) {
      // We were not running: peers' silence proves nothing. Listen again for one dead-after period.
      this.counter.add('stalls');
      const now = this.now();
      for (const record of this.peerTable.values()) if (record.live) record.lastHeard = now;
      this.emit('stall', { lagMs: Math.round(lagMs) });
    } else if (lagMs > this.heartbeatMs) {
      // A shorter stall still ate into every peer's allowance: a 150 ms stop right after a
      // heartbeat arrived would otherwise make a 200 ms dead-after expire on the first tick.
      // Count only time this process was running.
      const now = this.now();
      for (const record of this.peerTable.values()) if (record.live) record.lastHeard = Math.min(now, record.lastHeard + lagMs);
    }
    this.sendHeartbeat();
    // setImmediate runs after the poll phase, so heartbeats that queued up while this timer was
    // late are read before anyone is judged.
    this.clock.soon(() => this.detect());
    this.scheduleTick();
  }

  private detect(): void {
    if (!this.running) return;
    const now = this.now();
    for (const record of this.peerTable.values()) {
      for (const [kind, reassembly] of record.incoming) {
        if (now - reassembly.lastProgressAt > this.reassemblyTimeoutMs) {
          reassembly.release();
          record.incoming.delete(kind);
          this.counter.add('reassembly_timeouts');
        }
      }
      if (!record.live) continue;
      if (now - record.lastHeard > this.deadAfterMs) {
        record.live = false;
        this.emit('peer-down', this.viewOf(record), 'timeout');
        continue;
      }
      this.requestMissing(record, now);
    }
  }

  /**
   * The host of a peer endpoint refused a packet: nothing listens there any more. A live peer
   * last heard from that endpoint is declared dead, once the packets already queued for us have
   * been read (a goodbye sent just before its socket closed wins, and its last heartbeats do not
   * revive it). A refusal for a peer never heard from, or not live, changes nothing.
   */
  private onRefused(endpoint: Endpoint): void {
    this.counter.add('send_refused');
    if (!this.running) return;
    const key = endpointKey(endpoint.address, endpoint.port);
    let record: PeerRecord | undefined;
    for (const candidate of this.peerTable.values()) {
      if (candidate.live && candidate.trustRefusals && endpointKey(candidate.address, candidate.port) === key) record = candidate;
    }
    if (!record) return;
    const refused = record;
    this.afterQueuedPackets(() => {
      // Still the same incarnation (a restart makes a new record), still live, no goodbye meanwhile.
      if (!this.running || this.peerTable.get(refused.node) !== refused || !refused.live || refused.leaving) return;
      refused.live = false;
      refused.downByRefusal = true;
      this.counter.add('peer_unreachable');
      this.emit('peer-down', this.viewOf(refused), 'unreachable');
    });
  }

  /**
   * A peer declared unreachable is heard again with the same incarnation: its process never
   * died (a crash always brings a new incarnation), so the refusal was forged or came from a
   * firewall rejecting the cluster port. Only silence counts against this incarnation from now on.
   */
  private refusalDisproved(record: PeerRecord): void {
    record.downByRefusal = false;
    record.trustRefusals = false;
    this.counter.add('refusals_disproved');
    const message =
      `peer "${record.node}" at ${record.address} port ${record.port} was declared unreachable on an ICMP port unreachable but is alive: ` +
      'a firewall rejects the cluster port, or the ICMP was forged; until it restarts, it is declared dead only after dead-after of silence';
    this.emit('error', codedError(ErrorCodes.FALSE_REFUSAL, message));
  }

  private newRecord(node: string, incarnation: bigint, remote: Pick<RemoteInfo, 'address' | 'port'>): PeerRecord {
    return {
      node,
      incarnation,
      address: remote.address,
      port: remote.port,
      replay: new ReplayGuard(),
      live: false,
      liveSince: 0,
      lastHeard: 0,
      leaving: false,
      lastBody: null,
      beat: null,
      declarations: [],
      holdingsDoc: null,
      neighboursDoc: null,
      movesDoc: { digest: EMPTY_DOCUMENT_DIGEST, map: new Map() },
      incoming: new Map(),
      requested: new Map(),
      downByRefusal: false,
      trustRefusals: true,
      view: {
        node,
        incarnation,
        address: remote.address,
        port: remote.port,
        live: false,
        liveSince: 0,
        lastHeard: 0,
        complete: false,
        declaration: null,
        digest: ZERO_DIGEST,
        holdings: new Map(),
        unhealthy: new Set(),
        neighbours: [],
        moves: new Map(),
        leaving: false,
      },
    };
  }

  /** A higher incarnation: forget all state of the old one except its declarations (content-addressed). */
  private restart(old: PeerRecord, incarnation: bigint, remote: Pick<RemoteInfo, 'address' | 'port'>): PeerRecord {
    this.discardTransfers(old);
    const record = this.newRecord(old.node, incarnation, remote);
    record.declarations = old.declarations;
    const wasLive = old.live;
    if (wasLive) {
      record.live = true;
      record.liveSince = this.now();
      record.lastHeard = record.liveSince;
    }
    this.peerTable.set(old.node, record);
    this.emit('peer-restart', this.viewOf(record));
    return record;
  }

  /** Evicts the longest-silent dead peer when the table is full; false if all are live. */
  private makeRoomForPeer(): boolean {
    if (this.peerTable.size < this.maxPeers) return true;
    let oldest: PeerRecord | null = null;
    for (const record of this.peerTable.values()) {
      if (!record.live && (oldest === null || record.lastHeard < oldest.lastHeard)) oldest = record;
    }
    if (!oldest) return false;
    this.discardTransfers(oldest);
    this.peerTable.delete(oldest.node);
    this.counter.add('peers_evicted');
    return true;
  }

  private discardTransfers(record: PeerRecord): void {
    for (const reassembly of record.incoming.values()) reassembly.release();
    record.incoming.clear();
    record.requested.clear();
  }

  /**
   * Runs `callback` after the sockets' already-queued datagrams have been read. An 'error' event
   * ends libuv's read loop for that socket, so what is still queued is read in the next poll
   * phase; an immediate scheduled from an immediate runs after that poll phase.
   */
  private afterQueuedPackets(callback: () => void): void {
    this.clock.soon(() => this.clock.soon(callback));
  }

  /** A fresh PeerState snapshot (the maps are shared with the record: do not mutate). */
  private viewOf(record: PeerRecord): PeerState {
    return {
      ...record.view,
      node: record.node,
      incarnation: record.incarnation,
      address: record.address,
      port: record.port,
      live: record.live,
      liveSince: record.liveSince,
      lastHeard: record.lastHeard,
      leaving: record.leaving,
    };
  }
}

/** The digest (or its 8-byte prefix) a heartbeat announces for a document kind. */
function announcedDigest(beat: Heartbeat, kind: DocumentKind): Buffer {
  if (kind === DocumentKind.Declaration) return beat.declarationDigest;
  if (kind === DocumentKind.Holdings) return beat.holdingsDigest;
  if (kind === DocumentKind.Moves) return beat.movesDigest;
  return beat.neighboursDigest;
}

function prefixEquals(full: Buffer, prefix: Buffer): boolean {
  return full.subarray(0, prefix.length).equals(prefix);
}
