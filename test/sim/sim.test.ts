// The deterministic cluster simulation as part of npm test: the regression
// seeds, then 2,000 seeded fault schedules (see simulation.ts for the
// invariants). A violation prints the seed, what broke, the schedule and the
// command that replays it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { REGRESSION_SEEDS } from './regressions';
import { report, runSeeds } from './run-seeds';
import { drawSchedule } from './schedule';
import { simulate } from './simulation';

const SCHEDULES = Number(process.env.MTA_VIP_SIM_SEEDS ?? 2000);

test('regression seeds stay fixed', async () => {
  for (const { seed, nodes, found } of REGRESSION_SEEDS) {
    const result = await simulate(drawSchedule(seed, nodes));
    assert.deepEqual(result.violations, [], `seed ${seed} (it once found: ${found})`);
  }
});

test('a seed replays exactly: same steps, same packets', async () => {
  const a = await simulate(drawSchedule(4242));
  const b = await simulate(drawSchedule(4242));
  assert.deepEqual(a, b);
  assert.ok(a.steps > 1000, `only ${a.steps} steps`);
});

test(`${SCHEDULES} seeded fault schedules keep every invariant`, async () => {
  const campaign = await runSeeds(1, SCHEDULES);
  assert.equal(campaign.schedules, SCHEDULES);
  assert.equal(campaign.violations, 0, `\n${campaign.failures.map((f) => report(f)).join('\n\n')}`);
});
