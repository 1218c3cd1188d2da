/**
 * The fault plan of the chaos campaign: a list of faults drawn from one seed,
 * so a run that found something is replayed with `--seed S` (the faults, their
 * targets and durations are the same; the machine's timing is not).
 *
 * Faults come one after another, each held for a while and then healed, with
 * a calm gap (sometimes none) before the next: every kind of crash, stall and
 * cut an MTA cluster meets, on any node, in any order.
 */
import { Rng } from '../../test/sim/rng';

export type FaultKind =
  /** SIGKILL of the node's process, restarted after the hold. */
  | 'kill'
  /** SIGTERM to every process of the node (the node and its guardian), as systemd's control-group stop and Ctrl-C do; restarted after the hold. */
  | 'term'
  /** SIGSTOP for the hold, then SIGCONT: a stall (GC pause, swapped out, blocked loop). */
  | 'stop'
  /** eth0 down for the hold. */
  | 'link'
  /** Random loss of `percent` % of IP packets both ways. */
  | 'loss'
  /** Inbound UDP on the cluster port dropped: the node sends, hears no peer, still sees ARP. */
  | 'deaf'
  /** Outbound UDP on the cluster port dropped: peers hear nothing from the node, it hears them. */
  | 'mute'
  /** The nodes split into `side` and the rest: every frame between the two sides dropped. */
  | 'partition'
  /** The node restarted with a config that names `binding`'s IP differently (the VIP is BROKEN), and back. */
  | 'broken';

export const FAULT_KINDS: readonly FaultKind[] = ['kill', 'term', 'stop', 'link', 'loss', 'deaf', 'mute', 'partition', 'broken'];

export interface Fault {
  index: number;
  kind: FaultKind;
  /** The node the fault acts on; for a partition, one node of `side`. */
  node: string;
  /** partition: the nodes on one side (the rest are on the other), never empty nor all. */
  side?: string[];
  /** loss: share of packets dropped, 5–30 %. */
  percent?: number;
  /** broken: the binding whose IP the node names differently. */
  binding?: string;
  /** How long the fault lasts before it is healed. */
  holdMs: number;
  /** Calm after healing before the next fault (0: the next fault comes at once). */
  calmMs: number;
}

export interface PlanOptions {
  seed: number;
  faults: number;
  nodes: readonly string[];
  bindings: readonly string[];
  /** Longest hold; holds are drawn from 100 ms up to this, most of them short. Default 2,500 ms. */
  maxHoldMs?: number;
  /** Longest calm gap. Default 1,500 ms. */
  maxCalmMs?: number;
  /** The kinds to draw from (a campaign on one weakness). Default every kind. */
  kinds?: readonly FaultKind[];
}

/** The plan for one campaign; the same options give the same plan. */
export function planFaults(options: PlanOptions): Fault[] {
  if (options.nodes.length < 3) throw new RangeError(`chaos: at least 3 nodes, got ${options.nodes.length}`);
  if (!Number.isInteger(options.faults) || options.faults < 1) throw new RangeError(`chaos: faults must be a positive integer, got ${options.faults}`);
  const rng = new Rng(options.seed);
  const maxHold = options.maxHoldMs ?? 2500;
  const maxCalm = options.maxCalmMs ?? 1500;
  const kinds = options.kinds ?? FAULT_KINDS;
  if (!kinds.length || kinds.some((k) => !FAULT_KINDS.includes(k))) throw new RangeError(`chaos: kinds must be some of ${FAULT_KINDS.join(', ')}, got ${kinds.join(', ')}`);
  const faults: Fault[] = [];
  for (let index = 0; index < options.faults; index++) {
    const kind = rng.pick(kinds);
    const node = rng.pick(options.nodes);
    // Mostly short holds (a blip of loss, a short GC pause) with a tail of long ones.
    const holdMs = Math.round(100 + (maxHold - 100) * rng.next() ** 2);
    const calmMs = rng.chance(0.25) ? 0 : rng.int(100, maxCalm);
    const fault: Fault = { index, kind, node, holdMs, calmMs };
    if (kind === 'partition') {
      // Any split: one node alone, or (with 4–5 nodes) two against the rest.
      const others = options.nodes.filter((n) => n !== node);
      const size = rng.int(1, Math.floor(options.nodes.length / 2));
      const side = [node];
      while (side.length < size) {
        const candidate = rng.pick(others);
        if (!side.includes(candidate)) side.push(candidate);
      }
      fault.side = side.sort();
    }
    if (kind === 'loss') fault.percent = rng.int(5, 30);
    if (kind === 'broken') fault.binding = rng.pick(options.bindings);
    faults.push(fault);
  }
  return faults;
}
