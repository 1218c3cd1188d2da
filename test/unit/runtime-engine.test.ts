// The engine driven directly: step() in, ready() out, time as a number. No
// root, no addon, no sockets: every decision of the runtime can be checked
// here, one input at a time.
import assert from 'node:assert/strict';
import { EventEmitter } from 'eventemitter3';
import { test } from 'node:test';
import { declare, encodeDeclaration, resolveConfig, type ClusterConfig } from '../../lib/core';
import { EngineDriver } from '../../lib/runtime/driver';
import { RELEASE_CHUNK, VipEngine } from '../../lib/runtime/engine';
import type { ClusterEvents, Effect, EngineInput, EnginePeer, OperationResult } from '../../lib/runtime/engine-io';
import type { Clock } from '../../lib/runtime/ports';
import { FakeNet } from './helpers/fake-net';
import { DeclarationCache } from '../../lib/runtime/view-builder';
import { nextState } from '../../lib/runtime/vip-lifecycle';
import { electOptions } from '../../lib/runtime/election-inputs';

const VIP = '198.18.1.1';

function configOf(node: string, extra: Partial<ClusterConfig> = {}): ClusterConfig {
  return {
    node,
    cluster: { id: 'unit', secret: 'sixteen bytes at least!', bind: node === 'n1' ? '198.18.0.10' : '198.18.0.11', peers: ['198.18.0.10', '198.18.0.11'] },
    listeners: [`${VIP}:25`],
    topology: [{ cidr: '198.18.1.0/24', interface: 'eth0' }],
    timers: { heartbeatMs: 50, deadAfterMs: 200, holdDownMs: 500 },
    probe: { timeoutMs: 10 },
    ...extra,
  };
}

function engineFor(node: string, extra: Partial<ClusterConfig> = {}): VipEngine {
  const address = node === 'n1' ? '198.18.0.10' : '198.18.0.11';
  const resolved = resolveConfig(configOf(node, extra), { hostname: node, interfaces: [{ name: 'eth0', up: true, addresses: [{ family: 4, address, prefix: 24 }] }] });
  return new VipEngine(resolved, declare(resolved), new DeclarationCache(), { retryUnhealthyMs: 1000, declarationWaitMs: 3000 });
}

/** A peer as the membership would report it. */
function peer(node: string, live: boolean, holdings: Array<[string, number]> = [], extra: Partial<ClusterConfig> = {}): EnginePeer {
  const address = node === 'n1' ? '198.18.0.10' : '198.18.0.11';
  const resolved = resolveConfig(configOf(node, extra), { hostname: node, interfaces: [{ name: 'eth0', up: true, addresses: [{ family: 4, address, prefix: 24 }] }] });
  return { node, live, liveSince: 0, declaration: encodeDeclaration(declare(resolved)), holdings: new Map(holdings), unhealthy: new Set(), address, leaving: false, moves: new Map(), neighbours: [] };
}

function step(engine: VipEngine, input: EngineInput): Effect[] {
  engine.step(input);
  return engine.ready().effects;
}

/** Runs one acquisition of `engine` to its end, answering every operation with success. */
function completeAcquisition(engine: VipEngine, effects: Effect[], now: number): Effect[] {
  let pending = effects;
  const all: Effect[] = [];
  for (let i = 0; i < 40 && pending.length; i++) {
    all.push(...pending);
    const results: OperationResult[] = [];
    for (const e of pending) {
      if (e.type === 'probe') results.push({ op: e.op, kind: 'probe', ok: true, found: new Map(), ms: 10 });
      if (e.type === 'bring-up') results.push({ op: e.op, kind: 'bring-up', ip: e.ip, ok: true });
      if (e.type === 'announce') results.push({ op: e.op, kind: 'announce', ok: true });
    }
    pending = [];
    for (const result of results) pending.push(...step(engine, { type: 'done', now, result }));
  }
  return all;
}

test('boot: nothing is acquired until one dead-after period has passed; the claim is published after the probe, before the address', () => {
  const engine = engineFor('n1');
  const boot = step(engine, { type: 'start', now: 1000, links: [{ ifname: 'eth0', usable: true }] });
  assert.deepEqual(boot.map((e) => e.type), ['publish', 'wake']);
  assert.deepEqual(boot[1], { type: 'wake', at: 1201 });
  assert.equal(engine.stateOf(VIP), 'idle');
  const settled = step(engine, { type: 'tick', now: 1201 });
  assert.deepEqual(settled.map((e) => e.type), ['probe', 'wake']);
  assert.deepEqual(settled[1], { type: 'wake', at: null }, 'nothing left to wait for');
  assert.equal(engine.stateOf(VIP), 'probing');
  const probe = settled[0] as Extract<Effect, { type: 'probe' }>;
  const probed = step(engine, { type: 'done', now: 1211, result: { op: probe.op, kind: 'probe', ok: true, found: new Map(), ms: 10 } });
  assert.deepEqual(probed.map((e) => e.type), ['publish', 'bring-up']);
  const publication = probed[0] as Extract<Effect, { type: 'publish' }>;
  assert.deepEqual([...publication.state.holdings], [[VIP, 1]], 'claimed in heartbeats (and told to the reaper) before the address is added');
  assert.deepEqual(publication.state.aliases, [{ ifname: 'eth0', cidr: `${VIP}/32` }]);
  assert.equal(engine.stateOf(VIP), 'acquiring');
  const all = completeAcquisition(engine, probed, 1215);
  assert.deepEqual(all.map((e) => e.type).filter((t) => t !== 'publish' && t !== 'wake'), ['bring-up', 'announce', 'follow-up', 'sniff']);
  assert.equal(engine.stateOf(VIP), 'held');
});

test('a takeover outbids the epoch of a holder that died, whose holdings have left the view', () => {
  const engine = engineFor('n2');
  step(engine, { type: 'start', now: 0, links: [{ ifname: 'eth0', usable: true }] });
  step(engine, { type: 'peers', now: 10, peers: [peer('n1', true, [[VIP, 7]])], change: { kind: 'up', node: 'n1', address: '198.18.0.10' } });
  assert.equal(step(engine, { type: 'tick', now: 300 }).filter((e) => e.type === 'probe').length, 0, 'n1 holds it: n2 stays standby');
  const probe = step(engine, { type: 'peers', now: 400, peers: [peer('n1', false, [[VIP, 7]])], change: { kind: 'down', node: 'n1', address: '198.18.0.10', reason: 'timeout' } }).find((e) => e.type === 'probe') as Extract<Effect, { type: 'probe' }>;
  const effects = step(engine, { type: 'done', now: 410, result: { op: probe.op, kind: 'probe', ok: true, found: new Map(), ms: 10 } });
  const publication = effects.find((e) => e.type === 'publish') as Extract<Effect, { type: 'publish' }>;
  assert.equal(publication.state.holdings.get(VIP), 8);
});

test('a failed listen gives the VIP up, marks it unhealthy for peers, and tries again after retryUnhealthyMs', () => {
  const engine = engineFor('n1');
  step(engine, { type: 'start', now: 0, links: [{ ifname: 'eth0', usable: true }] });
  const probe = step(engine, { type: 'tick', now: 201 }).find((e) => e.type === 'probe') as Extract<Effect, { type: 'probe' }>;
  const bringUp = step(engine, { type: 'done', now: 211, result: { op: probe.op, kind: 'probe', ok: true, found: new Map(), ms: 10 } }).find((e) => e.type === 'bring-up') as Extract<Effect, { type: 'bring-up' }>;
  engine.step({ type: 'done', now: 212, result: { op: bringUp.op, kind: 'bring-up', ip: VIP, ok: false, step: 'start services', error: Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' }) } });
  const ready = engine.ready();
  assert.equal(engine.stateOf(VIP), 'idle');
  assert.deepEqual(ready.events.filter((e) => e.name === 'unhealthy').map((e) => e.args[0]), [
    { ip: VIP, reason: 'listen-failed', detail: `start services for ${VIP} failed: listen EADDRINUSE (failure 1 in a row; retried in 1000 ms)` },
  ]);
  const publication = ready.effects.find((e) => e.type === 'publish') as Extract<Effect, { type: 'publish' }>;
  assert.deepEqual([...publication.state.unhealthy], [VIP]);
  assert.deepEqual(ready.effects.find((e) => e.type === 'wake'), { type: 'wake', at: 1213 });
  assert.ok(step(engine, { type: 'tick', now: 1213 }).some((e) => e.type === 'probe'), 'retried once the back-off ended');
});

test('an address removed behind our back is restored; one that cannot be restored is released', () => {
  const engine = engineFor('n1');
  step(engine, { type: 'start', now: 0, links: [{ ifname: 'eth0', usable: true }] });
  completeAcquisition(engine, step(engine, { type: 'tick', now: 201 }), 215);
  const restore = step(engine, { type: 'address-removed', now: 300, ifname: 'eth0', address: VIP }).find((e) => e.type === 'restore') as Extract<Effect, { type: 'restore' }>;
  assert.equal(engine.stateOf(VIP), 'restoring');
  const after = step(engine, { type: 'done', now: 301, result: { op: restore.op, kind: 'restore', ip: VIP, ok: false, error: new Error('EPERM') } });
  assert.equal(engine.stateOf(VIP), 'releasing', 'unhealthy here, so given up');
  assert.ok(after.some((e) => e.type === 'release'));
});

test('the transition table refuses what no input may cause', () => {
  assert.equal(nextState('idle', 'acquire', VIP), 'probing');
  assert.equal(nextState('probing', 'probed', VIP), 'acquiring');
  assert.throws(() => nextState('idle', 'release', VIP), /no transition 'release' from 'idle'/);
  assert.throws(() => nextState('releasing', 'acquired', VIP), /no transition/);
});

test('a listener that throws is reported as an error event, and the VIP is still acquired', async () => {
  const engine = engineFor('n1');
  const fakeNet = new FakeNet();
  let t = 0;
  const clock: Clock = { now: () => t, wall: () => t, after: () => ({ cancel() {} }), soon: (fn) => void setImmediate(fn), sleep: async () => undefined };
  const emitter = new EventEmitter<ClusterEvents>();
  const errors: string[] = [];
  emitter.on('acquired', () => {
    throw new Error('listener bug');
  });
  emitter.on('error', (e) => void errors.push(`${e.operation}: ${e.error.message}`));
  const driver = new EngineDriver(engine, fakeNet, clock, { publish() {} }, emitter, new Map([[VIP, []]]), { announceMode: 'request', announceCount: 1, announceIntervalMs: 0, sessionDrainMs: 0 });
  driver.step({ type: 'start', links: [{ ifname: 'eth0', usable: true }] });
  t = 201;
  driver.step({ type: 'tick' });
  for (let i = 0; i < 50 && engine.stateOf(VIP) !== 'held'; i++) await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  assert.equal(engine.stateOf(VIP), 'held');
  assert.deepEqual(fakeNet.log, [`+${VIP}/32`]);
  assert.deepEqual(errors, ["'acquired' listener: listener bug"]);
  driver.stop();
});

test('failures in a row back off, doubling up to 16 times the base, and a success starts over', () => {
  const engine = engineFor('n1');
  step(engine, { type: 'start', now: 0, links: [{ ifname: 'eth0', usable: true }] });
  let now = 201;
  const waits: number[] = [];
  for (let i = 0; i < 6; i++) {
    const probe = step(engine, { type: 'tick', now }).find((e) => e.type === 'probe') as Extract<Effect, { type: 'probe' }>;
    assert.ok(probe, `attempt ${i + 1} probes`);
    const bringUp = step(engine, { type: 'done', now, result: { op: probe.op, kind: 'probe', ok: true, found: new Map(), ms: 0 } }).find((e) => e.type === 'bring-up') as Extract<Effect, { type: 'bring-up' }>;
    const after = step(engine, { type: 'done', now, result: { op: bringUp.op, kind: 'bring-up', ip: VIP, ok: false, step: 'start services', error: new Error('EACCES') } });
    const wake = after.find((e) => e.type === 'wake') as Extract<Effect, { type: 'wake' }>;
    waits.push((wake.at as number) - 1 - now);
    now = wake.at as number;
  }
  assert.deepEqual(waits, [1000, 2000, 4000, 8000, 16000, 16000]);
});

test('an operation failed by its link going down (ENETDOWN) is no failure of the VIP: tried again after dead-after, not after a back-off', () => {
  const engine = engineFor('n1');
  step(engine, { type: 'start', now: 0, links: [{ ifname: 'eth0', usable: true }] });
  const netDown = (): Error => Object.assign(new Error('probing addresses failed: Network is down (ENETDOWN, recvfrom)'), { code: 'ENETDOWN' });
  for (const now of [201, 402, 603]) {
    const probe = step(engine, { type: 'tick', now }).find((e) => e.type === 'probe') as Extract<Effect, { type: 'probe' }>;
    assert.ok(probe, `probes at ${now}`);
    engine.step({ type: 'done', now: now + 1, result: { op: probe.op, kind: 'probe', ok: false, error: netDown() } });
    const ready = engine.ready();
    const unhealthy = ready.events.find((e) => e.name === 'unhealthy')?.args[0] as { reason: string; detail: string };
    assert.equal(unhealthy.reason, 'announce-failed');
    assert.match(unhealthy.detail, /its link went down; retried in 200 ms\)$/);
    assert.deepEqual(ready.effects.find((e) => e.type === 'wake'), { type: 'wake', at: now + 1 + 200 + 1 }, 'no doubling');
  }
  // A real failure afterwards starts the back-off at its base: the link's failures were not counted.
  const probe = step(engine, { type: 'tick', now: 1000 }).find((e) => e.type === 'probe') as Extract<Effect, { type: 'probe' }>;
  const bringUp = step(engine, { type: 'done', now: 1000, result: { op: probe.op, kind: 'probe', ok: true, found: new Map(), ms: 0 } }).find((e) => e.type === 'bring-up') as Extract<Effect, { type: 'bring-up' }>;
  engine.step({ type: 'done', now: 1001, result: { op: bringUp.op, kind: 'bring-up', ip: VIP, ok: false, step: 'start services', error: new Error('EACCES') } });
  assert.match((engine.ready().events.find((e) => e.name === 'unhealthy')?.args[0] as { detail: string }).detail, /failure 1 in a row; retried in 1000 ms/);
});

test('back from a cut link (longer than dead-after minus a heartbeat), a node acquires once every live peer is current, after one heartbeat period, not after dead-after', () => {
  for (const current of [true, false]) {
    // n1 preferred: its peer still names it owner of what it gave up at link down.
    const extra: Partial<ClusterConfig> = { vips: { [VIP]: { preferred: 'n1' } } };
    const engine = engineFor('n1', extra);
    const n2 = (complete: boolean): EnginePeer => ({ ...peer('n2', true, [], extra), complete });
    step(engine, { type: 'start', now: 0, links: [{ ifname: 'eth0', usable: true }] });
    completeAcquisition(engine, step(engine, { type: 'tick', now: 201 }), 215);
    assert.equal(engine.stateOf(VIP), 'held');
    // n2 joins; the VIP stays here.
    step(engine, { type: 'peers', now: 300, peers: [n2(true)], change: { kind: 'up', node: 'n2', address: '198.18.0.11' } });
    assert.equal(engine.stateOf(VIP), 'held');
    // Down for 180 ms: given up at once; the peer did not declare us dead (it names us owner still).
    const down = step(engine, { type: 'link', now: 1000, ifname: 'eth0', usable: false });
    const release = down.find((e) => e.type === 'release') as Extract<Effect, { type: 'release' }>;
    step(engine, { type: 'done', now: 1001, result: { op: release.op, kind: 'release', ip: VIP, ok: true, drained: 0, reset: 0, lateReset: 0, timedOut: false, errors: [] } });
    assert.equal(engine.stateOf(VIP), 'idle');
    step(engine, { type: 'link', now: 1180, ifname: 'eth0', usable: true });
    step(engine, { type: 'peers', now: 1200, peers: [n2(current)] });
    assert.ok(!step(engine, { type: 'tick', now: 1230 }).some((e) => e.type === 'probe'), 'not within one heartbeat period (+10 ms) of the return');
    const at1241 = step(engine, { type: 'tick', now: 1241 }).some((e) => e.type === 'probe');
    assert.equal(at1241, current, current ? 'the peer is current: acquired one heartbeat period after the return' : 'the peer\'s documents are behind its heartbeat: wait for them');
    if (!current) {
      assert.ok(step(engine, { type: 'peers', now: 1300, peers: [n2(true)] }).some((e) => e.type === 'probe'), 'as soon as they are current');
    }
  }
});

test('towards a majority count every peer in the table (one heard only leaving too) and every configured peer never heard', () => {
  // n3 rebooted: it saw n1 come up, heard n2 only say goodbye, never heard n4 (configured).
  const addresses = ['198.18.0.10', '198.18.0.11', '198.18.0.12', '198.18.0.13'];
  const resolved = resolveConfig(
    { ...configOf('n3'), quorum: true, cluster: { id: 'unit', secret: 'sixteen bytes at least!', bind: '198.18.0.12', peers: addresses } },
    { hostname: 'n3', interfaces: [{ name: 'eth0', up: true, addresses: [{ family: 4, address: '198.18.0.12', prefix: 24 }] }] },
  );
  const n1 = { ...peer('n1', true), address: '198.18.0.10' };
  const n2 = { ...peer('n2', false), address: '198.18.0.11', leaving: true };
  const options = electOptions(resolved, new Set(['n3', 'n1']), [n1, n2]);
  assert.deepEqual([...(options.quorum?.knownNodes ?? [])].sort(), ['n1', 'n2', 'n3', 'unheard 198.18.0.13'], 'four known: two live are no majority');
});

test('a release draining while nobody else held the VIP is told to hurry once another live node holds it (a partition healed meanwhile)', () => {
  const engine = engineFor('n1');
  step(engine, { type: 'start', now: 0, links: [{ ifname: 'eth0', usable: true }] });
  completeAcquisition(engine, step(engine, { type: 'tick', now: 201 }), 215);
  const closing = step(engine, { type: 'close', now: 300 });
  const release = closing.find((e) => e.type === 'release') as Extract<Effect, { type: 'release' }>;
  assert.equal(release.urgent, false, 'nobody else holds it: the sessions drain');
  assert.ok(!closing.some((e) => e.type === 'hurry'));
  // n2, cut off until now, holds it too.
  const merged = step(engine, { type: 'peers', now: 320, peers: [peer('n2', true, [[VIP, 3]])], change: { kind: 'up', node: 'n2', address: '198.18.0.11' } });
  assert.deepEqual(merged.filter((e) => e.type === 'hurry'), [{ type: 'hurry', ip: VIP }]);
  assert.ok(!step(engine, { type: 'tick', now: 330 }).some((e) => e.type === 'hurry'), 'once');
  // An urgent release (a stale claim after a stall) does not drain: never told to hurry.
  const stalled = engineFor('n1');
  step(stalled, { type: 'start', now: 0, links: [{ ifname: 'eth0', usable: true }] });
  completeAcquisition(stalled, step(stalled, { type: 'tick', now: 201 }), 215);
  const stale = step(stalled, { type: 'stall', now: 900, lagMs: 600 }).find((e) => e.type === 'release') as Extract<Effect, { type: 'release' }>;
  assert.equal(stale.urgent, true);
  assert.ok(!step(stalled, { type: 'peers', now: 910, peers: [peer('n2', true, [[VIP, 3]])], change: { kind: 'up', node: 'n2', address: '198.18.0.11' } }).some((e) => e.type === 'hurry'));
});

test('an answer to the probe from a host we cannot hear blocks the takeover; a leftover of a refused address does not', () => {
  const engine = engineFor('n2');
  step(engine, { type: 'start', now: 0, links: [{ ifname: 'eth0', usable: true }] });
  step(engine, { type: 'neighbours', now: 0, list: [{ address: '198.18.0.10', mac: '02:00:00:00:00:01' }] });
  const probe = step(engine, { type: 'tick', now: 201 }).find((e) => e.type === 'probe') as Extract<Effect, { type: 'probe' }>;
  engine.step({ type: 'done', now: 211, result: { op: probe.op, kind: 'probe', ok: true, found: new Map([[VIP, '02:00:00:00:00:01']]), ms: 10 } });
  const blocked = engine.ready();
  assert.equal(engine.stateOf(VIP), 'idle');
  assert.ok(!blocked.effects.some((e) => e.type === 'bring-up'), 'no address added');
  assert.deepEqual(blocked.events.filter((e) => e.name === 'unhealthy').map((e) => (e.args[0] as { reason: string }).reason), ['held-on-wire']);
  // Looked at again one dead-after period later (a holder may vanish without a sign).
  assert.deepEqual(blocked.effects.find((e) => e.type === 'wake'), { type: 'wake', at: 211 + 200 + 1 });
  // The same MAC, once its host refuses our heartbeats: a leftover alias, taken over.
  const again = step(engine, { type: 'refused', now: 300, addresses: ['198.18.0.10'] }).find((e) => e.type === 'probe') as Extract<Effect, { type: 'probe' }>;
  assert.ok(again, 'the back-off of held-on-wire ends when a host is newly proven without its process');
  const effects = step(engine, { type: 'done', now: 310, result: { op: again.op, kind: 'probe', ok: true, found: new Map([[VIP, '02:00:00:00:00:01']]), ms: 10 } });
  assert.ok(effects.some((e) => e.type === 'bring-up'));
});

test('a wake-up timer that fires early gets the same wake-up again, instead of none', () => {
  const engine = engineFor('n1');
  step(engine, { type: 'start', now: 1000, links: [{ ifname: 'eth0', usable: true }] });
  // libuv timers count from the loop's cached time: after a long turn they fire early.
  const early = step(engine, { type: 'tick', now: 1195 });
  assert.deepEqual(early.filter((e) => e.type === 'wake'), [{ type: 'wake', at: 1201 }]);
  assert.ok(step(engine, { type: 'tick', now: 1201 }).some((e) => e.type === 'probe'));
});

test('a mass takeover comes up chunk by chunk: each chunk is announced as soon as it is up, while the next comes up', () => {
  const ips = Array.from({ length: 150 }, (_, i) => `198.18.1.${i + 1}`);
  const engine = engineFor('n1', { listeners: ips.map((ip) => `${ip}:25`) });
  step(engine, { type: 'start', now: 1000, links: [{ ifname: 'eth0', usable: true }] });
  const probe = step(engine, { type: 'tick', now: 1201 }).find((e) => e.type === 'probe') as Extract<Effect, { type: 'probe' }>;
  assert.equal(probe.ips.length, 150, 'one probe for the whole batch');
  let effects = step(engine, { type: 'done', now: 1211, result: { op: probe.op, kind: 'probe', ok: true, found: new Map(), ms: 10 } });
  const claim = effects.find((e) => e.type === 'publish') as Extract<Effect, { type: 'publish' }>;
  assert.equal(claim.state.holdings.size, 150, 'every VIP claimed (and told to the reaper) before the first address');
  const bringUps = (list: Effect[]): Array<Extract<Effect, { type: 'bring-up' }>> => list.filter((e): e is Extract<Effect, { type: 'bring-up' }> => e.type === 'bring-up');
  let chunk = bringUps(effects);
  assert.equal(chunk.length, 64, 'the first chunk only');
  const announced: string[][] = [];
  for (let round = 0; round < 4 && chunk.length; round++) {
    effects = [];
    for (const up of chunk) effects.push(...step(engine, { type: 'done', now: 1220 + round, result: { op: up.op, kind: 'bring-up', ip: up.ip, ok: true } }));
    const announce = effects.find((e) => e.type === 'announce') as Extract<Effect, { type: 'announce' }>;
    assert.deepEqual(announce.ips, chunk.map((c) => c.ip), 'the chunk is announced once all of it is up');
    announced.push(announce.ips);
    const next = bringUps(effects);
    assert.ok(effects.indexOf(announce) < effects.indexOf(next[0] as Effect) || next.length === 0, 'announced before the next chunk comes up');
    const done = step(engine, { type: 'done', now: 1230 + round, result: { op: announce.op, kind: 'announce', ok: true } });
    for (const ip of announce.ips) assert.equal(engine.stateOf(ip), 'held');
    assert.ok(done.some((e) => e.type === 'follow-up'));
    chunk = next;
  }
  assert.deepEqual(announced.map((a) => a.length), [64, 64, 22]);
  assert.ok(ips.every((ip) => engine.stateOf(ip) === 'held'));
});

test('a hand-over of many VIPs goes a chunk at a time: the rest stay served until a release ends', () => {
  const ips = Array.from({ length: RELEASE_CHUNK + 86 }, (_, i) => `198.18.${1 + Math.floor(i / 250)}.${(i % 250) + 1}`);
  const extra: Partial<ClusterConfig> = { listeners: ips.map((ip) => `${ip}:25`), vips: Object.fromEntries(ips.map((ip) => [ip, { preferred: 'n2' }])), topology: [{ cidr: '198.18.0.0/16', interface: 'eth0' }] };
  const engine = engineFor('n1', extra);
  step(engine, { type: 'start', now: 1000, links: [{ ifname: 'eth0', usable: true }] });
  completeAcquisition(engine, step(engine, { type: 'tick', now: 1201 }), 1210);
  assert.ok(ips.every((ip) => engine.stateOf(ip) === 'held'), 'n1 alone holds every VIP');
  // The preferred node is back, past its hold-down: every VIP is its to take.
  const effects = step(engine, { type: 'peers', now: 5000, peers: [peer('n2', true, [], extra)], change: { kind: 'up', node: 'n2', address: '198.18.0.11' } });
  const releases = effects.filter((e): e is Extract<Effect, { type: 'release' }> => e.type === 'release');
  assert.equal(releases.length, RELEASE_CHUNK, 'one chunk');
  assert.ok(releases.every((r) => !r.urgent), 'drained: nobody else holds them');
  assert.equal(ips.filter((ip) => engine.stateOf(ip) === 'held').length, 86, 'the rest still served here');
  // Each release that ends lets one more start.
  const [first, second] = releases as [Extract<Effect, { type: 'release' }>, Extract<Effect, { type: 'release' }>];
  const next = step(engine, { type: 'done', now: 5100, result: { op: first.op, kind: 'release', ip: first.ip, ok: true, drained: 0, reset: 0, lateReset: 0, timedOut: false, errors: [] } });
  assert.equal(next.filter((e) => e.type === 'release').length, 1);
  // A VIP another live node holds too is released at once, whatever the pace.
  const clash = ips[ips.length - 1] as string;
  assert.equal(engine.stateOf(clash), 'held');
  const urgent = step(engine, { type: 'peers', now: 5200, peers: [peer('n2', true, [[clash, 9]], extra)] }).filter((e): e is Extract<Effect, { type: 'release' }> => e.type === 'release');
  assert.deepEqual(urgent.map((r) => [r.ip, r.urgent]), [[clash, true]]);
  assert.equal(engine.stateOf(second.ip), 'releasing');
});
