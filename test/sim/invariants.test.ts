// The simulation's checks must be able to fail: each invariant is shown to
// catch the fault it exists for, with the engine's own safety taken away.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VipEngine } from '../../lib/runtime/engine';
import { VipOperations } from '../../lib/runtime/vip-operations';
import { SimNode } from './sim-node';
import { drawSchedule, type Schedule } from './schedule';
import { simulate } from './simulation';

/** Replaces one method of the engine (or of its operations) for the duration of `body`. */
async function withBrokenEngine(method: string, replacement: (this: unknown, ...args: unknown[]) => unknown, body: () => Promise<void>, of: { prototype: object } = VipEngine): Promise<void> {
  const proto = of.prototype as unknown as Record<string, unknown>;
  const original = proto[method];
  proto[method] = replacement;
  try {
    await body();
  } finally {
    proto[method] = original;
  }
}

const calm: Schedule = { ...drawSchedule(1, 3), quorum: false, faults: [] };
calm.vips = calm.vips.map((v) => ({ ...v, declarers: [...calm.nodes], brokenBy: null }));

test('without releases to a better claim, a partition heal leaves two holders and the one-holder invariant says so', async () => {
  const schedule: Schedule = { ...calm, faults: [{ at: 1000, kind: 'partition', sides: [['n1'], ['n2', 'n3']], until: 2500 }] };
  assert.deepEqual((await simulate(schedule)).violations, []);
  await withBrokenEngine(
    'release',
    function () {},
    async () => {
      const result = await simulate(schedule);
      assert.ok(result.violations.some((v) => v.invariant === 'one holder'), JSON.stringify(result.violations));
    },
    VipOperations,
  );
});

test('without remembered epochs, a takeover after a crash reuses an epoch and the epoch invariant says so', async () => {
  const schedule: Schedule = { ...calm, vips: calm.vips.map((v) => ({ ...v, preferred: 'n1' })), faults: [{ at: 1500, kind: 'crash', node: 'n1', reaper: true, restartAt: 4000 }] };
  assert.deepEqual((await simulate(schedule)).violations, []);
  await withBrokenEngine('rememberEpochs', function () {}, async () => {
    const result = await simulate(schedule);
    assert.ok(result.violations.some((v) => v.invariant === 'epochs grow'), JSON.stringify(result.violations));
  });
});

test('without acquisitions, nothing is held and the liveness invariant says so', async () => {
  await withBrokenEngine('startAcquisitions', function () {}, async () => {
    const result = await simulate(calm);
    assert.ok(result.violations.some((v) => v.invariant === 'liveness'), JSON.stringify(result.violations));
  });
});

test('without the guardian, a stopped holder keeps answering for its VIP and nobody serves it, and the no-orphan invariant says so', async () => {
  const schedule: Schedule = { ...calm, vips: calm.vips.map((v) => ({ ...v, preferred: 'n1' })), faults: [{ at: 1500, kind: 'stall', node: 'n1', ms: 1500 }] };
  assert.deepEqual((await simulate(schedule)).violations, []);
  await withBrokenEngine(
    'guard',
    function () {},
    async () => {
      const result = await simulate(schedule);
      // Its kernel still answers the peers' probes, so they do not take it: nobody serves it.
      assert.ok(result.violations.some((v) => v.invariant === 'no orphan'), JSON.stringify(result.violations));
    },
    SimNode,
  );
});

test('without the wire blocking acquisitions, a node that hears nothing takes every VIP, and the no-steal invariant says so', async () => {
  const schedule: Schedule = { ...calm, faults: [{ at: 1500, kind: 'deaf', node: 'n3', until: 3500 }] };
  assert.deepEqual((await simulate(schedule)).violations, []);
  const proto = VipEngine.prototype as unknown as { operationContext: () => Record<string, unknown> };
  const original = proto.operationContext;
  proto.operationContext = function (this: unknown) {
    return { ...original.call(this), leftoverExpected: () => true };
  };
  try {
    const result = await simulate(schedule);
    assert.ok(result.violations.some((v) => v.invariant === 'no steal'), JSON.stringify(result.violations));
  } finally {
    proto.operationContext = original;
  }
});
