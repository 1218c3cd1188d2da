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

/** The schedule keeps every invariant, and breaks `invariant` once `method` of `of` is replaced. */
async function assertCaught(schedule: Schedule, invariant: string, method: string, replacement: (this: unknown, ...args: unknown[]) => unknown, of: { prototype: object } = VipEngine): Promise<void> {
  assert.deepEqual((await simulate(schedule)).violations, []);
  await withBrokenEngine(
    method,
    replacement,
    async () => {
      const result = await simulate(schedule);
      assert.ok(result.violations.some((v) => v.invariant === invariant), JSON.stringify(result.violations));
    },
    of,
  );
}

const preferN1 = calm.vips.map((v) => ({ ...v, preferred: 'n1' }));

test('without releases to a better claim, a partition heal leaves two holders and the one-holder invariant says so', async () => {
  const schedule: Schedule = { ...calm, faults: [{ at: 1000, kind: 'partition', sides: [['n1'], ['n2', 'n3']], until: 2500 }] };
  await assertCaught(schedule, 'one holder', 'release', function () {}, VipOperations);
});

test('without remembered epochs, a takeover after a crash reuses an epoch and the epoch invariant says so', async () => {
  const schedule: Schedule = { ...calm, vips: preferN1, faults: [{ at: 1500, kind: 'crash', node: 'n1', reaper: true, restartAt: 4000 }] };
  await assertCaught(schedule, 'epochs grow', 'rememberEpochs', function () {});
});

test('without acquisitions, nothing is held and the liveness invariant says so', async () => {
  await withBrokenEngine('startAcquisitions', function () {}, async () => {
    const result = await simulate(calm);
    assert.ok(result.violations.some((v) => v.invariant === 'liveness'), JSON.stringify(result.violations));
  });
});

test('without the guardian, a stopped holder keeps answering for its VIP and nobody serves it, and the no-orphan invariant says so', async () => {
  // Its kernel still answers the peers' probes, so they do not take it: nobody serves it.
  const schedule: Schedule = { ...calm, vips: preferN1, faults: [{ at: 1500, kind: 'stall', node: 'n1', ms: 1500 }] };
  await assertCaught(schedule, 'no orphan', 'guard', function () {}, SimNode);
});

test('without the wire blocking acquisitions, a node that hears nothing takes every VIP, and the no-steal invariant says so', async () => {
  const schedule: Schedule = { ...calm, faults: [{ at: 1500, kind: 'deaf', node: 'n3', until: 3500 }] };
  const original = (VipEngine.prototype as unknown as { operationContext: () => Record<string, unknown> }).operationContext;
  await assertCaught(schedule, 'no steal', 'operationContext', function (this: unknown) {
    return { ...original.call(this), leftoverExpected: () => true };
  });
});
