/**
 * Integer form of declarations for the election's hot loop.
 *
 * An election at 4,096 VIPs × 32 nodes touches ~130,000 (node, VIP) pairs;
 * comparing strings and looking them up in maps for each pair would blow the
 * 5 ms budget. So every IP and name is interned once to a small integer, and
 * each declaration is turned once into typed arrays of those integers and
 * remembered (declarations are treated as immutable: build a new object to
 * change one). The tables only grow with the number of distinct IPs and names
 * ever seen, which a config bounds.
 */
import type { NodeDeclaration } from './declaration';
import { fnv1a } from './hash';
import { ipSortKey, parseIp, ParsedIp } from './ip';

/** Assigns small consecutive integers to strings. */
class Interner {
  readonly ids = new Map<string, number>();
  readonly texts: string[] = [];

  id(text: string): number {
    let id = this.ids.get(text);
    if (id === undefined) {
      id = this.texts.length;
      this.ids.set(text, id);
      this.texts.push(text);
    }
    return id;
  }
}

/** IPs: id, text, sort rank and hash. */
class IpTable extends Interner {
  readonly hashes: number[] = [];
  private keys: string[] = [];
  private rankOf = new Int32Array(0);
  private byRank = new Int32Array(0);
  private rankedCount = 0;

  override id(text: string): number {
    const before = this.texts.length;
    const id = super.id(text);
    if (id === before) {
      this.hashes.push(fnv1a(text));
      this.keys.push(ipSortKey(parseIp(text) as ParsedIp));
    }
    return id;
  }

  /** Sorts `ids` in place by address order. */
  sortByAddress(ids: Int32Array): Int32Array {
    if (this.rankedCount !== this.texts.length) this.rerank();
    const ranks = new Int32Array(ids.length);
    for (let i = 0; i < ids.length; i++) ranks[i] = this.rankOf[ids[i] as number] as number;
    ranks.sort();
    for (let i = 0; i < ids.length; i++) ids[i] = this.byRank[ranks[i] as number] as number;
    return ids;
  }

  private rerank(): void {
    const count = this.texts.length;
    const order = Array.from({ length: count }, (_, i) => i);
    const keys = this.keys;
    order.sort((a, b) => ((keys[a] as string) < (keys[b] as string) ? -1 : 1));
    this.rankOf = new Int32Array(count);
    this.byRank = new Int32Array(count);
    order.forEach((id, rank) => {
      this.rankOf[id] = rank;
      this.byRank[rank] = id;
    });
    this.rankedCount = count;
  }
}

export const ipTable = new IpTable();
/** Binding names, node names and service signatures share one table (ids are only compared for equality). */
export const nameTable = new Interner();

/** A declaration as parallel typed arrays, one slot per VIP. */
export interface DeclarationIndex {
  vip: Int32Array;
  /** nameTable id of the binding name, or -1. */
  binding: Int32Array;
  /** nameTable id of the preferred node, or -1. */
  preferred: Int32Array;
  /** nameTable id of the services signature (binding + ports + follows). */
  services: Int32Array;
  /** How many services the VIP carries here (a binding, each listener port, following): UNSAFE prefers more. */
  serviceCount: Int32Array;
  /** ipTable id of the leader when the VIP is a follower, or -1. */
  follows: Int32Array;
  /** Slot of each VIP by ipTable id. */
  slotOf: Map<number, number>;
}

const cache = new WeakMap<NodeDeclaration, DeclarationIndex>();
/**
 * Indexes by content hash. Nodes usually share one config (modulo the node
 * name, which is not part of the index), so equal declarations share one
 * index object and the election compares groups of nodes, not nodes.
 */
const shared = new Map<number, DeclarationIndex[]>();

function sameArray(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameIndex(a: DeclarationIndex, b: DeclarationIndex): boolean {
  return sameArray(a.vip, b.vip) && sameArray(a.binding, b.binding) && sameArray(a.preferred, b.preferred) && sameArray(a.services, b.services) && sameArray(a.follows, b.follows);
}

function contentHash(index: DeclarationIndex): number {
  let h = 0x811c9dc5 ^ index.vip.length;
  for (const array of [index.vip, index.binding, index.preferred, index.services, index.follows]) {
    for (let i = 0; i < array.length; i++) h = Math.imul(h ^ (array[i] as number), 0x01000193);
  }
  return h >>> 0;
}

/** How many services a VIP declaration carries: its binding, each listener port, following a leader. */
export function countServices(binding: string | null, ports: readonly number[], follows: string | null): number {
  return (binding === null ? 0 : 1) + ports.length + (follows === null ? 0 : 1);
}

/** Human-readable services of a VIP declaration, also used as its UNSAFE signature. */
export function describeServices(binding: string | null, ports: readonly number[], follows: string | null): string {
  const parts: string[] = [];
  if (binding !== null) parts.push(`binding ${JSON.stringify(binding)}`);
  if (ports.length) parts.push(`listener${ports.length > 1 ? 's' : ''} on port${ports.length > 1 ? 's' : ''} ${ports.join(', ')}`);
  if (follows !== null) parts.push(`following ${follows}`);
  return parts.join(' + ') || 'no services';
}

/**
 * The integer form of `d`, built once per declaration object; declarations
 * with equal content (whatever their node) get the same index object.
 */
export function indexDeclaration(d: NodeDeclaration): DeclarationIndex {
  let index = cache.get(d);
  if (index) return index;
  const n = d.vips.length;
  index = {
    vip: new Int32Array(n),
    binding: new Int32Array(n),
    preferred: new Int32Array(n),
    services: new Int32Array(n),
    serviceCount: new Int32Array(n),
    follows: new Int32Array(n),
    slotOf: new Map(),
  };
  for (let i = 0; i < n; i++) {
    const v = d.vips[i] as NonNullable<(typeof d.vips)[number]>;
    const id = ipTable.id(v.ip);
    index.vip[i] = id;
    index.slotOf.set(id, i);
    index.binding[i] = v.binding === null ? -1 : nameTable.id(v.binding);
    index.preferred[i] = v.preferred === null ? -1 : nameTable.id(v.preferred);
    index.services[i] = nameTable.id(describeServices(v.binding, v.ports, v.follows));
    index.serviceCount[i] = countServices(v.binding, v.ports, v.follows);
    index.follows[i] = v.follows === null ? -1 : ipTable.id(v.follows);
  }
  const hash = contentHash(index);
  const candidates = shared.get(hash) ?? [];
  const existing = candidates.find((c) => sameIndex(c, index as DeclarationIndex));
  if (existing) index = existing;
  else {
    candidates.push(index);
    shared.set(hash, candidates);
  }
  cache.set(d, index);
  return index;
}
