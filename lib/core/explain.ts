/**
 * Why a VIP is where it is: the rule that chose its owner and, for every other
 * node declaring it, why that node was not chosen. For `mta-vip status`, logs
 * and the operator who wants to know why a VIP did not move.
 */
import { ElectOptions, ElectionTrace, Evidence, Rule, VipOutcome, electWithTrace } from './elect';
import { fnv1a, rendezvousScore } from './hash';
import { countServices } from './declaration-index';
import { ClusterView, NodeView, isHealthy } from './view';

export type CandidateCode =
  | 'chosen'
  | 'dead'
  | 'unhealthy'
  | 'broken'
  | 'no-quorum'
  | 'overridden'
  | 'not-preferred'
  | 'not-holder'
  | 'worse-claim'
  | 'more-loaded'
  | 'fewer-services'
  | 'lost-hash-tie'
  | 'rebalanced-away'
  | 'follows-leader';

export interface CandidateExplanation {
  node: string;
  chosen: boolean;
  code: CandidateCode;
  /** One sentence. */
  reason: string;
}

export interface Explanation {
  ip: string;
  owner: string | null;
  rule: Rule;
  /** Why the rule chose the owner (or why there is none). */
  summary: string;
  flags: { conflict?: Evidence; unsafe?: Evidence; broken?: Evidence };
  /** Every node in the view declaring the VIP, live or dead, sorted. */
  candidates: CandidateExplanation[];
}

const RULE_TEXT: Record<Rule, string> = {
  broken: 'BROKEN: nobody manages it',
  'no-quorum': 'this side has no quorum: nobody holds VIPs',
  'no-participant': 'no live, healthy node declares it',
  override: 'operator override',
  preferred: 'the preferred node',
  sticky: 'stickiness: the current holder keeps it',
  'least-loaded': 'least-loaded participant',
  rebalance: 'rebalanced to a less-loaded participant',
  follow: "follower: held by its leader's owner",
};

/**
 * Explains the decision for `ip` in `view` (runs the election with tracing;
 * returns null when no node in the view declares `ip`).
 */
export function explain(view: ClusterView, ip: string, options: ElectOptions): Explanation | null {
  const { assignment, trace } = electWithTrace(view, options, ip);
  const outcome = assignment.vips.get(ip);
  if (!outcome) return null;
  const declaring = view.nodes
    .filter((n) => n.declaration.vips.some((v) => v.ip === ip))
    .sort((a, b) => (a.node < b.node ? -1 : 1));
  const owner = declaring.find((n) => n.node === outcome.owner);
  const candidates = declaring.map((n) => explainCandidate(n, outcome, options, trace as ElectionTrace, assignment.vips, owner));
  return {
    ip,
    owner: outcome.owner,
    rule: outcome.rule,
    summary: summarize(outcome, view, options),
    flags: outcome.flags,
    candidates,
  };
}

function summarize(outcome: VipOutcome, view: ClusterView, options: ElectOptions): string {
  const text = RULE_TEXT[outcome.rule];
  const parts = [outcome.owner ? `${outcome.owner} owns ${outcome.ip}: ${text}` : `${outcome.ip} has no owner: ${text}`];
  if (outcome.flags.broken) parts.push(outcome.flags.broken.message);
  if (outcome.flags.conflict) parts.push(outcome.flags.conflict.message);
  if (outcome.flags.unsafe) parts.push(outcome.flags.unsafe.message);
  const override = view.overrides?.get(outcome.ip);
  if (override !== undefined && outcome.rule !== 'override' && outcome.rule !== 'broken') {
    parts.push(`operator override to ${override} ignored: it is not a live, healthy participant`);
  }
  if (outcome.holdDownUntil !== null) {
    parts.push(`preferred node ${outcome.preferred} takes it at t=${outcome.holdDownUntil} (hold-down ${options.holdDownMs} ms)`);
  }
  if (outcome.follows) parts.push(`follows ${outcome.follows}`);
  if (outcome.followers.length) parts.push(`followers travelling with it: ${outcome.followers.join(', ')}`);
  return parts.join('; ');
}

function explainCandidate(
  n: NodeView,
  outcome: VipOutcome,
  options: ElectOptions,
  trace: ElectionTrace,
  vips: ReadonlyMap<string, VipOutcome>,
  owner: NodeView | undefined,
): CandidateExplanation {
  const node = n.node;
  const ip = outcome.ip;
  const not = (code: CandidateCode, reason: string): CandidateExplanation => ({ node, chosen: false, code, reason });
  if (outcome.owner === node) {
    return { node, chosen: true, code: 'chosen', reason: `chosen: ${RULE_TEXT[outcome.rule]}` };
  }
  if (!n.live) return not('dead', 'not live (no heartbeat within dead-after)');
  if (outcome.rule === 'broken') return not('broken', 'the VIP is BROKEN');
  if (outcome.rule === 'no-quorum') return not('no-quorum', 'this side has no quorum');
  if (outcome.rule === 'follow') {
    const leader = outcome.follows ? vips.get(outcome.follows) : undefined;
    return not('follows-leader', `${ip} follows ${outcome.follows}, which ${leader?.owner ? `${leader.owner} owns` : 'has no owner'}`);
  }
  if (!isHealthy(n, ip)) return not('unhealthy', n.unhealthy === 'all' ? 'unhealthy (all VIPs)' : `unhealthy for ${ip}`);
  switch (outcome.rule) {
    case 'override':
      return not('overridden', `operator moved ${ip} to ${outcome.owner}`);
    case 'preferred':
      return not('not-preferred', `not the preferred node (configs name ${outcome.preferred})`);
    case 'sticky': {
      if (outcome.holdDownUntil !== null && node === outcome.preferred) {
        return not('not-preferred', `preferred, but holding down until t=${outcome.holdDownUntil} (live since t=${n.liveSince}, hold-down ${options.holdDownMs} ms)`);
      }
      if (trace.holders.includes(node)) {
        return not('worse-claim', `also holds ${ip} but ${outcome.owner}'s claim is better (higher epoch, then preferred, then lower name)`);
      }
      return not('not-holder', `${outcome.owner} already holds ${ip} (stickiness avoids churn)`);
    }
    case 'least-loaded':
    case 'rebalance': {
      if (outcome.holdDownUntil !== null && node === outcome.preferred) {
        return not('not-preferred', `preferred, but holding down until t=${outcome.holdDownUntil} (live since t=${n.liveSince}, hold-down ${options.holdDownMs} ms)`);
      }
      const loads = trace.loads;
      const mine = loads?.get(node);
      const winner = outcome.owner === null ? undefined : loads?.get(outcome.owner);
      if (outcome.rule === 'rebalance' && trace.rebalancedFrom === node) {
        return not('rebalanced-away', `held ${ip} but had ${mine ?? '?'} VIPs against ${winner ?? '?'} for ${outcome.owner}: moved to even the load`);
      }
      if (outcome.flags.unsafe && owner && serviceCount(n, ip) < serviceCount(owner, ip)) {
        return not('fewer-services', `declares fewer services on ${ip} than ${outcome.owner} (UNSAFE: the one that carries every service is chosen)`);
      }
      if (mine !== undefined && winner !== undefined && mine > winner) {
        return not('more-loaded', `more loaded: ${mine} VIPs against ${winner} for ${outcome.owner}`);
      }
      const vipHash = fnv1a(ip);
      const own = rendezvousScore(vipHash, fnv1a(node));
      const theirs = outcome.owner === null ? 0 : rendezvousScore(vipHash, fnv1a(outcome.owner));
      return not('lost-hash-tie', `as loaded as ${outcome.owner} (${mine ?? '?'} VIPs) but lost the rendezvous-hash tie (${own.toString(16)} < ${theirs.toString(16)})`);
    }
    default:
      return not('not-holder', `not chosen (${outcome.rule})`);
  }
}

/** The services `n` declares on `ip`: a binding, each listener port, following a leader. */
function serviceCount(n: NodeView, ip: string): number {
  const v = n.declaration.vips.find((x) => x.ip === ip);
  return v ? countServices(v.binding, v.ports, v.follows) : 0;
}
