/**
 * Runs a range of seeds and reports: used by the test (2,000 seeds) and by
 * `npm run sim -- --seeds N [--seed S] [--nodes K]`, which ends with one JSON
 * line {"schedules":…,"steps":…,"violations":…}.
 */
import { parseArgs } from 'node:util';
import { describe as describeSchedule, drawSchedule } from './schedule';
import { simulate, type SimResult } from './simulation';

export interface Campaign {
  schedules: number;
  steps: number;
  violations: number;
  failures: Array<{ seed: number; result: SimResult; schedule: string }>;
}

export async function runSeeds(first: number, count: number, nodes?: number, asymmetric = true): Promise<Campaign> {
  const campaign: Campaign = { schedules: 0, steps: 0, violations: 0, failures: [] };
  for (let seed = first; seed < first + count; seed++) {
    const schedule = drawSchedule(seed, nodes, { asymmetric });
    const result = await simulate(schedule);
    campaign.schedules++;
    campaign.steps += result.steps;
    if (result.violations.length) {
      campaign.violations += result.violations.length;
      if (campaign.failures.length < 20) campaign.failures.push({ seed, result, schedule: describeSchedule(schedule) });
    }
  }
  return campaign;
}

/** A failure as printed: the seed, what broke, the schedule, and the command that replays it. */
export function report(failure: Campaign['failures'][number], nodes?: number): string {
  return [
    `seed ${failure.seed}: ${failure.result.violations.length} violation(s)`,
    ...failure.result.violations.slice(0, 5).map((v) => `  t=${v.at} ms ${v.invariant}: ${v.detail}`),
    failure.schedule,
    `  replay: npm run sim -- --seed ${failure.seed}${nodes ? ` --nodes ${nodes}` : ''}`,
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { seeds: { type: 'string', default: '1000' }, seed: { type: 'string' }, nodes: { type: 'string' }, symmetric: { type: 'boolean', default: false }, trace: { type: 'boolean', default: false } },
  });
  if (values.trace && values.seed !== undefined) {
    const schedule = drawSchedule(Number(values.seed), values.nodes ? Number(values.nodes) : undefined, { asymmetric: !values.symmetric });
    console.log(describeSchedule(schedule));
    const result = await simulate(schedule, { trace: (line) => console.log(line) });
    for (const v of result.violations) console.log(`VIOLATION t=${v.at} ${v.invariant}: ${v.detail}`);
    return;
  }
  const nodes = values.nodes ? Number(values.nodes) : undefined;
  const first = values.seed !== undefined ? Number(values.seed) : 1;
  const count = values.seed !== undefined && values.seeds === '1000' ? 1 : Number(values.seeds);
  const started = Date.now();
  const campaign = await runSeeds(first, count, nodes, !values.symmetric);
  for (const failure of campaign.failures) console.log(report(failure, nodes));
  console.log(JSON.stringify({ schedules: campaign.schedules, steps: campaign.steps, violations: campaign.violations, failedSchedules: campaign.failures.length, ms: Date.now() - started }));
  if (campaign.violations) process.exitCode = 1;
}

if (require.main === module) void main();
