// Remembers which relayed messages were delivered, so a sender that retries
// (because our 250 got lost) is answered 250 again without a second delivery.
// Bounded in size (oldest first out) and in time (entries expire after ttlMs).

import { createHash } from 'node:crypto';
import type { RawMessage } from './types';

export interface RelayDedupeOptions {
  /** Most keys remembered (default 100000). */
  max?: number;
  /** How long a delivered key is remembered, in ms (default 24 h). */
  ttlMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

/** 'new': deliver it; 'delivered': already delivered, answer 250; 'in-flight': a copy is being delivered right now. */
export type DedupeVerdict = 'new' | 'delivered' | 'in-flight';

/**
 * The key of a relayed message: binding + Message-ID (or the body digest
 * without one) + envelope + the id of the last mta-vip relay hop it carries.
 * The hop id tells a retry from a return: a sender retrying one queue entry
 * resends that entry's bytes (same hop id: answered 'Already accepted'),
 * while a message that went on from here and comes back (its binding moved
 * meanwhile: here, there, here again) carries the newer hop's id and is a
 * delivery to make, not a duplicate to drop.
 */
export function relayKey(binding: string, message: RawMessage): string {
  const hash = createHash('sha256');
  hash.update(`${binding}\0`);
  const hop = lastRelayHop(message.raw);
  if (hop) hash.update(`hop:${hop}\0`);
  if (message.messageId) hash.update(`id:${message.messageId}\0`);
  else hash.update('raw:').update(message.raw).update('\0');
  hash.update(`${message.envelope.from}\0`);
  for (const to of [...message.envelope.to].sort()) hash.update(`${to}\0`);
  return hash.digest('base64url');
}

/** Bounded LRU with TTL of relay keys. */
export class RelayDedupe {
  private readonly max: number;
  private readonly ttlMs: number;
  private readonly now: () => number;
  // Map keeps insertion order: the first key is the oldest.
  private readonly delivered = new Map<string, number>();
  private readonly inFlight = new Set<string>();

  constructor(options: RelayDedupeOptions = {}) {
    this.max = options.max ?? 100000;
    this.ttlMs = options.ttlMs ?? 24 * 60 * 60 * 1000;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.delivered.size;
  }

  /** Claims `key` for delivery: 'new' means the caller delivers and then calls done() or failed(). */
  claim(key: string): DedupeVerdict {
    const at = this.delivered.get(key);
    if (at !== undefined) {
      if (this.now() - at < this.ttlMs) return 'delivered';
      this.delivered.delete(key);
    }
    if (this.inFlight.has(key)) return 'in-flight';
    this.inFlight.add(key);
    return 'new';
  }

  /** The claimed message was handed on: remember it. */
  done(key: string): void {
    this.inFlight.delete(key);
    this.delivered.delete(key);
    this.delivered.set(key, this.now());
    while (this.delivered.size > this.max) {
      const oldest = this.delivered.keys().next().value;
      if (oldest === undefined) break;
      this.delivered.delete(oldest);
    }
  }

  /** The claimed message was not delivered: a retry may deliver it. */
  failed(key: string): void {
    this.inFlight.delete(key);
  }
}

const TRACE = /^Received: from \S+ by \S+ \(mta-vip relay\) id ([A-Za-z0-9_-]{8,64});/im;

/** The Received trace line a relay receiver prepends before handing a message to its MTA's queue (RFC 5321 section 4.4). */
export function relayTraceLine(from: string, by: string, id: string, date: Date = new Date()): string {
  const safe = (name: string): string => name.replace(/[^A-Za-z0-9._-]/g, '_') || 'unknown';
  return `Received: from ${safe(from)} by ${safe(by)} (mta-vip relay) id ${id}; ${date.toUTCString()}\r\n`;
}

/** The id of the newest mta-vip relay trace in the message's header block, or null. */
export function lastRelayHop(raw: Buffer): string | null {
  const end = raw.indexOf('\r\n\r\n');
  const head = raw.subarray(0, end < 0 ? Math.min(raw.length, 64 * 1024) : end).toString('latin1');
  return TRACE.exec(head)?.[1] ?? null;
}
