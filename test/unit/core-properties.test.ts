/**
 * Property tests of the election over random clusters: up to 32 nodes and 512
 * VIPs with random declarations, liveness, health and holdings. fast-check
 * draws the shape (sizes, probabilities, a seed); a seeded generator fills in
 * the per-node detail so one case stays cheap to build and to replay.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { NodeDeclaration, VipDeclaration, decodeDeclaration, encodeDeclaration } from '../../lib/core/declaration';
import { Assignment, ElectOptions, elect } from '../../lib/core/elect';
import { plan } from '../../lib/core/plan';
import { ClusterView, NodeView, isHealthy } from '../../lib/core/view';

/** mulberry32: small, seeded, good enough to fill in a test case. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Shape {
  seed: number;
  nodes: number;
  vips: number;
  /** Probability that a node declares a given VIP (1 = identical VIP sets). */
  membership: number;
  /** Probability that a node's declaration of a VIP deviates (binding, preference, ports). */
  deviation: number;
  /** Probability that a VIP names a preferred node. */
  preference: number;
  dead: number;
  unhealthy: number;
  holding: number;
  rebalance: 'never' | 'on-join';
}

const shapes = fc.record({
  seed: fc.integer(),
  nodes: fc.integer({ min: 1, max: 32 }),
  vips: fc.integer({ min: 1, max: 512 }),
  membership: fc.constantFrom(1, 0.9, 0.5, 0.2),
  deviation: fc.constantFrom(0, 0, 0.01, 0.1),
  preference: fc.constantFrom(0, 0.3, 1),
  dead: fc.constantFrom(0, 0.2, 0.6),
  unhealthy: fc.constantFrom(0, 0.05, 0.3),
  holding: fc.constantFrom(0, 0.3, 1),
  rebalance: fc.constantFrom<'never' | 'on-join'>('never', 'on-join'),
});

const NOW = 1_000_000;
const HOLD_DOWN = 2000;

function ipOf(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

function nodeName(i: number): string {
  return `n${String(i).padStart(2, '0')}`;
}

function buildView(shape: Shape): ClusterView {
  const rnd = random(shape.seed);
  const names = Array.from({ length: shape.nodes }, (_, i) => nodeName(i));
  const base = Array.from({ length: shape.vips }, (_, i) => ({
    ip: ipOf(i + 1),
    binding: rnd() < 0.5 ? `b${i}` : null,
    ports: rnd() < 0.5 ? [25] : [],
    preferred: rnd() < shape.preference ? (names[Math.floor(rnd() * names.length)] as string) : null,
  }));
  const nodes: NodeView[] = names.map((name) => {
    const vips: VipDeclaration[] = [];
    for (const b of base) {
      if (rnd() >= shape.membership) continue;
      let { binding, ports, preferred } = b;
      if (rnd() < shape.deviation) {
        const what = rnd();
        if (what < 0.3) binding = `b${Math.floor(rnd() * shape.vips)}`;
        else if (what < 0.6) preferred = names[Math.floor(rnd() * names.length)] as string;
        else ports = [25, 587];
      }
      vips.push({ ip: b.ip, family: 4, interface: 'eth0', prefix: 32, binding, ports: [...ports], preferred, follows: null });
    }
    const live = rnd() >= shape.dead;
    const holding = new Map<string, number>();
    for (const v of vips) if (rnd() < shape.holding / Math.max(1, shape.nodes / 2)) holding.set(v.ip, 1 + Math.floor(rnd() * 5));
    let unhealthy: Set<string> | 'all' = new Set();
    if (rnd() < shape.unhealthy / 4) unhealthy = 'all';
    else for (const v of vips) if (rnd() < shape.unhealthy) unhealthy.add(v.ip);
    return {
      node: name,
      declaration: { node: name, vips },
      live,
      liveSince: NOW - Math.floor(rnd() * 2 * HOLD_DOWN),
      holding,
      unhealthy,
    };
  });
  return { now: NOW, nodes };
}

function optionsOf(shape: Shape): ElectOptions {
  return { holdDownMs: HOLD_DOWN, rebalance: shape.rebalance };
}

function owners(a: Assignment): Array<[string, string | null]> {
  return [...a.vips.values()].map((o) => [o.ip, o.owner]);
}

/** The same view as another node would build it: other order, other objects. */
function rebuilt(view: ClusterView, self: string): ClusterView {
  const nodes = [...view.nodes].reverse().map((n) => ({
    ...n,
    declaration: decodeDeclaration(encodeDeclaration(n.declaration)) as NodeDeclaration,
    holding: new Map([...n.holding].reverse()),
    unhealthy: n.unhealthy === 'all' ? ('all' as const) : new Set([...n.unhealthy].reverse()),
  }));
  return { now: view.now, self, nodes };
}

const RUNS = { numRuns: 60 };

test('nodes with the same view compute identical assignments', () => {
  fc.assert(
    fc.property(shapes, (shape) => {
      const view = buildView(shape);
      const a = elect({ ...view, self: 'n00' }, optionsOf(shape));
      const b = elect(rebuilt(view, 'n01'), optionsOf(shape));
      assert.deepEqual([...b.vips.values()], [...a.vips.values()]);
      assert.equal(b.nextWakeup, a.nextWakeup);
    }),
    RUNS,
  );
});

test('every non-BROKEN VIP with a live healthy participant gets a live healthy participant as owner; BROKEN gets none', () => {
  fc.assert(
    fc.property(shapes, (shape) => {
      const view = buildView(shape);
      const a = elect(view, optionsOf(shape));
      const byName = new Map(view.nodes.map((n) => [n.node, n]));
      for (const o of a.vips.values()) {
        if (o.flags.broken) {
          assert.equal(o.owner, null);
          assert.equal(o.rule, 'broken');
          continue;
        }
        const eligible = view.nodes.filter((n) => n.live && isHealthy(n, o.ip) && n.declaration.vips.some((v) => v.ip === o.ip));
        if (eligible.length === 0) {
          assert.equal(o.owner, null, `${o.ip} owned without an eligible participant`);
          continue;
        }
        assert.ok(o.owner !== null, `${o.ip} has eligible participants but no owner (${o.rule})`);
        const owner = byName.get(o.owner) as NodeView;
        assert.ok(eligible.includes(owner), `${o.ip} owned by ${o.owner}, who is not a live healthy participant`);
      }
    }),
    RUNS,
  );
});

test('plans never acquire what another live node holds, release first, and leave at most one holder (the owner) per VIP', () => {
  fc.assert(
    fc.property(shapes, (shape) => {
      const view = buildView(shape);
      const a = elect(view, optionsOf(shape));
      const after = new Map<string, string[]>();
      for (const n of view.nodes) {
        if (!n.live) continue;
        const actions = plan(n.node, view, a);
        const firstAcquire = actions.findIndex((x) => x.type === 'acquire');
        const lastRelease = actions.map((x) => x.type).lastIndexOf('release');
        assert.ok(firstAcquire < 0 || lastRelease < firstAcquire, 'a release after an acquire');
        const held = new Set(n.holding.keys());
        for (const x of actions) {
          if (x.type === 'release') {
            assert.ok(held.delete(x.ip), `${n.node} releases ${x.ip} it does not hold`);
            continue;
          }
          assert.equal(a.vips.get(x.ip)?.owner, n.node);
          for (const other of view.nodes) {
            if (other !== n && other.live) assert.ok(!other.holding.has(x.ip), `${n.node} acquires ${x.ip} held by live ${other.node}`);
          }
          assert.ok(x.epoch > (a.vips.get(x.ip)?.maxEpoch ?? 0));
          held.add(x.ip);
        }
        for (const ip of held) after.set(ip, [...(after.get(ip) ?? []), n.node]);
      }
      for (const [ip, holders] of after) {
        assert.deepEqual(holders, [a.vips.get(ip)?.owner], `${ip} held by ${holders.join(', ')} after the plans`);
      }
    }),
    RUNS,
  );
});

test('the assignment is a fixed point, and a node that owns nothing leaving moves nothing', () => {
  const consistent = shapes.map((s) => ({ ...s, deviation: 0 }));
  fc.assert(
    fc.property(consistent, fc.integer({ min: 0, max: 31 }), (shape, pick) => {
      const view = buildView(shape);
      const first = elect(view, optionsOf(shape));
      // Every node now holds what it was assigned.
      const held: ClusterView = {
        now: view.now,
        nodes: view.nodes.map((n) => ({
          ...n,
          holding: new Map([...first.vips.values()].filter((o) => o.owner === n.node).map((o) => [o.ip, 1])),
        })),
      };
      const settled = elect(held, optionsOf(shape));
      assert.deepEqual(owners(settled), owners(first));
      // Owns nothing (its load may still count a VIP kept elsewhere during its hold-down).
      const owning = new Set([...settled.vips.values()].map((o) => o.owner));
      const idle = held.nodes.filter((n) => n.live && !owning.has(n.node) && (settled.load.get(n.node) ?? 0) === 0);
      if (idle.length === 0) return;
      const leaving = idle[pick % idle.length] as NodeView;
      const without: ClusterView = { now: view.now, nodes: held.nodes.map((n) => (n === leaving ? { ...n, live: false } : n)) };
      assert.deepEqual(owners(elect(without, optionsOf(shape))), owners(settled));
    }),
    RUNS,
  );
});

test('with no preferences and identical VIP sets, owned counts differ by at most one', () => {
  const even = fc.record({
    seed: fc.integer(),
    nodes: fc.integer({ min: 1, max: 32 }),
    vips: fc.integer({ min: 1, max: 512 }),
    rebalance: fc.constantFrom<'never' | 'on-join'>('never', 'on-join'),
    holding: fc.constantFrom(0, 1),
  });
  fc.assert(
    fc.property(even, (s) => {
      // Without rebalance the cluster starts empty; with it, from random holdings.
      const shape: Shape = { ...s, membership: 1, deviation: 0, preference: 0, dead: 0, unhealthy: 0, holding: s.rebalance === 'on-join' ? s.holding : 0 };
      const a = elect(buildView(shape), optionsOf(shape));
      const counts = [...a.load.values()];
      assert.equal(counts.reduce((x, y) => x + y, 0), shape.vips);
      assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `counts ${counts.join(',')}`);
    }),
    RUNS,
  );
});
