/**
 * A fault schedule drawn from a seed: the cluster's shape (nodes, VIPs, who
 * declares what, preferred nodes, bindings, a BROKEN VIP, quorum) and the
 * faults of the fault phase. Every fault ends by FAULT_END; after it the
 * cluster is left alone so liveness can be checked.
 */
import { Rng } from './rng';

export const FAULT_START = 600;
export const FAULT_END = 5000;

export type Fault =
  | { at: number; kind: 'loss'; p: number; until: number }
  | { at: number; kind: 'block'; from: string; to: string; until: number }
  | { at: number; kind: 'deaf'; node: string; until: number }
  | { at: number; kind: 'partition'; sides: string[][]; until: number }
  | { at: number; kind: 'stall'; node: string; ms: number }
  | { at: number; kind: 'crash'; node: string; reaper: boolean; restartAt: number }
  | { at: number; kind: 'power'; node: string; restartAt: number }
  | { at: number; kind: 'leave'; node: string; restartAt: number }
  | { at: number; kind: 'link'; node: string; until: number }
  | { at: number; kind: 'remove'; node: string; ip: string }
  | { at: number; kind: 'foreign'; ip: string }
  | { at: number; kind: 'opfail'; node: string; p: number; until: number }
  | { at: number; kind: 'move'; node: string; ip: string; target: string | null };

export interface VipShape {
  ip: string;
  kind: 'listener' | 'binding';
  /** Nodes declaring it. */
  declarers: string[];
  preferred: string | null;
  /** A binding declared under two names: BROKEN while both declarers live. */
  brokenBy: string | null;
}

export interface Schedule {
  seed: number;
  nodes: string[];
  vips: VipShape[];
  quorum: boolean;
  faults: Fault[];
}

/** Which fault kinds a campaign draws; `asymmetric` adds the ones issue 12 is about. */
export interface FaultMix {
  asymmetric: boolean;
}

export function drawSchedule(seed: number, nodeCount?: number, mix: FaultMix = { asymmetric: true }): Schedule {
  const rng = new Rng(seed);
  const n = nodeCount ?? rng.int(2, 4);
  const nodes = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const vips: VipShape[] = [];
  const vipCount = rng.int(1, 4);
  for (let i = 0; i < vipCount; i++) {
    const declarers = rng.chance(0.7) ? [...nodes] : nodes.filter(() => rng.chance(0.6));
    if (declarers.length === 0) declarers.push(rng.pick(nodes));
    vips.push({
      ip: `198.18.1.${i + 1}`,
      kind: rng.chance(0.5) ? 'listener' : 'binding',
      declarers,
      preferred: rng.chance(0.5) ? rng.pick(nodes) : null,
      brokenBy: null,
    });
  }
  if (n >= 2 && rng.chance(0.15)) {
    const [a, b] = [nodes[0] as string, nodes[1] as string];
    vips.push({ ip: '198.18.1.99', kind: 'binding', declarers: [a, b], preferred: null, brokenBy: b });
  }
  const quorum = n >= 3 && rng.chance(0.2);
  const faults: Fault[] = [];
  const count = rng.int(1, 6);
  const kinds: Array<Fault['kind']> = ['loss', 'partition', 'stall', 'crash', 'power', 'leave', 'link', 'remove', 'foreign', 'opfail', 'move'];
  if (mix.asymmetric) kinds.push('block', 'deaf');
  for (let i = 0; i < count; i++) {
    const at = rng.int(FAULT_START, FAULT_END - 400);
    const until = Math.min(FAULT_END, at + rng.int(50, 2500));
    const node = rng.pick(nodes);
    const ip = rng.pick(vips).ip;
    const kind = rng.pick(kinds);
    switch (kind) {
      case 'loss':
        faults.push({ at, kind, p: rng.pick([0.05, 0.2, 0.5, 0.9]), until });
        break;
      case 'block': {
        const to = rng.pick(nodes.filter((x) => x !== node));
        if (to) faults.push({ at, kind, from: node, to, until });
        break;
      }
      case 'deaf':
      case 'link':
        faults.push({ at, kind, node, until });
        break;
      case 'partition': {
        const sides = [nodes.filter(() => rng.chance(0.5))];
        sides.push(nodes.filter((x) => !(sides[0] as string[]).includes(x)));
        faults.push({ at, kind, sides, until });
        break;
      }
      case 'stall':
        faults.push({ at, kind, node, ms: rng.pick([100, 250, 600, 1500, 3000]) });
        break;
      case 'crash':
        faults.push({ at, kind, node, reaper: rng.chance(0.7), restartAt: until });
        break;
      case 'power':
      case 'leave':
        faults.push({ at, kind, node, restartAt: until });
        break;
      case 'remove':
        faults.push({ at, kind, node, ip });
        break;
      case 'foreign':
        faults.push({ at, kind, ip });
        break;
      case 'opfail':
        faults.push({ at, kind, node, p: rng.pick([0.3, 1]), until });
        break;
      case 'move':
        faults.push({ at, kind, node, ip, target: rng.chance(0.2) ? null : rng.pick(nodes) });
        break;
    }
  }
  faults.sort((a, b) => a.at - b.at);
  return { seed, nodes, vips, quorum, faults };
}

/** One line per fault, for a violation's report. */
export function describe(schedule: Schedule): string {
  const vips = schedule.vips.map((v) => `${v.ip} ${v.kind} by ${v.declarers.join('+')}${v.preferred ? ` preferred ${v.preferred}` : ''}${v.brokenBy ? ' BROKEN' : ''}`);
  return [
    `nodes ${schedule.nodes.join(' ')}${schedule.quorum ? ' (quorum)' : ''}; vips: ${vips.join('; ')}`,
    ...schedule.faults.map((f) => `  t=${f.at} ${JSON.stringify({ ...f, at: undefined })}`),
  ].join('\n');
}
