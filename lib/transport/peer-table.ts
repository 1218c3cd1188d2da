/**
 * The membership's peer table and failure detector, without I/O: one record
 * per peer incarnation, what its last heartbeat and documents say (its public
 * PeerState), documents stored once verified, and who is dead by silence.
 * Membership feeds it decoded packets and the time; it answers with records
 * and the peers that went down.
 */
import { LossEstimate, silenceLimitMs } from './loss-estimate';
import { DIGEST_BYTES, DocumentKind, MAX_DECLARED_VIPS, witnessId, type Heartbeat, type Witness } from './codec';
import type { Counters } from './counters';
import { OutgoingDocument, type Reassembly } from './document-sync';
import { decodeHoldings, decodeMoves, decodeNeighbours, type Move, type Neighbour } from './documents';
import type { PeerState } from './membership-types';
import { ReplayGuard } from './replay-guard';
import { VipList } from './vip-list';

export interface KnownDeclaration {
  digest: Buffer;
  bytes: Buffer;
  vips: VipList;
}

export interface PendingRequest {
  at: number;
  from: number;
}

/** Everything this node keeps about one peer incarnation. */
export interface PeerRecord {
  node: string;
  incarnation: bigint;
  address: string;
  port: number;
  replay: ReplayGuard;
  live: boolean;
  liveSince: number;
  lastHeard: number;
  /**
   * When its last heartbeat really arrived. lastHeard is moved on after this process stalls
   * (forgiveStall), which must not make this node witness a peer it did not hear.
   */
  heardAt: number;
  /**
   * The latest moment another live peer heard this one's own heartbeat, by its witness (only
   * ever later than lastHeard when our copy of a heartbeat was lost and theirs was not).
   */
  vouchedAt: number;
  /** How much of its heartbeat stream is lost on the way here (stretches its silence limit). */
  loss: LossEstimate;
  /** The loss this node reckons with for it (its own stream's or all streams', the larger), 0..1; updated by expire. */
  lossRate: number;
  /** The silence after which it is declared dead here (dead-after, stretched by lossRate); updated by expire. */
  silenceLimitMs: number;
  /** This silence is already counted in `silences_tolerated`. */
  vouchCounted: boolean;
  /** How witnesses name this incarnation (witnessId as a latin1 string, a map key). */
  witnessKey: string;
  leaving: boolean;
  /** Copy of the last heartbeat's state part, to notice changes with one compare. */
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

export const ZERO_DIGEST = Buffer.alloc(DIGEST_BYTES);
export const KINDS = [DocumentKind.Declaration, DocumentKind.Holdings, DocumentKind.Neighbours, DocumentKind.Moves] as const;
/** SHA-256 of the empty document: what a node without moves announces. */
export const EMPTY_DOCUMENT_DIGEST = new OutgoingDocument(DocumentKind.Moves, Buffer.alloc(0)).digest;

export interface PeerTableLimits {
  maxPeers: number;
  maxNeighbours: number;
  deadAfterMs: number;
  heartbeatMs: number;
  reassemblyTimeoutMs: number;
  /** Declared VIPs of a declaration (may throw for bad input). */
  vipsOf: (declaration: Buffer) => string[];
}

/**
 * How long witnesses may keep a peer live whose own heartbeats no longer reach this node,
 * counted from its last one here, in silence limits (dead-after on a clean network). Past it the
 * peer is dead here whatever others hear: a lasting one-way cut would otherwise keep a frozen
 * copy of its state live forever (its releases and claims unseen), which the probe and the
 * claim sniffer handle better.
 */
export const VOUCH_LIMIT_SILENCES = 4;

export class PeerTable {
  private readonly records = new Map<string, PeerRecord>();
  /** The same records by witnessKey. */
  private readonly byWitness = new Map<string, PeerRecord>();
  /**
   * Loss over every peer's stream together. Loss that starts hits all of them (most often it is
   * this node's own link), so a peer's limit stretches as soon as the node as a whole sees loss,
   * before that one stream alone has shown enough of it: the first second of loss is when a
   * per-peer estimate knows least. A crash on a clean network shows no loss anywhere.
   */
  private readonly anyLoss: LossEstimate;
  /** When this process last stalled: heartbeats queued meanwhile arrive in a burst, which is no measure of loss. */
  private stalledAt = -Infinity;

  constructor(
    private readonly limits: PeerTableLimits,
    private readonly counter: Counters,
  ) {
    this.anyLoss = new LossEstimate(limits.heartbeatMs);
  }

  get(node: string): PeerRecord | undefined {
    return this.records.get(node);
  }

  values(): IterableIterator<PeerRecord> {
    return this.records.values();
  }

  get size(): number {
    return this.records.size;
  }

  /** The record for a first packet from `node`, or null when the table is full of live peers. */
  add(node: string, incarnation: bigint, remote: { address: string; port: number }): PeerRecord | null {
    if (!this.makeRoom()) return null;
    const record = newRecord(node, incarnation, remote, this.limits);
    this.records.set(node, record);
    this.byWitness.set(record.witnessKey, record);
    return record;
  }

  /** A higher incarnation: forget all state of the old one except its declarations (content-addressed). */
  restart(old: PeerRecord, incarnation: bigint, remote: { address: string; port: number }, now: number): PeerRecord {
    discardTransfers(old);
    const record = newRecord(old.node, incarnation, remote, this.limits);
    record.declarations = old.declarations;
    // The path is the same: a restarted peer's heartbeats are as likely to be lost as before.
    record.loss = old.loss;
    this.byWitness.delete(old.witnessKey);
    this.byWitness.set(record.witnessKey, record);
    if (old.live) {
      record.live = true;
      record.liveSince = now;
      record.lastHeard = now;
    }
    this.records.set(old.node, record);
    return record;
  }

  /**
   * This process did not run for `lagMs`: peers' silence meanwhile proves nothing. Past
   * dead-after, listen again for one dead-after period; a shorter stall still ate into every
   * peer's allowance, so only time this process ran counts (a 150 ms stop right after a
   * heartbeat would otherwise make a 200 ms dead-after expire on the first tick).
   */
  forgiveStall(lagMs: number, now: number): void {
    this.stalledAt = now;
    for (const record of this.records.values()) {
      if (!record.live) continue;
      record.lastHeard = lagMs > this.limits.deadAfterMs ? now : Math.min(now, record.lastHeard + lagMs);
    }
  }

  /**
   * A heartbeat of `record`'s own arrived now. The gap since the one before measures loss only
   * when it was shorter than dead-after: a longer silence was tolerated (witnesses, or a limit
   * already stretched), and is as likely a one-way cut or a stalled peer as loss; counting it
   * would stretch every limit after each such fault and slow the next real failover.
   */
  heard(record: PeerRecord, now: number): void {
    const gap = now - record.heardAt;
    if (record.live && record.heardAt > this.stalledAt && gap <= this.limits.deadAfterMs + this.limits.heartbeatMs / 2) {
      record.loss.heard(now, gap);
      this.anyLoss.heard(now, gap);
    }
    record.heardAt = now;
    record.lastHeard = now;
  }

  /**
   * `from`'s heartbeat says it heard these peers' own heartbeats so long ago. Only live peers
   * gain (a witness never revives one declared dead: only its own heartbeat does), and only what
   * `from` heard itself counts, never what it was told, so a dead node's witnesses fade with its
   * last real heartbeat: a crash is declared at the same moment as without witnesses.
   */
  vouch(from: PeerRecord, witnesses: readonly Witness[], now: number): void {
    for (const witness of witnesses) {
      const record = this.byWitness.get(witness.id.toString('latin1'));
      if (!record || record === from || !record.live || record.leaving) continue;
      const at = now - witness.ageMs;
      if (at > record.vouchedAt) record.vouchedAt = at;
    }
  }

  /** The live peers whose own heartbeat this node heard within dead-after; the freshest `room` of them when they do not all fit. */
  witnesses(now: number, room: number): Witness[] {
    const heard: Array<{ record: PeerRecord; ageMs: number }> = [];
    for (const record of this.records.values()) {
      const ageMs = now - record.heardAt;
      if (record.live && !record.leaving && ageMs <= this.limits.deadAfterMs) heard.push({ record, ageMs });
    }
    if (heard.length > room) heard.sort((a, b) => a.ageMs - b.ageMs).length = room;
    return heard.map(({ record, ageMs }) => ({ id: Buffer.from(record.witnessKey, 'latin1'), ageMs }));
  }

  /**
   * Declares silent peers dead and drops stalled transfers; returns the peers that went down now.
   * Silent means: no heartbeat of its own, and none that a live peer heard, within its silence
   * limit (dead-after, stretched by the loss measured on its stream: see loss-estimate.ts); or
   * witnesses alone have kept it live for VOUCH_LIMIT_SILENCES limits. Random loss then has to
   * take a peer's heartbeats to every node at once, for longer than loss here makes likely,
   * before anyone calls it dead; a crash is declared one limit after its last heartbeat anywhere.
   */
  expire(now: number): PeerRecord[] {
    const down: PeerRecord[] = [];
    for (const record of this.records.values()) {
      for (const [kind, reassembly] of record.incoming) {
        if (now - reassembly.lastProgressAt > this.limits.reassemblyTimeoutMs) {
          reassembly.release();
          record.incoming.delete(kind);
          this.counter.add('reassembly_timeouts');
        }
      }
      if (!record.live) continue;
      record.lossRate = Math.max(record.loss.rate(), this.anyLoss.rate());
      record.silenceLimitMs = silenceLimitMs(record.lossRate, this.limits.heartbeatMs, this.limits.deadAfterMs);
      if (now - record.lastHeard <= this.limits.deadAfterMs) {
        record.vouchCounted = false;
        continue;
      }
      const limit = record.silenceLimitMs;
      const evidence = Math.max(record.lastHeard, record.vouchedAt);
      if (now - evidence <= limit && now - record.lastHeard <= VOUCH_LIMIT_SILENCES * limit) {
        if (!record.vouchCounted) this.counter.add('silences_tolerated');
        record.vouchCounted = true;
        continue;
      }
      record.live = false;
      down.push(record);
    }
    return down;
  }

  /** Stores a verified document; false when its content does not decode. */
  applyDocument(record: PeerRecord, kind: DocumentKind, digest: Buffer, bytes: Buffer): boolean {
    if (kind === DocumentKind.Declaration) {
      let vips: VipList;
      try {
        vips = new VipList(bytes.length ? this.limits.vipsOf(bytes) : []);
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
    if (!list || list.length > this.limits.maxNeighbours) return false;
    record.neighboursDoc = { digest, list };
    return true;
  }

  /** Recomputes the public view of a peer from its last heartbeat and documents. */
  refreshView(record: PeerRecord): void {
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

  /** True when the document of `kind` whose digest (or its prefix) the heartbeat announces is here. */
  has(record: PeerRecord, kind: DocumentKind, digest: Buffer): boolean {
    if (kind === DocumentKind.Declaration) return this.findDeclaration(record, digest) !== null;
    const doc = kind === DocumentKind.Holdings ? record.holdingsDoc : kind === DocumentKind.Moves ? record.movesDoc : record.neighboursDoc;
    return doc !== null && prefixEquals(doc.digest, digest);
  }

  /** The declaration with this digest: from the peer, or shared with another peer (same config). */
  private findDeclaration(record: PeerRecord, digest: Buffer): KnownDeclaration | null {
    const own = record.declarations.find((d) => d.digest.equals(digest));
    if (own) return own;
    for (const other of this.records.values()) {
      const shared = other.declarations.find((d) => d.digest.equals(digest));
      if (shared) {
        this.counter.add('declarations_shared');
        record.declarations = [shared, ...record.declarations].slice(0, 2);
        return shared;
      }
    }
    return null;
  }

  /** Evicts the longest-silent dead peer when the table is full; false if all are live. */
  private makeRoom(): boolean {
    if (this.records.size < this.limits.maxPeers) return true;
    let oldest: PeerRecord | null = null;
    for (const record of this.records.values()) {
      if (!record.live && (oldest === null || record.lastHeard < oldest.lastHeard)) oldest = record;
    }
    if (!oldest) return false;
    discardTransfers(oldest);
    this.records.delete(oldest.node);
    this.byWitness.delete(oldest.witnessKey);
    this.counter.add('peers_evicted');
    return true;
  }
}

export function discardTransfers(record: PeerRecord): void {
  for (const reassembly of record.incoming.values()) reassembly.release();
  record.incoming.clear();
  record.requested.clear();
}

/** A fresh PeerState snapshot (the maps are shared with the record: do not mutate). */
export function viewOf(record: PeerRecord): PeerState {
  return {
    ...record.view,
    node: record.node,
    incarnation: record.incarnation,
    address: record.address,
    port: record.port,
    live: record.live,
    liveSince: record.liveSince,
    lastHeard: record.lastHeard,
    lossRate: record.lossRate,
    silenceLimitMs: record.silenceLimitMs,
    leaving: record.leaving,
  };
}

/** The digest (or its 8-byte prefix) a heartbeat announces for a document kind. */
export function announcedDigest(beat: Heartbeat, kind: DocumentKind): Buffer {
  if (kind === DocumentKind.Declaration) return beat.declarationDigest;
  if (kind === DocumentKind.Holdings) return beat.holdingsDigest;
  if (kind === DocumentKind.Moves) return beat.movesDigest;
  return beat.neighboursDigest;
}

export function prefixEquals(full: Buffer, prefix: Buffer): boolean {
  return full.subarray(0, prefix.length).equals(prefix);
}

function newRecord(node: string, incarnation: bigint, remote: { address: string; port: number }, limits: Pick<PeerTableLimits, 'heartbeatMs' | 'deadAfterMs'>): PeerRecord {
  return {
    node,
    incarnation,
    address: remote.address,
    port: remote.port,
    replay: new ReplayGuard(),
    live: false,
    liveSince: 0,
    lastHeard: 0,
    heardAt: -Infinity,
    vouchedAt: -Infinity,
    loss: new LossEstimate(limits.heartbeatMs),
    lossRate: 0,
    silenceLimitMs: limits.deadAfterMs,
    vouchCounted: false,
    witnessKey: witnessId(node, incarnation).toString('latin1'),
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
      lossRate: 0,
      silenceLimitMs: limits.deadAfterMs,
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
