// The chaos campaign's plan and its analysis, on hand-made timelines: each
// kind of interval it must tell apart (a dual between connected nodes, a dual
// across a cut and its tail after the merge, an orphan with and without a
// healthy declarer, a BROKEN VIP, a false failover) is shown to be counted.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { analyseChaos, type AddressChange, type AppliedFault, type ChaosTimeline } from '../../bench/lib/chaos-analysis';
import { FAULT_KINDS, planFaults } from '../../bench/lib/chaos-plan';

const IP = '198.18.1.70';

function timeline(events: Array<[number, string, boolean]>, faults: AppliedFault[] = [], binding?: string): ChaosTimeline {
  return {
    vips: [{ ip: IP, declarers: ['n1', 'n2', 'n3'], ...(binding ? { binding } : {}) }],
    nodes: ['n1', 'n2', 'n3'],
    events: events.map(([atMs, host, added]): AddressChange => ({ atMs, host, ip: IP, added })),
    faults,
    fromMs: 0,
    toMs: 10_000,
    heartbeatMs: 50,
    deadAfterMs: 200,
    announceMs: 100,
    acquisitionMs: 100,
  };
}

describe('chaos plan', () => {
  test('the same seed gives the same plan, another seed another; every kind is drawn; partitions split the nodes', () => {
    const options = { seed: 42, faults: 400, nodes: ['n1', 'n2', 'n3', 'n4', 'n5'], bindings: ['b1', 'b2'] };
    const plan = planFaults(options);
    assert.deepEqual(planFaults(options), plan);
    assert.notDeepEqual(planFaults({ ...options, seed: 43 }), plan);
    assert.deepEqual(new Set(plan.map((f) => f.kind)), new Set(FAULT_KINDS));
    for (const f of plan) {
      assert.ok(f.holdMs >= 100 && f.holdMs <= 2500, `hold ${f.holdMs}`);
      if (f.kind === 'partition') assert.ok(f.side && f.side.length >= 1 && f.side.length <= 2 && f.side.includes(f.node), JSON.stringify(f));
      if (f.kind === 'loss') assert.ok((f.percent as number) >= 5 && (f.percent as number) <= 30);
      if (f.kind === 'broken') assert.ok(options.bindings.includes(f.binding as string));
    }
  });

  test('bad counts are refused with the field named', () => {
    assert.throws(() => planFaults({ seed: 1, faults: 0, nodes: ['a', 'b', 'c'], bindings: [] }), /faults must be a positive integer/);
    assert.throws(() => planFaults({ seed: 1, faults: 5, nodes: ['a', 'b'], bindings: [] }), /at least 3 nodes/);
  });
});

describe('chaos analysis', () => {
  test('a dual between nodes that can hear each other is a violation past one heartbeat + announcement', () => {
    const short = analyseChaos(timeline([[0, 'n1', true], [1000, 'n2', true], [1100, 'n1', false]]));
    assert.equal(short.dualConnected.count, 1);
    assert.equal(short.dualConnected.overBound.length, 0);
    const long = analyseChaos(timeline([[0, 'n1', true], [1000, 'n2', true], [1400, 'n1', false]]));
    assert.equal(long.dualConnected.longestMs, 400);
    assert.deepEqual(long.dualConnected.overBound.map((d) => [d.ms, d.hosts.sort()]), [[400, ['n1', 'n2']]]);
  });

  test('an orphan counts from the last fault that hit a declarer while it lasted (the node just elected may be the one hit), not from one elsewhere or a loss', () => {
    // n1's link goes down at 1000 (it gives the VIP up); n2, which the others then elect, loses
    // its link at 1190; n3 takes the VIP 200 + 60 ms after that.
    const first: AppliedFault = { index: 0, kind: 'link', node: 'n1', fromMs: 1000, toMs: 1190 };
    const second: AppliedFault = { index: 1, kind: 'link', node: 'n2', fromMs: 1190, toMs: 2000 };
    const r = analyseChaos(timeline([[0, 'n1', true], [1005, 'n1', false], [1450, 'n3', true]], [first, second]));
    assert.equal(r.orphan.longestMs, 260);
    assert.equal(r.orphan.overBound.length, 0);
    // Loss, or a fault on a node that does not declare the VIP, restarts nothing.
    for (const other of [{ ...second, kind: 'loss' as const }, { ...second, node: 'n4' }]) {
      const t = timeline([[0, 'n1', true], [1005, 'n1', false], [1450, 'n3', true]], [first, other]);
      t.nodes.push('n4');
      assert.deepEqual(analyseChaos(t).orphan.overBound.map((o) => o.ms), [445]);
    }
  });

  test('an orphan begun under loss, or less than its fade after, has the bound of the silence limit loss earns; one begun later the clean bound', () => {
    // Loss on n2 from 500 to 2000; n1 killed at 1000 and at 9000 (a second life from 3000).
    const loss: AppliedFault = { index: 0, kind: 'loss', node: 'n2', fromMs: 500, toMs: 2000 };
    const kill: AppliedFault = { index: 1, kind: 'kill', node: 'n1', fromMs: 1000, toMs: 3000 };
    const during = analyseChaos(timeline([[0, 'n1', true], [1000, 'n1', false], [1900, 'n3', true]], [loss, kill]));
    assert.equal(during.orphan.count, 0);
    assert.equal(during.orphanUnderLoss.count, 1);
    assert.equal(during.orphanUnderLoss.longestMs, 900);
    assert.equal(during.orphanUnderLoss.overBound.length, 0, `bound ${during.bounds.orphanUnderLossMs}`);
    const tooSlow = analyseChaos(timeline([[0, 'n1', true], [1000, 'n1', false], [2800, 'n3', true]], [loss, kill]));
    assert.deepEqual(tooSlow.orphanUnderLoss.overBound.map((o) => o.ms), [1800]);
    // Long after the loss ended the clean bound applies again.
    const t = timeline([[0, 'n1', true], [9000, 'n1', false], [9600, 'n3', true]], [loss, { ...kill, fromMs: 9000, toMs: 9900 }]);
    t.toMs = 12_000;
    assert.deepEqual(analyseChaos(t).orphan.overBound.map((o) => o.ms), [600]);
  });

  test('a dual that began across a partition is not a violation; its tail after the merge is measured', () => {
    const cut: AppliedFault = { index: 0, kind: 'partition', node: 'n1', side: ['n1'], fromMs: 500, toMs: 2000 };
    const r = analyseChaos(timeline([[0, 'n1', true], [800, 'n2', true], [2300, 'n1', false]], [cut]));
    assert.equal(r.dualConnected.count, 0);
    assert.equal(r.dualPartitioned.count, 1);
    assert.equal(r.dualPartitioned.longestMs, 1500);
    assert.equal(r.dualPartitioned.longestAfterMergeMs, 300);
    // A link down separates the same way.
    const link: AppliedFault = { index: 0, kind: 'link', node: 'n1', fromMs: 500, toMs: 2000 };
    assert.equal(analyseChaos(timeline([[0, 'n1', true], [800, 'n2', true], [2050, 'n1', false]], [link])).dualConnected.count, 0);
  });

  test('loss, deafness and a stall do not excuse a dual: the nodes are still on one wire', () => {
    const deaf: AppliedFault = { index: 0, kind: 'deaf', node: 'n2', fromMs: 500, toMs: 3000 };
    const r = analyseChaos(timeline([[0, 'n1', true], [800, 'n2', true], [1800, 'n2', false]], [deaf]));
    assert.equal(r.dualConnected.overBound.length, 1);
  });

  test('an orphan counts only while a healthy declarer is there, and past dead-after + acquisition', () => {
    // n1 killed at 1000: n2 and n3 are healthy, so the clock runs from the removal.
    const kill: AppliedFault = { index: 0, kind: 'kill', node: 'n1', fromMs: 1000, toMs: 3000 };
    const quick = analyseChaos(timeline([[0, 'n1', true], [1000, 'n1', false], [1250, 'n2', true]], [kill]));
    assert.equal(quick.orphan.count, 1);
    assert.equal(quick.orphan.overBound.length, 0);
    const slow = analyseChaos(timeline([[0, 'n1', true], [1000, 'n1', false], [1600, 'n2', true]], [kill]));
    assert.deepEqual(slow.orphan.overBound.map((o) => o.ms), [600]);
    // Every declarer stopped: nobody could hold it, no violation.
    const all: AppliedFault[] = ['n1', 'n2', 'n3'].map((node, index) => ({ index, kind: 'stop', node, fromMs: 1000, toMs: 5000 }));
    assert.equal(analyseChaos(timeline([[0, 'n1', true], [1000, 'n1', false], [5100, 'n2', true]], all)).orphan.count, 0);
  });

  test('a BROKEN binding held by nobody is no orphan while the fault lasts', () => {
    const broken: AppliedFault = { index: 0, kind: 'broken', node: 'n3', binding: 'b1', fromMs: 1000, toMs: 4000 };
    const r = analyseChaos(timeline([[0, 'n1', true], [1100, 'n1', false], [4300, 'n1', true]], [broken], 'b1'));
    assert.equal(r.orphan.count, 0);
    // The same timeline for a VIP of another binding is an orphan.
    assert.equal(analyseChaos(timeline([[0, 'n1', true], [1100, 'n1', false], [4300, 'n1', true]], [broken], 'b2')).orphan.overBound.length, 1);
  });

  test('a change of holder no fault explains is a false failover; loss does not explain it, a kill does', () => {
    const loss: AppliedFault = { index: 0, kind: 'loss', node: 'n1', fromMs: 500, toMs: 3000 };
    const events: Array<[number, string, boolean]> = [[0, 'n1', true], [1000, 'n1', false], [1010, 'n2', true]];
    assert.equal(analyseChaos(timeline(events, [loss])).falseFailovers, 1);
    assert.equal(analyseChaos(timeline(events, [{ ...loss, kind: 'kill' }])).falseFailovers, 0);
    assert.equal(analyseChaos(timeline(events, [{ ...loss, kind: 'kill' }])).holderChanges, 1);
  });
});
