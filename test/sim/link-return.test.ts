// A holder's link goes down for a moment: it gives its VIPs up at once (what it holds on a dead
// link serves nobody), and its peers take them only once they miss its heartbeats for
// dead-after. A link back just before that: nobody took over, the peers still name it owner, and
// it must take its VIPs back quickly. The chaos campaign found it waiting a whole dead-after
// period first (orphans of 345-440 ms = the outage + 200 ms): bounded here in the simulation.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { drawSchedule, type Schedule } from './schedule';
import { DEAD_AFTER_MS, simulate } from './simulation';

/** Detection (dead-after) plus one acquisition: the chaos campaign's orphan bound. */
const ORPHAN_BOUND_MS = DEAD_AFTER_MS + 100;

const base: Schedule = { ...drawSchedule(1, 3), quorum: false, faults: [] };

for (const preferred of ['n1', null] as const) {
  for (const outageMs of [155, 160, 170, 180, 190, 200, 205, 220, 240, 320]) {
    test(`link of the holder down for ${outageMs} ms (${preferred ? 'preferred holder' : 'no preference'}): its VIPs are served again within ${ORPHAN_BOUND_MS} ms`, async () => {
      // Every VIP on n1 first (preferred, or the only node up until the others join).
      const vips = base.vips.map((v) => ({ ...v, declarers: [...base.nodes], brokenBy: null, preferred }));
      const schedule: Schedule = { ...base, vips, faults: [{ at: 2000, kind: 'link', node: 'n1', until: 2000 + outageMs }] };
      const orphans: Array<{ ip: string; ms: number; at: number }> = [];
      const result = await simulate(schedule, { orphan: (ip, ms, at) => orphans.push({ ip, ms, at }) });
      assert.deepEqual(result.violations, []);
      const around = orphans.filter((o) => o.at >= 1990 && o.at < 2000 + outageMs + 1000);
      const longest = Math.max(0, ...around.map((o) => o.ms));
      assert.ok(longest <= ORPHAN_BOUND_MS, `unserved for ${longest} ms: ${JSON.stringify(around)}`);
    });
  }
}

test('a preferred node back from a cut counts its hold-down from its return, as its peers do: a VIP that needs a new owner meanwhile is not left to a disagreement on loads', async () => {
  // Found by the chaos campaign (a third VIP unserved 800 ms), reproduced here: n2, preferred
  // for .4, is cut off 586 ms (its peers declare it dead, .4 moves); 110 ms after its return n3
  // leaves. n2 thought its hold-down over and counted .4 as its own, its peers did not; each
  // then found the other less loaded for n3's VIP, and nobody took it until the hold-down ended.
  const vips: Schedule['vips'] = [
    { ip: '198.18.1.1', kind: 'listener', declarers: ['n1', 'n2', 'n3'], preferred: null, brokenBy: null },
    { ip: '198.18.1.2', kind: 'listener', declarers: ['n1', 'n2', 'n3'], preferred: null, brokenBy: null },
    { ip: '198.18.1.3', kind: 'listener', declarers: ['n1', 'n2', 'n3'], preferred: 'n1', brokenBy: null },
    { ip: '198.18.1.4', kind: 'listener', declarers: ['n1', 'n2'], preferred: 'n2', brokenBy: null },
  ];
  const schedule: Schedule = {
    ...base,
    vips,
    faults: [
      { at: 1500, kind: 'link', node: 'n2', until: 2086 },
      { at: 2196, kind: 'leave', node: 'n3', restartAt: 5196 },
    ],
  };
  const orphans: Array<{ ip: string; ms: number; at: number }> = [];
  const result = await simulate(schedule, { orphan: (ip, ms, at) => orphans.push({ ip, ms, at }) });
  assert.deepEqual(result.violations, []);
  const after = orphans.filter((o) => o.at >= 2196 && o.at < 4000);
  assert.ok(after.every((o) => o.ms <= ORPHAN_BOUND_MS), `unserved after n3 left: ${JSON.stringify(after)}`);
});
