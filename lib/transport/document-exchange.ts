/**
 * The document exchange: peers' declarations, holdings (epochs), neighbour
 * tables and moves travel as chunked, content-addressed documents, pushed when
 * they change and asked for (a window of chunks at a time) when a heartbeat
 * announces a digest we do not have. Chunks are reassembled within a memory
 * budget and stored in the peer table once they verify.
 */
import { CHUNK_WINDOW, OutgoingDocument, Reassembly, type ReassemblyBudget } from './document-sync';
import { DIGEST_BYTES, DocumentKind, MAX_DECLARED_VIPS, PacketType, encodeChunk, encodeRequest, type Chunk } from './codec';
import type { Counters } from './counters';
import { MAX_HOLDING_ENTRY_BYTES, MAX_MOVES, MAX_MOVE_ENTRY_BYTES, MAX_NEIGHBOUR_ENTRY_BYTES } from './documents';
import type { Endpoint } from './address';
import { KINDS, announcedDigest, prefixEquals, type PeerRecord, type PeerTable } from './peer-table';

export interface ExchangeDeps {
  table: PeerTable;
  counter: Counters;
  budget: ReassemblyBudget;
  send(type: PacketType, body: Buffer, to: Endpoint[]): void;
  running(): boolean;
  heartbeatMs: number;
  neighboursIntervalMs: number;
  maxDeclarationBytes: number;
  maxNeighbours: number;
}

export class DocumentExchange {
  constructor(private readonly deps: ExchangeDeps) {}

  /** A verified chunk of one of the peer's documents; the kind of the document it completed (the peer's view is refreshed), or null. */
  onChunk(record: PeerRecord, chunk: Chunk, now: number): DocumentKind | null {
    this.deps.counter.add('chunks_received');
    const limit = this.documentLimit(chunk.kind);
    if (chunk.length > limit) {
      this.deps.counter.add('chunks_discarded');
      return null;
    }
    let reassembly = record.incoming.get(chunk.kind);
    if (reassembly && !reassembly.matches(chunk)) {
      // A newer document replaces an unfinished older one of the same kind.
      reassembly.release();
      reassembly = undefined;
    }
    if (!reassembly) {
      if (this.deps.table.has(record, chunk.kind, chunk.digest)) return null;
      reassembly = new Reassembly(chunk.kind, Buffer.from(chunk.digest), chunk.length, chunk.count, this.deps.budget, now);
      record.incoming.set(chunk.kind, reassembly);
    }
    const outcome = reassembly.add(chunk, now);
    if (outcome === 'over-budget') this.deps.counter.add('chunks_discarded');
    if (!reassembly.complete) {
      // The window we asked for is complete: ask for the next one at once.
      const pending = record.requested.get(chunk.kind);
      if (outcome === 'added' && pending && reassembly.firstMissing(pending.from) >= pending.from + CHUNK_WINDOW) {
        this.sendRequest(record, chunk.kind, reassembly.digest, reassembly.firstMissing(), now);
      }
      return null;
    }
    record.incoming.delete(chunk.kind);
    record.requested.delete(chunk.kind);
    const bytes = reassembly.assemble();
    reassembly.release();
    if (bytes === null || !this.deps.table.applyDocument(record, chunk.kind, reassembly.digest, bytes)) {
      this.deps.counter.add('documents_rejected');
      return null;
    }
    this.deps.counter.add('documents_completed');
    this.deps.table.refreshView(record);
    return chunk.kind;
  }

  /** Asks a live peer for each document its heartbeat announces that we do not have. */
  requestMissing(record: PeerRecord, now: number): void {
    const beat = record.beat;
    if (!beat || !record.live || record.leaving || !this.deps.running()) return;
    for (const kind of KINDS) {
      const announced = announcedDigest(beat, kind);
      if (this.deps.table.has(record, kind, announced)) continue;
      const reassembly = record.incoming.get(kind);
      const inProgress = reassembly && prefixEquals(reassembly.digest, announced) ? reassembly : undefined;
      const from = inProgress ? inProgress.firstMissing() : 0;
      const pending = record.requested.get(kind);
      const retryMs = kind === DocumentKind.Neighbours ? this.deps.neighboursIntervalMs : Math.max(this.deps.heartbeatMs, 20);
      // Ask again only when nothing came for retryMs: a transfer still arriving (a window
      // asked for, or a push) would otherwise be sent again while its chunks are in flight.
      const lastActivity = Math.max(pending?.at ?? -Infinity, inProgress?.lastProgressAt ?? -Infinity);
      if (now - lastActivity < retryMs) continue;
      this.sendRequest(record, kind, inProgress ? inProgress.digest : announced, from, now);
    }
  }

  private sendRequest(record: PeerRecord, kind: DocumentKind, digest: Buffer, from: number, now: number): void {
    const padded = Buffer.alloc(DIGEST_BYTES);
    digest.copy(padded, 0, 0, Math.min(digest.length, DIGEST_BYTES));
    record.requested.set(kind, { at: now, from });
    this.deps.counter.add('requests_sent');
    this.deps.send(PacketType.Request, encodeRequest({ kind, target: record.node, digest: padded, from }), [{ address: record.address, port: record.port }]);
  }

  private documentLimit(kind: DocumentKind): number {
    if (kind === DocumentKind.Declaration) return this.deps.maxDeclarationBytes;
    if (kind === DocumentKind.Holdings) return MAX_DECLARED_VIPS * MAX_HOLDING_ENTRY_BYTES;
    if (kind === DocumentKind.Moves) return MAX_MOVES * MAX_MOVE_ENTRY_BYTES;
    return this.deps.maxNeighbours * MAX_NEIGHBOUR_ENTRY_BYTES;
  }

  sendChunks(document: OutgoingDocument, from: number, to: Endpoint[]): void {
    for (const index of document.window(from)) {
      this.deps.counter.add('chunks_sent');
      this.deps.send(PacketType.Chunk, encodeChunk(document.chunk(index)), to);
    }
  }
}
