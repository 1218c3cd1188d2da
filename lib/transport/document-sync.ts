/**
 * Chunked transfer of documents (declarations, holdings, neighbour tables): splitting on the
 * sending side, bounded reassembly on the receiving side. Transfers are pulled by the receiver
 * a window at a time (see Membership), so a lost chunk costs one re-request, not a restart.
 */
import { createHash } from 'node:crypto';
import { CHUNK_DATA_BYTES, chunkCount, type Chunk, type DocumentKind } from './codec';

/** Chunks sent in answer to one request (≈ 45 KB: well inside a default socket receive buffer). */
export const CHUNK_WINDOW = 32;

export function sha256(bytes: Buffer): Buffer {
  return createHash('sha256').update(bytes).digest();
}

/** A local document ready to be served in chunks. */
export class OutgoingDocument {
  readonly digest: Buffer;
  readonly count: number;

  constructor(
    readonly kind: DocumentKind,
    readonly bytes: Buffer,
  ) {
    this.digest = sha256(bytes);
    this.count = chunkCount(bytes.length);
  }

  chunk(index: number): Chunk {
    const start = index * CHUNK_DATA_BYTES;
    return {
      kind: this.kind,
      digest: this.digest,
      length: this.bytes.length,
      index,
      count: this.count,
      data: this.bytes.subarray(start, Math.min(start + CHUNK_DATA_BYTES, this.bytes.length)),
    };
  }

  /** Indexes of the window starting at `from` (empty when `from` is past the end). */
  window(from: number): number[] {
    const out: number[] = [];
    for (let i = from; i < Math.min(from + CHUNK_WINDOW, this.count); i++) out.push(i);
    return out;
  }
}

/** Shared cap on bytes held by all unfinished reassemblies of one Membership. */
export class ReassemblyBudget {
  used = 0;
  constructor(readonly max: number) {}

  take(bytes: number): boolean {
    if (this.used + bytes > this.max) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }
}

/** Result of offering a chunk to a reassembly. */
export type ChunkOutcome = 'added' | 'duplicate' | 'over-budget' | 'mismatch';

/**
 * One document being received from one peer. Chunks are copied out of the packet (so the
 * receive buffer is not retained) and counted against the shared budget until `release`.
 */
export class Reassembly {
  private readonly chunks: Array<Buffer | undefined>;
  private received = 0;
  private bytes = 0;
  lastProgressAt: number;

  constructor(
    readonly kind: DocumentKind,
    readonly digest: Buffer,
    readonly length: number,
    readonly count: number,
    private readonly budget: ReassemblyBudget,
    now: number,
  ) {
    this.chunks = new Array<Buffer | undefined>(count);
    this.lastProgressAt = now;
  }

  /** True when `chunk` belongs to this document. */
  matches(chunk: Chunk): boolean {
    return chunk.kind === this.kind && chunk.length === this.length && chunk.digest.equals(this.digest);
  }

  add(chunk: Chunk, now: number): ChunkOutcome {
    if (!this.matches(chunk)) return 'mismatch';
    if (this.chunks[chunk.index] !== undefined) return 'duplicate';
    if (!this.budget.take(chunk.data.length)) return 'over-budget';
    this.chunks[chunk.index] = Buffer.from(chunk.data);
    this.received++;
    this.bytes += chunk.data.length;
    this.lastProgressAt = now;
    return 'added';
  }

  get complete(): boolean {
    return this.received === this.count;
  }

  /** First index not yet received at or after `from` (`count` when none is missing). */
  firstMissing(from = 0): number {
    for (let i = from; i < this.count; i++) if (this.chunks[i] === undefined) return i;
    return this.count;
  }

  /** The whole document if complete and its SHA-256 matches the announced digest, else null. */
  assemble(): Buffer | null {
    if (!this.complete) return null;
    const whole = Buffer.concat(this.chunks as Buffer[], this.length);
    return sha256(whole).equals(this.digest) ? whole : null;
  }

  /** Returns this reassembly's bytes to the budget; call exactly once when discarding it. */
  release(): void {
    this.budget.give(this.bytes);
    this.bytes = 0;
    this.chunks.fill(undefined);
  }
}
