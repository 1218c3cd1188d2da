// The chaos campaign (npm run chaos) in a short seeded run: 100 faults of every
// kind on four real MTA nodes, mail flowing all along, measured from the
// kernels. Zero safety violations: no dual holder between nodes that can hear
// each other past one heartbeat + announcement, no accepted message lost, none
// from a wrong IP; and no orphan past 2 s while a healthy declarer was up. The seed is fixed so a failure replays with
// `npm run chaos -- --faults 100 --seed 20261202 --nodes 4 --max-hold-ms 1200 --max-calm-ms 600`.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { chaosTable, runChaos } from '../../bench/chaos';
import { FAULT_KINDS } from '../../bench/lib/chaos-plan';
import { labSkipReason } from './harness';

describe('chaos campaign, short seeded run', { skip: labSkipReason() }, () => {
  test('100 faults of every kind on four MTA nodes: no violation, every kind applied, mail flowed', { timeout: 20 * 60_000 }, async () => {
    const summary = await runChaos({ faults: 100, seed: 20261202, nodes: 4, maxHoldMs: 1200, maxCalmMs: 600 });
    process.stdout.write(`# ${chaosTable(summary).split('\n').join('\n# ')}\n`);
    // Safety, strictly: no dual holder between nodes that can hear each other past one heartbeat +
    // announcement, no accepted message lost, none from a wrong IP, the measurement complete.
    const safety = summary.violations.filter((v) => !v.startsWith('orphan: ') && !v.startsWith('node logs in '));
    assert.deepEqual(safety, [], JSON.stringify(summary.report));
    // Liveness: the 1,000-fault campaign still finds orphans past dead-after + acquisition (a
    // holder's link going down: 345-395 ms against 300; a few up to 1.2 s, see the README), so
    // this run guards against worse: no VIP without a holder for 2 s while a healthy declarer is up.
    assert.ok(summary.report.orphan.longestMs <= 2000, `longest orphan ${summary.report.orphan.longestMs} ms: ${summary.violations.join('; ')}`);
    assert.equal(summary.faults, 100);
    assert.deepEqual(new Set(Object.keys(summary.byKind)), new Set(FAULT_KINDS));
    assert.ok(summary.mail.accepted >= 300, `mail flowed through the campaign (${summary.mail.accepted} accepted)`);
    // The kernel measurement saw the faults: VIPs changed hands and partitions made duals.
    assert.ok(summary.report.holderChanges >= 20, `holder changes ${summary.report.holderChanges}`);
  });
});
