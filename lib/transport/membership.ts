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
import { codedError, ErrorCodes } from '../errors';
import type { Clock } from '../runtime/ports';
import { familyOf, parseEndpoint, type Endpoint } from './address';
import { PacketAuthenticator } from './auth';
import {
  DocumentKind,
  MAX_NAME_BYTES,
  PacketType,
  SHORT_DIGEST_BYTES,
  decodeChunk,
  decodeGoodbye,
  decodeHeartbeatState,
  decodeRequest,
  encodePacket,
  headerBytes,
  readEnvelope,
  splitHeartbeat,
  withWitnesses,
  witnessRoom,
  type Heartbeat,
} from './codec';
import { Counters, type DropReason } from './counters';
import { ReassemblyBudget } from './document-sync';
import { newIncarnation } from './incarnation';
import { DocumentExchange } from './document-exchange';
import { LocalDocuments } from './local-documents';
import { LoopLagMeter } from './loop-lag';
import type { LocalState, MembershipEvents, MembershipOptions, PeerState } from './membership-types';
import { endpointKey } from './peer-sockets';
import { PeerTable, ZERO_DIGEST, discardTransfers, viewOf, type PeerRecord } from './peer-table';
import { UdpTransport, type PacketTransport, type SendOutcome } from './udp-transport';

export type { LocalState, MembershipEvents, MembershipOptions, PeerState } from './membership-types';

const GOODBYE_COPIES = 3;

/** Peer membership over UDP. See the file comment for events. */
export class Membership extends EventEmitter<MembershipEvents> {
  readonly node: string;
  readonly incarnation: bigint;
  readonly port: number;
  readonly heartbeatMs: number;
  readonly deadAfterMs: number;

  private readonly clusterBytes: Buffer;
  private readonly nodeBytes: Buffer;
  /** Bytes of this node's packet header (the witnesses fill what a heartbeat leaves free). */
  private readonly headerLength: number;
  private readonly auth: PacketAuthenticator;
  private readonly family: 4 | 6;
  private readonly destinations: Endpoint[];
  /** Configured unicast peers other than this node itself: each gets a connected socket. */
  private readonly unicastPeers: Endpoint[];
  private readonly now: () => number;
  private readonly counter = new Counters();
  private readonly peerTable: PeerTable;
  private readonly local: LocalDocuments;
  private readonly documents: DocumentExchange;
  /**
   * Destinations whose host said nothing listens there (ICMP port unreachable) and when it last
   * did: evidence while it keeps refusing (every heartbeat), gone when heard again or once it
   * stopped refusing for dead-after (a restarted process we cannot hear refuses no more).
   */
  private readonly refusedAddresses = new Map<string, number>();
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

  constructor(options: MembershipOptions) {
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
    this.headerLength = headerBytes(this.clusterBytes, this.nodeBytes);
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
    this.peerTable = new PeerTable(
      { maxPeers: this.maxPeers, maxNeighbours: this.maxNeighbours, deadAfterMs: this.deadAfterMs, heartbeatMs: this.heartbeatMs, reassemblyTimeoutMs: this.reassemblyTimeoutMs, vipsOf: options.vipsOf },
      this.counter,
    );
    this.local = new LocalDocuments(options.vipsOf, this.maxNeighbours, this.counter);
    this.documents = new DocumentExchange({
      table: this.peerTable,
      counter: this.counter,
      budget: this.budget,
      send: (type, body, to) => this.send(type, body, to),
      running: () => this.running,
      heartbeatMs: this.heartbeatMs,
      neighboursIntervalMs: this.neighboursIntervalMs,
      maxDeclarationBytes: this.maxDeclarationBytes,
      maxNeighbours: this.maxNeighbours,
    });

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
    this.pushedHoldings = this.local.document(DocumentKind.Holdings).digest;
    this.pushedMoves = this.local.document(DocumentKind.Moves).digest;
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
    if (this.local.set(state) && this.running) this.announceSoon();
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
    const holdings = this.local.document(DocumentKind.Holdings);
    if (!holdings.digest.equals(this.pushedHoldings)) {
      this.pushedHoldings = holdings.digest;
      this.documents.sendChunks(holdings, 0, this.destinations);
    }
    const moves = this.local.document(DocumentKind.Moves);
    if (!moves.digest.equals(this.pushedMoves)) {
      this.pushedMoves = moves.digest;
      this.documents.sendChunks(moves, 0, this.destinations);
    }
    this.sendHeartbeat();
  }

  /** Every peer known (live or not), newest data. */
  peers(): PeerState[] {
    return [...this.peerTable.values()].map(viewOf);
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
    for (const record of this.peerTable.values()) discardTransfers(record);
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
      record = this.peerTable.add(envelope.node, envelope.incarnation, remote) ?? undefined;
      if (!record) return 'peer_table_full';
    } else if (envelope.incarnation < record.incarnation) {
      return 'old_incarnation';
    } else if (envelope.incarnation > record.incarnation) {
      record = this.peerTable.restart(record, envelope.incarnation, remote, this.now());
      this.emit('peer-restart', viewOf(record));
    }
    if (!record.replay.isFresh(envelope.sequence)) return 'replay';
    if (this.refusedAddresses.delete(remote.address)) this.emit('refused', [...this.refusedAddresses.keys()]);

    const now = this.now();
    switch (envelope.type) {
      case PacketType.Heartbeat: {
        const parts = splitHeartbeat(envelope.body);
        if (typeof parts === 'string') return parts;
        // Most heartbeats repeat the last state, which decoded fine: compare instead of decoding again.
        const beat = record.lastBody !== null && record.lastBody.equals(parts.state) ? record.beat : decodeHeartbeatState(parts.state);
        if (typeof beat === 'string') return beat;
        if (record.leaving) return 'after_goodbye';
        record.replay.accept(envelope.sequence);
        this.onHeartbeat(record, parts.state, remote, now);
        // After onHeartbeat: a peer just come up vouches only from its next heartbeat on.
        if (record.live) this.peerTable.vouch(record, parts.witnesses, now);
        return 'accepted';
      }
      case PacketType.Chunk: {
        const chunk = decodeChunk(envelope.body);
        if (typeof chunk === 'string') return chunk;
        record.replay.accept(envelope.sequence);
        const completed = this.documents.onChunk(record, chunk, now);
        if (completed === DocumentKind.Neighbours) this.emit('neighbours', viewOf(record));
        // Also for a peer that is not live: its holdings' epochs are what a takeover must outbid.
        else if (completed !== null) this.emit('change', viewOf(record));
        return 'accepted';
      }
      case PacketType.Request: {
        const request = decodeRequest(envelope.body);
        if (typeof request === 'string') return request;
        record.replay.accept(envelope.sequence);
        this.counter.add('requests_received');
        if (request.target === this.node && this.running) {
          const document = this.local.document(request.kind);
          const from = request.digest.subarray(0, SHORT_DIGEST_BYTES).equals(document.digest.subarray(0, SHORT_DIGEST_BYTES)) ? request.from : 0;
          this.documents.sendChunks(document, from, [{ address: remote.address, port: remote.port }]);
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
          discardTransfers(record);
          if (wasLive) this.emit('peer-down', viewOf(record), 'goodbye');
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
    this.peerTable.heard(record, now);
    const changed = record.lastBody === null || !record.lastBody.equals(body);
    if (changed) {
      record.lastBody = Buffer.from(body);
      // Decoding our own copy cannot fail: the same bytes decoded a moment ago.
      record.beat = decodeHeartbeatState(record.lastBody) as Heartbeat;
      this.peerTable.refreshView(record);
    }
    if (!record.live) {
      if (record.downByRefusal) this.refusalDisproved(record);
      record.live = true;
      record.liveSince = now;
      this.emit('peer-up', viewOf(record));
    } else if (changed) {
      this.emit('change', viewOf(record));
    }
    if (changed) this.documents.requestMissing(record, now);
  }

  /** The heartbeat: our state, and the peers we heard ourselves within dead-after (see PeerTable.expire). */
  private sendHeartbeat(): void {
    this.counter.add('heartbeats_sent');
    const state = this.local.heartbeat;
    const witnesses = this.peerTable.witnesses(this.now(), witnessRoom(this.headerLength, state.length));
    this.send(PacketType.Heartbeat, withWitnesses(state, witnesses), this.destinations);
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
    // We were not running: peers' silence meanwhile proves nothing (see PeerTable.forgiveStall).
    if (lagMs > this.heartbeatMs) this.peerTable.forgiveStall(lagMs, this.now());
    if (lagMs > this.deadAfterMs) {
      this.counter.add('stalls');
      this.emit('stall', { lagMs: Math.round(lagMs) });
    }
    if (this.announceTimer) {
      // Changes are waiting for their push: send them now, before the heartbeat that announces
      // them. A heartbeat announcing documents not yet pushed makes every peer ask for the whole
      // document (one unicast window each) just before the push sends it to them anyway.
      this.announceTimer.cancel();
      this.announceTimer = null;
      this.announce();
    } else {
      this.sendHeartbeat();
    }
    // setImmediate runs after the poll phase, so heartbeats that queued up while this timer was
    // late are read before anyone is judged.
    this.clock.soon(() => this.detect());
    this.scheduleTick();
  }

  private detect(): void {
    if (!this.running) return;
    const now = this.now();
    for (const record of this.peerTable.expire(now)) this.emit('peer-down', viewOf(record), 'timeout');
    let expired = false;
    for (const [address, at] of this.refusedAddresses) {
      if (now - at <= this.deadAfterMs) continue;
      this.refusedAddresses.delete(address);
      expired = true;
    }
    if (expired) this.emit('refused', [...this.refusedAddresses.keys()]);
    for (const record of this.peerTable.values()) if (record.live) this.documents.requestMissing(record, now);
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
    // Evidence for the runtime, about any destination (a peer never heard from too): nothing
    // listens there, so an alias its host still answers for is a leftover, not a live holder.
    const isNew = !this.refusedAddresses.has(endpoint.address);
    this.refusedAddresses.set(endpoint.address, this.now());
    if (isNew) this.emit('refused', [...this.refusedAddresses.keys()]);
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
      this.emit('peer-down', viewOf(refused), 'unreachable');
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

  /**
   * Runs `callback` after the sockets' already-queued datagrams have been read. An 'error' event
   * ends libuv's read loop for that socket, so what is still queued is read in the next poll
   * phase; an immediate scheduled from an immediate runs after that poll phase.
   */
  private afterQueuedPackets(callback: () => void): void {
    this.clock.soon(() => this.clock.soon(callback));
  }
}
