// Who takes over a gone node's share of a shared queue, and when: down in the cluster AND silent in
// the store for afterMs, by exactly one live node (the first by name among those beating).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { instanceIdClash, QueueTakeoverBook, type QueueNodeRecord } from '../../lib/plugins/queue-takeover';

const AFTER = 5000;
const rec = (node: string, beat: number, instanceId = node): QueueNodeRecord => ({ node, instanceId, beat });
const names = (d: { takeOver: Array<{ node: string }> }): string[] => d.takeOver.map((a) => a.node);

test('a node down in the cluster and silent in the store is taken over after afterMs, not before, once per episode', () => {
  const book = new QueueTakeoverBook('mz2', AFTER);
  assert.deepEqual(names(book.observe(0, [rec('mz1', 7), rec('mz2', 3)], new Set(['mz1']))), []);
  // mz1 goes down at 1,000 and stops beating.
  assert.deepEqual(names(book.observe(1000, [rec('mz1', 8), rec('mz2', 4)], new Set())), []);
  assert.deepEqual(names(book.observe(5999, [rec('mz1', 8), rec('mz2', 9)], new Set())), [], 'silent for 4,999 ms only');
  const first = book.observe(6000, [rec('mz1', 8), rec('mz2', 10)], new Set());
  assert.deepEqual(first.takeOver, [{ node: 'mz1', instanceId: 'mz1', beat: 8, first: true }]);
  // Looked again while it stays gone: taken again (entries that showed up meanwhile), not a new episode.
  assert.deepEqual(book.observe(7000, [rec('mz1', 8), rec('mz2', 11)], new Set()).takeOver, [{ node: 'mz1', instanceId: 'mz1', beat: 8, first: false }]);
  // Back, then gone again: a new episode, after afterMs of silence again.
  assert.deepEqual(names(book.observe(8000, [rec('mz1', 9), rec('mz2', 12)], new Set(['mz1']))), []);
  assert.deepEqual(names(book.observe(9000, [rec('mz1', 10), rec('mz2', 13)], new Set())), []);
  assert.deepEqual(book.observe(14_000, [rec('mz1', 10), rec('mz2', 14)], new Set()).takeOver, [{ node: 'mz1', instanceId: 'mz1', beat: 10, first: true }]);
});

test('a node out of the cluster that still beats in the store is alive (maybe partitioned): left alone, reported once', () => {
  const book = new QueueTakeoverBook('mz2', AFTER);
  book.observe(0, [rec('mz1', 1)], new Set(['mz1']));
  let reported = 0;
  for (let t = 1000, beat = 2; t <= 30_000; t += 1000, beat++) {
    const decision = book.observe(t, [rec('mz1', beat)], new Set());
    assert.deepEqual(decision.takeOver, [], `not taken at ${t} ms while it beats`);
    reported += decision.stillWriting.length;
  }
  assert.equal(reported, 1);
  // A node that just died is not "still writing" for its last beat before the end.
  const fresh = new QueueTakeoverBook('mz2', AFTER);
  fresh.observe(0, [rec('mz1', 1)], new Set(['mz1']));
  fresh.observe(900, [rec('mz1', 2)], new Set(['mz1']));
  assert.deepEqual(fresh.observe(1000, [rec('mz1', 2)], new Set()).stillWriting, []);
  assert.deepEqual(fresh.observe(2000, [rec('mz1', 2)], new Set()).stillWriting, []);
  // It stops beating too: now it is gone.
  assert.deepEqual(names(book.observe(34_999, [rec('mz1', 31)], new Set())), []);
  assert.deepEqual(names(book.observe(35_000, [rec('mz1', 31)], new Set())), ['mz1']);
});

test('a node live in the cluster is never taken over, even when its beats stop (it cannot fetch, but may be sending)', () => {
  const book = new QueueTakeoverBook('mz2', AFTER);
  for (let t = 0; t <= 60_000; t += 1000) assert.deepEqual(names(book.observe(t, [rec('mz1', 1)], new Set(['mz1']))), []);
});

test('exactly one taker: the first by name among this node and the live peers that beat; the next when it stops beating', () => {
  const a = new QueueTakeoverBook('a', AFTER);
  const b = new QueueTakeoverBook('b', AFTER);
  const records = (t: number, beatA: number): QueueNodeRecord[] => [rec('a', beatA), rec('b', t), rec('gone', 1)];
  for (let t = 0; t <= 10_000; t += 1000) {
    const da = a.observe(t, records(t, t), new Set(['b']));
    const db = b.observe(t, records(t, t), new Set(['a']));
    assert.deepEqual(names(db), [], `b leaves it to a at ${t}`);
    if (t >= AFTER) assert.deepEqual(names(da), ['gone']);
  }
  // a is still live in the cluster but its beats stop (its store connection broke): b takes over.
  for (let t = 11_000; t < 15_000; t += 1000) assert.deepEqual(names(b.observe(t, records(t, 10_000), new Set(['a']))), []);
  assert.deepEqual(names(b.observe(15_000, records(15_000, 10_000), new Set(['a']))), ['gone']);
});

test('an observer that just started waits afterMs from its first look: a record first seen proves nothing yet', () => {
  const book = new QueueTakeoverBook('mz2', AFTER);
  const first = book.observe(100_000, [rec('mz1', 500)], new Set());
  assert.deepEqual(first, { takeOver: [], stillWriting: [] }, 'a first look is not reported as still writing either');
  assert.deepEqual(names(book.observe(104_999, [rec('mz1', 500)], new Set())), []);
  assert.deepEqual(names(book.observe(105_000, [rec('mz1', 500)], new Set())), ['mz1']);
});

test('the instance id of the record is the one taken over (nodes whose ids differ from their names)', () => {
  const book = new QueueTakeoverBook('mz2', AFTER);
  book.observe(0, [rec('mz1', 1, 'zone-a')], new Set());
  assert.deepEqual(book.observe(AFTER, [rec('mz1', 1, 'zone-a')], new Set()).takeOver, [{ node: 'mz1', instanceId: 'zone-a', beat: 1, first: true }]);
});

test('a live node of another name with this node\'s instance id is a clash; a record of a node gone long ago is not', () => {
  const now = Date.parse('2026-12-02T12:00:00Z');
  const self = { node: 'mz2', instanceId: 'default' };
  assert.equal(instanceIdClash(self, [{ ...rec('mz1', 4, 'default'), at: new Date(now - 2000) }], now, 60_000)?.node, 'mz1');
  assert.equal(instanceIdClash(self, [{ ...rec('mz1', 4, 'default'), at: new Date(now - 3600_000) }], now, 60_000), undefined);
  assert.equal(instanceIdClash(self, [{ ...rec('mz2', 4, 'default'), at: new Date(now) }, { ...rec('mz1', 4, 'mz1'), at: new Date(now) }], now, 60_000), undefined);
});

test('afterMs must be positive', () => {
  assert.throws(() => new QueueTakeoverBook('a', 0), /afterMs/);
});
