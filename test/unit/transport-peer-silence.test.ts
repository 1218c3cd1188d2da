// When a silent peer is declared dead: dead-after on a clean network, later when another peer
// still hears it (witnesses) or when loss on its stream makes the silence likely (loss-estimate).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counters } from '../../lib/transport/counters';
import { FALSE_DOWN_ODDS, LossEstimate, MAX_LOSS_DEAD_AFTERS, silenceLimitMs } from '../../lib/transport/loss-estimate';
import { PeerTable, VOUCH_LIMIT_SILENCES, type PeerRecord } from '../../lib/transport/peer-table';

const HB = 50;
const DEAD = 200;

function table(): { peers: PeerTable; counters: Counters } {
  const counters = new Counters();
  const peers = new PeerTable({ maxPeers: 16, maxNeighbours: 16, deadAfterMs: DEAD, heartbeatMs: HB, reassemblyTimeoutMs: 1000, vipsOf: () => [] }, counters);
  return { peers, counters };
}

/** A live peer whose heartbeats arrive at `times` (ms). */
function live(peers: PeerTable, node: string, incarnation: bigint, times: number[]): PeerRecord {
  const record = peers.add(node, incarnation, { address: '198.18.0.1', port: 7946 }) as PeerRecord;
  peers.heard(record, times[0] as number);
  record.live = true;
  for (const t of times.slice(1)) peers.heard(record, t);
  return record;
}

/** When `record` is declared dead, ticking every 5 ms from `from` (ms), with `each` run per tick. */
function declaredAt(peers: PeerTable, record: PeerRecord, from: number, each: (now: number) => void = () => undefined): number {
  for (let now = from; now < from + 10_000; now += 5) {
    each(now);
    if (peers.expire(now).includes(record)) return now;
  }
  return Infinity;
}

const ticks = (from: number, to: number, keep: (i: number) => boolean = () => true): number[] => {
  const out: number[] = [];
  for (let t = from, i = 0; t <= to; t += HB, i++) if (keep(i)) out.push(t);
  return out;
};

test('silence limit: dead-after on a clean network, stretched so that many heartbeats lost in a row has odds below 1e-6, capped', () => {
  assert.equal(silenceLimitMs(0, HB, DEAD), DEAD);
  assert.equal(silenceLimitMs(0.02, HB, DEAD), DEAD, 'a few late heartbeats change nothing');
  const at51 = silenceLimitMs(0.51, HB, DEAD);
  assert.ok(Math.pow(0.51, at51 / HB) <= FALSE_DOWN_ODDS, `${at51} ms`);
  assert.ok(Math.pow(0.51, at51 / HB - 1) > FALSE_DOWN_ODDS, `${at51} ms is longer than it needs`);
  assert.equal(silenceLimitMs(0.9, HB, DEAD), MAX_LOSS_DEAD_AFTERS * DEAD);
  assert.equal(silenceLimitMs(1, HB, DEAD), MAX_LOSS_DEAD_AFTERS * DEAD);
});

test('loss estimate: half the heartbeats lost reads as about half; late heartbeats do not count; it fades once loss ends', () => {
  const estimate = new LossEstimate(HB);
  // Every other heartbeat lost for 10 s.
  for (let t = 100; t <= 10_000; t += 2 * HB) estimate.heard(t, 2 * HB);
  assert.ok(Math.abs(estimate.rate() - 0.5) < 0.02, String(estimate.rate()));
  const jitter = new LossEstimate(HB);
  // Alternately 30 ms late and on time: gaps of 80 and 20 ms, nothing lost.
  for (let t = 0, i = 0; t < 10_000; t += HB, i++) jitter.heard(t, i % 2 ? 80 : 20);
  assert.equal(jitter.rate(), 0);
  // Ten seconds of a clean stream afterwards: back to a crash being declared at dead-after.
  for (let t = 10_050; t <= 20_000; t += HB) estimate.heard(t, HB);
  assert.equal(silenceLimitMs(estimate.rate(), HB, DEAD), DEAD, String(estimate.rate()));
});

test('a crash on a clean network is declared at dead-after, counted from the last heartbeat', () => {
  const { peers, counters } = table();
  const a = live(peers, 'a', 1n, ticks(0, 5000));
  assert.equal(declaredAt(peers, a, 5000), 5000 + DEAD + 5);
  assert.equal(a.silenceLimitMs, DEAD);
  assert.equal(counters.snapshot().silences_tolerated, 0);
});

test('under steady heavy loss the limit stretches to what the loss makes likely, and a crash is still declared at that limit', () => {
  const { peers, counters } = table();
  // About 51 % lost: a fixed pattern of 100 heartbeats with 51 gaps, repeated for 10 s.
  const pattern = Array.from({ length: 100 }, (_, i) => (i * 49) % 100 < 49);
  const a = live(peers, 'a', 1n, ticks(0, 10_000, (i) => i === 0 || (pattern[i % 100] as boolean)));
  const last = a.heardAt;
  const at = declaredAt(peers, a, last);
  const limit = a.silenceLimitMs;
  assert.ok(limit >= 600 && limit <= MAX_LOSS_DEAD_AFTERS * DEAD, `limit ${limit} ms at ${a.lossRate}`);
  assert.ok(at > last + limit && at <= last + limit + 5, `declared ${at - last} ms after its last heartbeat, limit ${limit}`);
  assert.equal(counters.snapshot().silences_tolerated, 1);
});

test('a peer another live peer still hears is kept live, for at most VOUCH_LIMIT_SILENCES limits; a witness never revives a dead one', () => {
  const { peers, counters } = table();
  const a = live(peers, 'a', 1n, ticks(0, 5000));
  const b = live(peers, 'b', 2n, ticks(0, 5000));
  const [witnessOfA] = table().peers.witnesses(0, 1); // no peers: nothing to witness
  assert.equal(witnessOfA, undefined);
  const aId = { id: Buffer.from(a.witnessKey, 'latin1') };
  // b keeps hearing a's heartbeats (age 10 ms) and says so; a's own no longer arrive here.
  const at = declaredAt(peers, a, 5000, (now) => {
    if (now % HB === 0) {
      peers.heard(b, now);
      peers.vouch(b, [{ ...aId, ageMs: 10 }], now);
    }
  });
  assert.equal(at, 5000 + VOUCH_LIMIT_SILENCES * DEAD + 5);
  assert.equal(counters.snapshot().silences_tolerated, 1);
  // Dead now: b's witness does not bring it back.
  peers.vouch(b, [{ ...aId, ageMs: 0 }], at + 50);
  assert.equal(a.live, false);
});

test('witnesses fade with the last real heartbeat: a crash is declared one dead-after after the last heartbeat anywhere', () => {
  const { peers } = table();
  const a = live(peers, 'a', 1n, ticks(0, 5000));
  const b = live(peers, 'b', 2n, ticks(0, 5000));
  const aId = { id: Buffer.from(a.witnessKey, 'latin1') };
  // a's last heartbeat reached b at 5040 (ours was lost); a then crashed. b reports the age honestly.
  const at = declaredAt(peers, a, 5000, (now) => {
    if (now % HB === 0) {
      peers.heard(b, now);
      if (now - 5040 <= DEAD) peers.vouch(b, [{ ...aId, ageMs: now - 5040 }], now);
    }
  });
  assert.equal(at, 5040 + DEAD + 5);
});

test('the witnesses a node sends: live peers heard within dead-after, the freshest when they do not all fit; a stall-forgiven peer is not among them', () => {
  const { peers } = table();
  const a = live(peers, 'a', 1n, [0, 100]);
  const b = live(peers, 'b', 2n, [0, 150]);
  live(peers, 'c', 3n, [0, 20]);
  const ids = (list: Array<{ id: Buffer }>): string[] => list.map((w) => w.id.toString('latin1'));
  assert.deepEqual(ids(peers.witnesses(200, 2)), [b.witnessKey, a.witnessKey]);
  assert.deepEqual(
    peers.witnesses(200, 5).map((w) => w.ageMs).sort((x, y) => x - y),
    [50, 100, 180],
  );
  // This process stalled for 1 s: the peers' allowance is renewed, but nobody was heard.
  peers.forgiveStall(1000, 1200);
  assert.deepEqual(peers.witnesses(1200, 5), []);
});
