/**
 * What this node announces: its declaration, holdings (with epochs),
 * neighbour table and operator moves as content-addressed documents, and the
 * heartbeat body that names their digests and carries the held and unhealthy
 * VIPs as bitmaps over the declaration's sorted VIP list.
 */
import { DocumentKind, MAX_DECLARED_VIPS, encodeHeartbeatState } from './codec';
import type { Counters } from './counters';
import { OutgoingDocument } from './document-sync';
import { encodeHoldings, encodeMoves, encodeNeighbours, type Move } from './documents';
import type { LocalState } from './membership-types';
import { VipList } from './vip-list';

export class LocalDocuments {
  private localVips = new VipList([]);
  private declaration = new OutgoingDocument(DocumentKind.Declaration, Buffer.alloc(0));
  private holdings = new OutgoingDocument(DocumentKind.Holdings, Buffer.alloc(0));
  private neighbours = new OutgoingDocument(DocumentKind.Neighbours, Buffer.alloc(0));
  private moves = new OutgoingDocument(DocumentKind.Moves, Buffer.alloc(0));
  /** The current heartbeat body. */
  heartbeat: Buffer;

  constructor(
    private readonly vipsOf: (declaration: Buffer) => string[],
    private readonly maxNeighbours: number,
    private readonly counter: Counters,
  ) {
    this.heartbeat = this.buildHeartbeat(new Set(), new Set());
  }

  /**
   * Takes a new local state; true when peers must hear of it now (the heartbeat, the holdings
   * or the moves changed). Throws, taking nothing, for a bad move or declaration.
   */
  set(state: LocalState): boolean {
    // Encoded first: a bad move must throw before anything else of the new state is taken.
    const movesBytes = encodeMoves(state.moves ?? new Map<string, Move>());
    if (!state.declaration.equals(this.declaration.bytes)) {
      const vips = new VipList(state.declaration.length ? this.vipsOf(state.declaration) : []);
      if (vips.size > MAX_DECLARED_VIPS) throw new Error(`mta-vip membership: at most ${MAX_DECLARED_VIPS} VIPs per node (declared ${vips.size})`);
      this.declaration = new OutgoingDocument(DocumentKind.Declaration, Buffer.from(state.declaration));
      this.localVips = vips;
    }
    const holdingsBytes = encodeHoldings(state.holdings);
    const holdingsChanged = !holdingsBytes.equals(this.holdings.bytes);
    if (holdingsChanged) this.holdings = new OutgoingDocument(DocumentKind.Holdings, holdingsBytes);
    const neighbours = encodeNeighbours(state.neighbours ?? [], this.maxNeighbours);
    if (neighbours.truncated) this.counter.add('neighbours_truncated', neighbours.truncated);
    if (!neighbours.bytes.equals(this.neighbours.bytes)) this.neighbours = new OutgoingDocument(DocumentKind.Neighbours, neighbours.bytes);
    const movesChanged = !movesBytes.equals(this.moves.bytes);
    if (movesChanged) this.moves = new OutgoingDocument(DocumentKind.Moves, movesBytes);
    const body = this.buildHeartbeat(state.holdings.keys(), state.unhealthy);
    const changed = !body.equals(this.heartbeat);
    this.heartbeat = body;
    return changed || holdingsChanged || movesChanged;
  }

  document(kind: DocumentKind): OutgoingDocument {
    if (kind === DocumentKind.Declaration) return this.declaration;
    if (kind === DocumentKind.Holdings) return this.holdings;
    if (kind === DocumentKind.Moves) return this.moves;
    return this.neighbours;
  }

  private buildHeartbeat(held: Iterable<string>, unhealthy: Set<string> | 'all'): Buffer {
    const heldMap = this.localVips.toBitmap(held);
    if (heldMap.undeclared.length) this.counter.add('held_undeclared', heldMap.undeclared.length);
    const unhealthyMap = unhealthy === 'all' || unhealthy.size === 0 ? null : this.localVips.toBitmap(unhealthy).bitmap;
    return encodeHeartbeatState({
      allUnhealthy: unhealthy === 'all',
      declarationDigest: this.declaration.digest,
      holdingsDigest: this.holdings.digest,
      neighboursDigest: this.neighbours.digest,
      movesDigest: this.moves.digest,
      vipCount: this.localVips.size,
      held: heldMap.bitmap,
      unhealthy: unhealthyMap,
    });
  }
}
