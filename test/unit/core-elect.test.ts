import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VipDeclaration } from '../../lib/core/declaration';
import { elect, nextWakeup, vipState, VipOutcome, ElectOptions } from '../../lib/core/elect';
import { ClusterView, NodeView, hasQuorum } from '../../lib/core/view';
import { betterClaim, compareClaims, nextEpoch } from '../../lib/core/claim';
import { plan } from '../../lib/core/plan';
import { explain } from '../../lib/core/explain';

function vip(ip: string, o: Partial<VipDeclaration> = {}): VipDeclaration {
  const family = ip.includes(':') ? 6 : 4;
  return { ip, family, interface: 'eth0', prefix: family === 4 ? 32 : 128, binding: null, ports: [], preferred: null, follows: null, ...o };
}

interface NodeOptions {
  live?: boolean;
  liveSince?: number;
  holding?: Record<string, number>;
  unhealthy?: string[] | 'all';
}

function node(name: string, vips: VipDeclaration[], o: NodeOptions = {}): NodeView {
  return {
    node: name,
    declaration: { node: name, vips },
    live: o.live ?? true,
    liveSince: o.liveSince ?? 0,
    holding: new Map(Object.entries(o.holding ?? {})),
    unhealthy: o.unhealthy === 'all' ? 'all' : new Set(o.unhealthy ?? []),
  };
}

function view(nodes: NodeView[], now = 100_000, overrides?: Record<string, string>): ClusterView {
  return { now, nodes, overrides: overrides ? new Map(Object.entries(overrides)) : undefined };
}

const options: ElectOptions = { holdDownMs: 2000 };

function outcome(v: ClusterView, ip: string, opts: ElectOptions = options): VipOutcome {
  const o = elect(v, opts).vips.get(ip);
  assert.ok(o, `no outcome for ${ip}`);
  return o;
}

const SEED = '192.168.0.51';

test("seed example: listener and binding on node1, binding only on node2 → UNSAFE, normal election", () => {
  const v = view([
    node('node1', [vip(SEED, { binding: 'example', ports: [25] })]),
    node('node2', [vip(SEED, { binding: 'example' })]),
  ]);
  const o = outcome(v, SEED);
  assert.ok(o.owner === 'node1' || o.owner === 'node2');
  assert.equal(o.rule, 'least-loaded');
  assert.equal(o.flags.conflict, undefined);
  assert.equal(o.flags.broken, undefined);
  assert.deepEqual(o.flags.unsafe?.claims, [
    { node: 'node1', value: 'binding "example" + listener on port 25' },
    { node: 'node2', value: 'binding "example"' },
  ]);
  assert.deepEqual(o.participants, ['node1', 'node2']);
});

test('UNSAFE with a free choice goes to a participant that declares every service on the VIP, whatever the hash says', () => {
  // Many IPs, so the rendezvous hash alone would give some of them to node2.
  const ips = Array.from({ length: 40 }, (_, i) => `198.18.7.${i + 1}`);
  const v = view([node('node1', ips.map((ip) => vip(ip, { binding: `b${ip}`, ports: [25] }))), node('node2', ips.map((ip) => vip(ip, { binding: `b${ip}` })))]);
  const assignment = elect(v, options);
  for (const ip of ips) {
    const o = assignment.vips.get(ip) as VipOutcome;
    assert.ok(o.flags.unsafe, ip);
    assert.equal(o.owner, 'node1', `${ip}: the node with the listener serves it`);
  }
  const why = explain(v, ips[0] as string, options)?.candidates.find((c) => c.node === 'node2');
  assert.equal(why?.code, 'fewer-services', JSON.stringify(why));
  // When node1 cannot serve it, node2 still may: the preference never leaves a VIP unowned.
  const down = elect(view([node('node1', [vip(SEED, { binding: 'x', ports: [25] })], { unhealthy: [SEED] }), node('node2', [vip(SEED, { binding: 'x' })])]), options);
  assert.equal(down.vips.get(SEED)?.owner, 'node2');
  // A holder keeps it (sticky comes first): no churn because of the flag.
  const held = elect(view([node('node1', [vip(SEED, { binding: 'x', ports: [25] })]), node('node2', [vip(SEED, { binding: 'x' })], { holding: { [SEED]: 1 } })]), options);
  assert.equal(held.vips.get(SEED)?.owner, 'node2');
});

test('seed preference: every config names node2 → node2 owns it', () => {
  const v = view([
    node('node1', [vip(SEED, { binding: 'example', preferred: 'node2' })]),
    node('node2', [vip(SEED, { binding: 'example', preferred: 'node2' })]),
  ]);
  const o = outcome(v, SEED);
  assert.equal(o.owner, 'node2');
  assert.equal(o.rule, 'preferred');
  assert.equal(o.preferred, 'node2');
  assert.deepEqual(o.flags, {});
});

test('seed preference conflict: two configs name different preferred nodes → conflict, preference ignored', () => {
  const v = view([
    node('node1', [vip(SEED, { binding: 'example', preferred: 'node1' })]),
    node('node2', [vip(SEED, { binding: 'example', preferred: 'node2' })], { holding: { [SEED]: 3 } }),
    node('node3', [vip(SEED, { binding: 'example' })]),
  ]);
  const o = outcome(v, SEED);
  assert.equal(o.preferred, null);
  assert.equal(o.rule, 'sticky');
  assert.equal(o.owner, 'node2');
  assert.deepEqual(o.flags.conflict?.claims, [
    { node: 'node1', value: 'node1' },
    { node: 'node2', value: 'node2' },
    { node: 'node3', value: '(none)' },
  ]);
  assert.match(o.flags.conflict?.message ?? '', /node1, node2.*preference ignored/);
});

test('conflict only counts live participants', () => {
  const v = view([
    node('node1', [vip(SEED, { preferred: 'node1' })]),
    node('node2', [vip(SEED, { preferred: 'node2' })], { live: false }),
  ]);
  const o = outcome(v, SEED);
  assert.equal(o.flags.conflict, undefined);
  assert.equal(o.owner, 'node1');
  assert.equal(o.rule, 'preferred');
});

test('seed BROKEN: one IP under two binding names → nobody manages it, the holder releases', () => {
  const v = view([
    node('node1', [vip(SEED, { binding: 'example', ports: [25], preferred: 'node1' })], { holding: { [SEED]: 4 } }),
    node('node2', [vip(SEED, { binding: 'other', preferred: 'node2' })]),
  ]);
  const a = elect(v, options);
  const o = a.vips.get(SEED) as VipOutcome;
  assert.equal(o.owner, null);
  assert.equal(o.rule, 'broken');
  assert.equal(o.flags.broken?.kind, 'binding-name');
  assert.deepEqual(o.flags.broken?.claims, [
    { node: 'node1', value: 'example' },
    { node: 'node2', value: 'other' },
  ]);
  // Flags combine; BROKEN wins.
  assert.ok(o.flags.conflict && o.flags.unsafe);
  assert.equal(vipState(o, 'node1'), 'unowned');
  assert.deepEqual(plan('node1', v, a), [{ type: 'release', ip: SEED, reason: 'broken', detail: o.flags.broken?.message }]);
  assert.deepEqual(plan('node2', v, a), []);
});

test('BROKEN: one binding name on different IPs across the cluster breaks every IP it names', () => {
  const v = view([
    node('node1', [vip('192.168.0.51', { binding: 'example' }), vip('192.168.0.60', { binding: 'fine' })]),
    node('node2', [vip('192.168.0.52', { binding: 'example' }), vip('192.168.0.60', { binding: 'fine' })]),
  ]);
  const a = elect(v, options);
  for (const ip of ['192.168.0.51', '192.168.0.52']) {
    const o = a.vips.get(ip) as VipOutcome;
    assert.equal(o.rule, 'broken');
    assert.equal(o.flags.broken?.kind, 'binding-address');
    assert.deepEqual(o.flags.broken?.claims, [
      { node: 'node1', value: 'example = 192.168.0.51' },
      { node: 'node2', value: 'example = 192.168.0.52' },
    ]);
  }
  assert.equal(a.vips.get('192.168.0.60')?.rule, 'least-loaded');
});

test('a binding declared on one node only and a listener-only node: UNSAFE, not BROKEN', () => {
  const v = view([node('a', [vip(SEED, { ports: [25] })]), node('b', [vip(SEED, { binding: 'example' })])]);
  const o = outcome(v, SEED);
  assert.ok(o.owner);
  assert.ok(o.flags.unsafe);
  assert.equal(o.flags.broken, undefined);
});

test('flags combine: conflict and UNSAFE together, normal election', () => {
  const v = view([node('a', [vip(SEED, { ports: [25], preferred: 'a' })]), node('b', [vip(SEED, { preferred: 'b' })])]);
  const o = outcome(v, SEED);
  assert.ok(o.flags.conflict && o.flags.unsafe);
  assert.equal(o.rule, 'least-loaded');
});

test('a VIP kept during its preferred node\'s hold-down counts towards that node\'s load: observers that disagree on the hold-down agree on every other owner', () => {
  // X prefers n2 and is held by n4; Y needs an owner. One observer has n2 live for 1 s (hold-down
  // running), n2 itself counts from long ago (over). Before, the first gave Y to n2 and n2 gave
  // it to n4: each thought the other should take Y, and nobody did.
  const X = '198.18.1.70';
  const Y = '198.18.1.72';
  const decl = [vip(X, { preferred: 'n2' }), vip(Y)];
  const at = (n2LiveSince: number) => view([node('n2', decl, { liveSince: n2LiveSince }), node('n4', decl, { holding: { [X]: 5 } })], 100_000);
  const inHoldDown = elect(at(99_000), options);
  const over = elect(at(0), options);
  assert.equal(inHoldDown.vips.get(X)?.owner, 'n4');
  assert.equal(over.vips.get(X)?.owner, 'n2');
  assert.equal(inHoldDown.vips.get(Y)?.owner, over.vips.get(Y)?.owner, 'the same owner for Y in both views');
  assert.equal(over.vips.get(Y)?.owner, 'n4');
  assert.deepEqual([...inHoldDown.load], [...over.load]);
});

test('preferred node after the hold-down; stickiness keeps the holder until then', () => {
  const nodes = (now: number) =>
    view(
      [node('a', [vip(SEED, { preferred: 'b' })], { holding: { [SEED]: 7 } }), node('b', [vip(SEED, { preferred: 'b' })], { liveSince: 50_000 })],
      now,
    );
  const early = outcome(nodes(51_000), SEED);
  assert.equal(early.owner, 'a');
  assert.equal(early.rule, 'sticky');
  assert.equal(early.holdDownUntil, 52_000);
  assert.equal(nextWakeup(nodes(51_000), options), 52_000);
  const late = outcome(nodes(52_000), SEED);
  assert.equal(late.owner, 'b');
  assert.equal(late.rule, 'preferred');
  assert.equal(nextWakeup(nodes(52_000), options), null);
});

test('the preferred node takes an unheld VIP at once: there is nothing to preempt', () => {
  const v = view([node('a', [vip(SEED, { preferred: 'b' })]), node('b', [vip(SEED, { preferred: 'b' })], { liveSince: 99_999 })]);
  const o = outcome(v, SEED);
  assert.equal(o.owner, 'b');
  assert.equal(o.rule, 'preferred');
});

test('a preferred node that is dead, unhealthy or not a participant is ignored', () => {
  const decl = [vip(SEED, { preferred: 'p' })];
  for (const p of [node('p', decl, { live: false }), node('p', decl, { unhealthy: [SEED] }), node('p', [])]) {
    const o = outcome(view([node('a', decl), p]), SEED);
    assert.equal(o.owner, 'a');
    assert.equal(o.rule, 'least-loaded');
  }
});

test('operator override wins over preference and stickiness, while its node lives and participates', () => {
  const decl = [vip(SEED, { preferred: 'a' })];
  const v = (c: NodeView) => view([node('a', decl, { holding: { [SEED]: 2 } }), node('b', decl), c], 100_000, { [SEED]: 'c' });
  const moved = outcome(v(node('c', decl)), SEED);
  assert.equal(moved.owner, 'c');
  assert.equal(moved.rule, 'override');
  for (const c of [node('c', decl, { live: false }), node('c', decl, { unhealthy: 'all' }), node('c', [])]) {
    const o = outcome(v(c), SEED);
    assert.equal(o.owner, 'a');
    assert.equal(o.rule, 'preferred');
  }
});

test('stickiness: a live healthy holder keeps the VIP even when more loaded', () => {
  const vips = ['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((ip) => vip(ip));
  const holding = { '10.0.0.1': 1, '10.0.0.2': 1, '10.0.0.3': 1 };
  const a = elect(view([node('a', vips, { holding }), node('b', vips)]), options);
  for (const o of a.vips.values()) {
    assert.equal(o.owner, 'a');
    assert.equal(o.rule, 'sticky');
  }
  assert.deepEqual([...a.load], [['a', 3], ['b', 0]]);
  // Unhealthy or dead holders lose it.
  const sick = elect(view([node('a', vips, { holding, unhealthy: ['10.0.0.2'] }), node('b', vips)]), options);
  assert.equal(sick.vips.get('10.0.0.2')?.owner, 'b');
  const dead = elect(view([node('a', vips, { holding, live: false }), node('b', vips)]), options);
  assert.ok([...dead.vips.values()].every((o) => o.owner === 'b' && o.rule === 'least-loaded'));
});

test('two live holders: the better claim keeps it (higher epoch, then preferred, then lower name)', () => {
  const d = [vip(SEED)];
  assert.equal(outcome(view([node('a', d, { holding: { [SEED]: 3 } }), node('b', d, { holding: { [SEED]: 5 } })]), SEED).owner, 'b');
  assert.equal(outcome(view([node('a', d, { holding: { [SEED]: 5 } }), node('b', d, { holding: { [SEED]: 5 } })]), SEED).owner, 'a');
  const prefB = [vip(SEED, { preferred: 'b' })];
  const prefA = [vip(SEED, { preferred: 'a' })];
  // In conflict (each names itself), the claim order still decides without agreement on preference.
  const o = outcome(view([node('a', prefB, { holding: { [SEED]: 5 } }), node('b', prefB.map((x) => ({ ...x })), { holding: { [SEED]: 5 } }), node('c', prefA)]), SEED);
  assert.ok(o.flags.conflict);
  assert.equal(o.owner, 'b');
});

test('least-loaded spreads VIPs evenly and deterministically', () => {
  const vips = Array.from({ length: 7 }, (_, i) => vip(`10.0.0.${i + 1}`));
  const v = view([node('a', vips), node('b', vips), node('c', vips)]);
  const a = elect(v, options);
  const counts = [...a.load.values()].sort();
  assert.deepEqual(counts, [2, 2, 3]);
  const again = elect(view([...v.nodes].reverse()), options);
  assert.deepEqual([...again.vips.values()].map((o) => o.owner), [...a.vips.values()].map((o) => o.owner));
});

test('no live healthy participant: unowned, reported with the rule no-participant', () => {
  const d = [vip(SEED)];
  for (const nodes of [[node('a', d, { live: false })], [node('a', d, { unhealthy: 'all' }), node('b', d, { unhealthy: [SEED] })]]) {
    const o = outcome(view(nodes), SEED);
    assert.equal(o.owner, null);
    assert.equal(o.rule, 'no-participant');
    assert.equal(vipState(o, 'a'), 'unowned');
  }
});

test('vipState: owned here, standby elsewhere', () => {
  const o = outcome(view([node('a', [vip(SEED, { preferred: 'a' })]), node('b', [vip(SEED, { preferred: 'a' })])]), SEED);
  assert.equal(vipState(o, 'a'), 'owned');
  assert.equal(vipState(o, 'b'), 'standby');
});

test('quorum: only a side with a strict majority of known nodes holds VIPs', () => {
  const d = [vip(SEED)];
  const known = ['a', 'b', 'c', 'd', 'e'];
  const two = view([node('a', d), node('b', d)]);
  assert.equal(hasQuorum(two, known), false);
  const a = elect(two, { ...options, quorum: { knownNodes: known } });
  assert.equal(a.quorum, false);
  assert.equal(a.vips.get(SEED)?.rule, 'no-quorum');
  assert.equal(a.vips.get(SEED)?.owner, null);
  const three = view([node('a', d), node('b', d), node('c', d), node('d', d, { live: false })]);
  assert.equal(hasQuorum(three, known), true);
  assert.ok(elect(three, { ...options, quorum: { knownNodes: known } }).vips.get(SEED)?.owner);
  assert.equal(hasQuorum(view([node('a', d), node('b', d), node('c', d, { live: false }), node('d', d, { live: false })]), []), false);
  // Without the option, a minority side keeps serving (like VRRP).
  assert.ok(elect(two, options).vips.get(SEED)?.owner);
});

test("rebalance 'on-join' moves VIPs gracefully to a joining node; 'never' leaves them", () => {
  const vips = Array.from({ length: 12 }, (_, i) => vip(`10.0.1.${i + 1}`));
  const holdingA = Object.fromEntries(vips.slice(0, 6).map((v) => [v.ip, 1]));
  const holdingB = Object.fromEntries(vips.slice(6).map((v) => [v.ip, 1]));
  const v = view([node('a', vips, { holding: holdingA }), node('b', vips, { holding: holdingB }), node('c', vips)]);
  assert.deepEqual([...elect(v, options).load.values()], [6, 6, 0]);
  const a = elect(v, { ...options, rebalance: 'on-join' });
  assert.deepEqual([...a.load.values()], [4, 4, 4]);
  assert.equal([...a.vips.values()].filter((o) => o.rule === 'rebalance').length, 4);
  // A balanced cluster is left alone: applying the moves gives a fixed point.
  const after = view(
    ['a', 'b', 'c'].map((n) =>
      node(n, vips, { holding: Object.fromEntries([...a.vips.values()].filter((o) => o.owner === n).map((o) => [o.ip, 2])) }),
    ),
  );
  const b = elect(after, { ...options, rebalance: 'on-join' });
  assert.ok([...b.vips.values()].every((o) => o.rule === 'sticky'));
});

test('followers take the owner of their leader and are not counted', () => {
  const d = () => [vip('10.0.0.5', { binding: 'acme' }), vip('10.0.0.6', { ports: [25], follows: '10.0.0.5' }), vip('10.0.0.7', { ports: [25] })];
  const a = elect(view([node('a', d()), node('b', d())]), options);
  const leader = a.vips.get('10.0.0.5') as VipOutcome;
  const follower = a.vips.get('10.0.0.6') as VipOutcome;
  assert.equal(follower.rule, 'follow');
  assert.equal(follower.owner, leader.owner);
  assert.equal(follower.follows, '10.0.0.5');
  assert.deepEqual(leader.followers, ['10.0.0.6']);
  assert.deepEqual([...a.load.values()].sort(), [1, 1]);
});

test("a node that cannot serve a follower cannot own its leader", () => {
  const d = [vip('10.0.0.5', { binding: 'acme', preferred: 'a' }), vip('10.0.0.6', { ports: [25], follows: '10.0.0.5' })];
  const a = elect(view([node('a', d, { unhealthy: ['10.0.0.6'] }), node('b', d)]), options);
  assert.equal(a.vips.get('10.0.0.5')?.owner, 'b');
  assert.equal(a.vips.get('10.0.0.6')?.owner, 'b');
});

test('nodes that disagree on what an IP follows make it BROKEN', () => {
  const a = elect(
    view([
      node('a', [vip('10.0.0.5', { binding: 'acme' }), vip('10.0.0.6', { ports: [25], follows: '10.0.0.5' })]),
      node('b', [vip('10.0.0.5', { binding: 'acme' }), vip('10.0.0.6', { ports: [25] })]),
    ]),
    options,
  );
  const o = a.vips.get('10.0.0.6') as VipOutcome;
  assert.equal(o.rule, 'broken');
  assert.equal(o.flags.broken?.kind, 'follow');
  assert.deepEqual(o.flags.broken?.claims, [
    { node: 'a', value: 'follows 10.0.0.5' },
    { node: 'b', value: 'elected on its own' },
  ]);
});

test('a follower is unowned when its leader is BROKEN', () => {
  const a = elect(
    view([
      node('a', [vip('10.0.0.5', { binding: 'acme' }), vip('10.0.0.6', { ports: [25], follows: '10.0.0.5' })]),
      node('b', [vip('10.0.0.5', { binding: 'other' }), vip('10.0.0.6', { ports: [25], follows: '10.0.0.5' })]),
    ]),
    options,
  );
  assert.equal(a.vips.get('10.0.0.5')?.rule, 'broken');
  assert.equal(a.vips.get('10.0.0.6')?.owner, null);
  assert.equal(a.vips.get('10.0.0.6')?.rule, 'follow');
});

test('a VIP declared only by dead nodes is listed, unowned; maxEpoch counts dead holders', () => {
  const v = view([node('a', [vip(SEED)], { live: false, holding: { [SEED]: 9 } }), node('b', [])]);
  const o = outcome(v, SEED);
  assert.equal(o.owner, null);
  assert.equal(o.rule, 'no-participant');
  assert.deepEqual(o.participants, []);
  assert.equal(o.maxEpoch, 9);
});

test('a view listing a node twice is refused', () => {
  assert.throws(() => elect(view([node('a', []), node('a', [])]), options), /twice/);
});

test('claims: higher epoch, then preferred, then lower name; epochs strictly increase', () => {
  const c = (node: string, epoch: number, preferred = false) => ({ node, epoch, preferred });
  assert.equal(betterClaim(c('b', 2), c('a', 1)).node, 'b');
  assert.equal(betterClaim(c('b', 2, true), c('a', 2)).node, 'b');
  assert.equal(betterClaim(c('b', 2), c('a', 2)).node, 'a');
  assert.ok(compareClaims(c('a', 2), c('a', 2)) === 0);
  const v = view([node('a', [vip(SEED)], { holding: { [SEED]: 4 } }), node('b', [vip(SEED)], { live: false, holding: { [SEED]: 6 } })]);
  assert.equal(nextEpoch(v, SEED), 7);
  assert.equal(nextEpoch(v, SEED, 10), 11);
  assert.equal(nextEpoch(v, '10.9.9.9'), 1);
});

test('plan: releases before acquires; never acquire what another live node holds', () => {
  const d = [vip('10.0.0.1', { preferred: 'b' }), vip('10.0.0.2', { preferred: 'a' }), vip('10.0.0.3', { preferred: 'a' })];
  const v = view([
    node('a', d, { liveSince: 0, holding: { '10.0.0.1': 3 } }),
    node('b', d, { liveSince: 0, holding: { '10.0.0.2': 5 } }),
    node('c', d, { live: false, holding: { '10.0.0.3': 8 } }),
  ]);
  const a = elect(v, options);
  assert.deepEqual(plan('a', v, a), [
    { type: 'release', ip: '10.0.0.1', reason: 'not-owner', detail: 'b is the owner (preferred)' },
    // 10.0.0.2 is still held by b: a waits for b's release.
    // 10.0.0.3 is held by dead c only: acquire with an epoch above c's.
    { type: 'acquire', ip: '10.0.0.3', epoch: 9 },
  ]);
  assert.deepEqual(plan('b', v, a), [{ type: 'release', ip: '10.0.0.2', reason: 'not-owner', detail: 'a is the owner (preferred)' }]);
  // Once both released, each acquires its own.
  const next = view([node('a', d), node('b', d)]);
  assert.deepEqual(plan('a', next, elect(next, options), new Map([['10.0.0.2', 12]])), [
    { type: 'acquire', ip: '10.0.0.2', epoch: 13 },
    { type: 'acquire', ip: '10.0.0.3', epoch: 1 },
  ]);
});

test('plan: when two live nodes hold the same VIP, the one that is not the owner releases', () => {
  const d = [vip(SEED)];
  const v = view([node('a', d, { holding: { [SEED]: 4 } }), node('b', d, { holding: { [SEED]: 5 } })]);
  const a = elect(v, options);
  assert.equal(a.vips.get(SEED)?.owner, 'b');
  assert.deepEqual(plan('b', v, a), []);
  assert.deepEqual(plan('a', v, a).map((x) => x.type), ['release']);
});

test('plan: followers released before their leader and acquired after it; undeclared VIPs released', () => {
  const d = [vip('10.0.0.5', { binding: 'acme', preferred: 'b' }), vip('10.0.0.6', { ports: [25], follows: '10.0.0.5' })];
  const v = view([node('a', d, { holding: { '10.0.0.5': 1, '10.0.0.6': 1, '10.0.0.99': 1 } }), node('b', d)]);
  const a = elect(v, options);
  assert.deepEqual(plan('a', v, a).map((x) => [x.type, x.ip, x.type === 'release' ? x.reason : x.epoch]), [
    ['release', '10.0.0.6', 'not-owner'],
    ['release', '10.0.0.5', 'not-owner'],
    ['release', '10.0.0.99', 'not-declared'],
  ]);
  const free = view([node('a', d), node('b', d)]);
  assert.deepEqual(plan('b', free, elect(free, options)).map((x) => x.ip), ['10.0.0.5', '10.0.0.6']);
});

test('plan: an unhealthy holder with nobody to take over releases (unowned)', () => {
  const v = view([node('a', [vip(SEED)], { holding: { [SEED]: 1 }, unhealthy: [SEED] })]);
  assert.deepEqual(plan('a', v, elect(v, options)).map((x) => x.type === 'release' && x.reason), ['unowned']);
});

test('explain: the rule and why each other participant was not chosen', () => {
  const d = [vip(SEED, { preferred: 'e' })];
  const v = view(
    [
      node('a', d, { holding: { [SEED]: 2 } }),
      node('b', d, { live: false }),
      node('c', d, { unhealthy: [SEED] }),
      node('e', d, { liveSince: 99_500 }),
      node('f', []),
    ],
    100_000,
  );
  const x = explain(v, SEED, options);
  assert.ok(x);
  assert.equal(x.owner, 'a');
  assert.equal(x.rule, 'sticky');
  assert.match(x.summary, /a owns 192.168.0.51: stickiness.*preferred node e takes it at t=101500/);
  assert.deepEqual(x.candidates.map((c) => [c.node, c.code]), [
    ['a', 'chosen'],
    ['b', 'dead'],
    ['c', 'unhealthy'],
    ['e', 'not-preferred'],
  ]);
  assert.match(x.candidates[3]?.reason ?? '', /holding down until t=101500/);
  assert.equal(explain(v, '10.9.9.9', options), null);
});

test('explain: least-loaded says who was more loaded and who lost the hash tie', () => {
  const vips = [vip('10.0.0.1', { preferred: 'a' }), vip('10.0.0.2')];
  const v = view([node('a', vips), node('b', vips), node('c', vips)]);
  const x = explain(v, '10.0.0.2', options);
  assert.ok(x);
  assert.equal(x.rule, 'least-loaded');
  assert.notEqual(x.owner, 'a');
  const byNode = new Map(x.candidates.map((c) => [c.node, c]));
  assert.equal(byNode.get('a')?.code, 'more-loaded');
  assert.match(byNode.get('a')?.reason ?? '', /1 VIPs against 0/);
  const loser = x.owner === 'b' ? 'c' : 'b';
  assert.equal(byNode.get(loser)?.code, 'lost-hash-tie');
});

test('explain: BROKEN, override and rebalance', () => {
  const broken = view([node('a', [vip(SEED, { binding: 'x' })]), node('b', [vip(SEED, { binding: 'y' })])]);
  const xb = explain(broken, SEED, options);
  assert.deepEqual(xb?.candidates.map((c) => c.code), ['broken', 'broken']);
  assert.match(xb?.summary ?? '', /no owner: BROKEN.*different binding names/);
  const moved = view([node('a', [vip(SEED)]), node('b', [vip(SEED)])], 0, { [SEED]: 'b' });
  assert.deepEqual(explain(moved, SEED, options)?.candidates.map((c) => c.code), ['overridden', 'chosen']);
  const vips = [vip('10.0.0.1'), vip('10.0.0.2')];
  const uneven = view([node('a', vips, { holding: { '10.0.0.1': 1, '10.0.0.2': 1 } }), node('b', vips)]);
  const a = elect(uneven, { ...options, rebalance: 'on-join' });
  const movedIp = [...a.vips.values()].find((o) => o.rule === 'rebalance')?.ip as string;
  const xr = explain(uneven, movedIp, { ...options, rebalance: 'on-join' });
  assert.equal(xr?.owner, 'b');
  assert.equal(xr?.candidates.find((c) => c.node === 'a')?.code, 'rebalanced-away');
});
