/**
 * Builds the election's input (a ClusterView) from what this node knows: its
 * own declaration and holdings, and the peers' heartbeats. Pure: the runtime
 * passes the membership's peer table in, nothing here reads a socket or a clock.
 */
import { decodeDeclaration, type ClusterView, type NodeDeclaration, type NodeView } from '../core';

/** What the runtime knows about one peer (a subset of the transport's PeerState). */
export interface PeerSnapshot {
  node: string;
  live: boolean;
  liveSince: number;
  declaration: Buffer | null;
  holdings: ReadonlyMap<string, number>;
  unhealthy: ReadonlySet<string> | 'all';
}

export interface SelfSnapshot {
  node: string;
  declaration: NodeDeclaration;
  liveSince: number;
  holding: ReadonlyMap<string, number>;
  unhealthy: ReadonlySet<string> | 'all';
}

/**
 * Decodes peer declarations once per distinct byte string: a cluster of 32
 * nodes at 4,096 VIPs would otherwise parse megabytes of JSON every heartbeat.
 */
export class DeclarationCache {
  private readonly byBytes = new Map<string, NodeDeclaration | Error>();
  private static readonly MAX = 1024;

  decode(bytes: Buffer): NodeDeclaration | Error {
    const key = bytes.toString('base64');
    let found = this.byBytes.get(key);
    if (found === undefined) {
      try {
        found = decodeDeclaration(bytes);
      } catch (err) {
        found = err as Error;
      }
      // Bounded: a peer changing its config over and over must not grow this without end.
      if (this.byBytes.size >= DeclarationCache.MAX) this.byBytes.clear();
      this.byBytes.set(key, found);
    }
    return found;
  }

  /** The sorted VIP list of a declaration (what the transport's bitmaps index into). */
  vipsOf(bytes: Buffer): string[] {
    const decoded = this.decode(bytes);
    if (decoded instanceof Error) throw decoded;
    return decoded.vips.map((v) => v.ip);
  }
}

/**
 * The view: this node (always live) and every peer whose declaration is known.
 * A peer with an unknown or undecodable declaration is left out: we cannot tell
 * what it declares or holds, and it joins as soon as its declaration arrives
 * (a few heartbeats). A peer whose epochs have not arrived yet is kept: its
 * held set comes from the heartbeat bitmap (epoch 0 until the epochs arrive),
 * and leaving it out would make its VIPs look free. A declaration naming another node than the peer is
 * refused the same way, so one node cannot speak for another.
 */
export function buildView(now: number, self: SelfSnapshot, peers: Iterable<PeerSnapshot>, cache: DeclarationCache, overrides?: ReadonlyMap<string, string>): ClusterView {
  const nodes: NodeView[] = [
    { node: self.node, declaration: self.declaration, live: true, liveSince: self.liveSince, holding: self.holding, unhealthy: self.unhealthy },
  ];
  for (const peer of peers) {
    if (peer.node === self.node || !peer.declaration) continue;
    const declaration = cache.decode(peer.declaration);
    if (declaration instanceof Error || declaration.node !== peer.node) continue;
    nodes.push({
      node: peer.node,
      declaration,
      live: peer.live,
      liveSince: peer.liveSince,
      holding: peer.live ? peer.holdings : new Map(),
      unhealthy: peer.unhealthy,
    });
  }
  return overrides ? { now, self: self.node, nodes, overrides } : { now, self: self.node, nodes };
}
