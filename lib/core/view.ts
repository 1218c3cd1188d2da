/**
 * The cluster as one node sees it at one instant: the input of the election.
 * The runtime builds it from heartbeats; tests build it by hand.
 */
import type { NodeDeclaration } from './declaration';

export interface NodeView {
  node: string;
  /** The node's last known declaration (also kept for dead nodes, for reporting). */
  declaration: NodeDeclaration;
  /** Heard from within dead-after. */
  live: boolean;
  /** When it (last) became live, same clock as ClusterView.now; drives the preempt hold-down. */
  liveSince: number;
  /** VIPs it advertises holding, with the epoch of its claim. */
  holding: ReadonlyMap<string, number>;
  /** VIPs it cannot serve (bind failure, link down), or 'all'. */
  unhealthy: ReadonlySet<string> | 'all';
}

export interface ClusterView {
  /** Current time in ms on the runtime's clock (the core never reads a clock). */
  now: number;
  /** The node computing; elect ignores it (same view, same assignment on every node). */
  self?: string;
  /** Every known node, live or dead, in any order. */
  nodes: NodeView[];
  /** Operator moves: ip → node. */
  overrides?: ReadonlyMap<string, string>;
}

/**
 * True when the live nodes of `view` are a strict majority of `knownNodes`
 * (every node ever configured or seen, including this one). With an even split
 * neither side has quorum, which is the point: never two sides serving.
 */
export function hasQuorum(view: ClusterView, knownNodes: Iterable<string>): boolean {
  const known = new Set(knownNodes);
  for (const n of view.nodes) known.add(n.node);
  let live = 0;
  for (const n of view.nodes) if (n.live) live++;
  return live * 2 > known.size;
}

/** True when `node` is healthy for `ip`. */
export function isHealthy(node: NodeView, ip: string): boolean {
  return node.unhealthy !== 'all' && !node.unhealthy.has(ip);
}
