// The shared-queue takeover's protocol against a real MongoDB-protocol store (CongoDB, as in the
// ZoneMTA tests) through ZoneMTA's own mongodb driver, with the races put in order by hand: a node
// that beats between a peer's decision and its takeover keeps its queue; a node that returns while
// a takeover of it is under way waits for it, and its senders then know which deliveries they had
// fetched are no longer theirs. (The ZoneMTA failover test runs the whole thing, with the timing
// it happens to get.)
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { joinSharedQueue, QueueTakeover, releaseOrphanLocks, takenOverFrom, type DeliveryLocker, type QueueFence, type SharedQueue } from '../../lib/plugins/zonemta-queue-takeover';
import { congoDbModule, mtaSkipReason } from './lib/mta-servers';

// CongoDB is an ES module: a real import(), which TypeScript's CommonJS output would turn into require().
const importModule = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<any>;
const AFTER_MS = 1000;

describe('queue takeover in a shared MongoDB queue', { skip: mtaSkipReason('zonemta') }, () => {
  let server: { stop(): Promise<void> | void };
  let client: { db(): SharedQueue['mongodb'] & { collection(name: string): any }; close(): Promise<void> };
  let db: SharedQueue['mongodb'] & { collection(name: string): any };
  let n = 0;

  before(async () => {
    const { CongoServer } = await importModule(await congoDbModule());
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    server = new CongoServer({ port, host: '127.0.0.1', storage: 'memory' });
    await (server as unknown as { start(): Promise<void> }).start();
    const { MongoClient } = require(require.resolve('mongodb', { paths: [path.join(__dirname, '..', '..', '..', 'node_modules', 'zone-mta')] }));
    client = await MongoClient.connect(`mongodb://127.0.0.1:${port}/zone-mta`);
    db = client.db();
  });

  after(async () => {
    await client?.close();
    await server?.stop();
  });

  /** A fresh cluster id and queue collection per test, with entries of instances x and y and an unassigned one. */
  async function setUp(): Promise<{ clusterId: string; queue: (instanceId: string) => SharedQueue; entries: () => Promise<Record<string, { assigned: string; locked: boolean }>> }> {
    const tag = `t${++n}`;
    const collection = `zone-queue-${tag}`;
    await (db.collection(collection) as any).insertMany([
      { id: 'in-flight', seq: '001', assigned: 'x', locked: true, lockTime: Date.now() - 500 },
      { id: 'deferred', seq: '001', assigned: 'x', locked: false, lockTime: 0 },
      { id: 'of-y', seq: '001', assigned: 'y', locked: true, lockTime: Date.now() },
      { id: 'unassigned', seq: '001', assigned: 'no', locked: false, lockTime: 0 },
    ]);
    return {
      clusterId: `cluster-${tag}`,
      queue: (instanceId) => ({ instanceId, collection, mongodb: db }),
      entries: async () => Object.fromEntries(((await db.collection(collection).find({}).toArray()) as Array<{ id: string; assigned: string; locked: boolean }>).map((e) => [e.id, { assigned: e.assigned, locked: e.locked }])),
    };
  }

  const logs: string[] = [];
  const log = (level: string, message: string): void => void logs.push(`${level} ${message}`);

  test("a node gone (down in the cluster, silent in the store) for afterMs: its entries, locked in flight or waiting, become the taker's, unlocked; nobody else's move", async () => {
    const { clusterId, queue, entries } = await setUp();
    await joinSharedQueue(queue('x'), clusterId, 'x', AFTER_MS, log);
    let now = 0;
    const a = new QueueTakeover({ queue: queue('a'), clusterId, node: 'a', afterMs: AFTER_MS, log, now: () => now }, new Set());
    assert.equal(await a.tick(), 0, 'first look: x proves nothing yet');
    now = AFTER_MS - 1;
    assert.equal(await a.tick(), 0);
    now = AFTER_MS;
    assert.equal(await a.tick(), 2);
    assert.deepEqual(await entries(), {
      'in-flight': { assigned: 'a', locked: false },
      deferred: { assigned: 'a', locked: false },
      'of-y': { assigned: 'y', locked: true },
      unassigned: { assigned: 'no', locked: false },
    });
  });

  /** x joined and then went silent; a saw its beat once and now again afterMs later, unchanged. */
  async function xSilentForAfterMs() {
    const setup = await setUp();
    await joinSharedQueue(setup.queue('x'), setup.clusterId, 'x', AFTER_MS, log);
    let now = 0;
    const a = new QueueTakeover({ queue: setup.queue('a'), clusterId: setup.clusterId, node: 'a', afterMs: AFTER_MS, log, now: () => now }, new Set());
    await a.tick();
    now = AFTER_MS;
    return { ...setup, a, advance: (ms: number) => void (now += ms) };
  }

  test('a node that beats between a peer\'s decision and its takeover keeps its queue (compare-and-set on the beat)', async () => {
    const { clusterId, queue, entries, a } = await xSilentForAfterMs();
    const decision = await a.decide();
    assert.deepEqual(decision.takeOver.map((g) => g.node), ['x']);
    // x comes back (a restart: its plugin's first beat) before a acts.
    await joinSharedQueue(queue('x'), clusterId, 'x', AFTER_MS, log);
    assert.equal(await a.apply(decision), 0);
    assert.equal((await entries())['in-flight']?.assigned, 'x');
  });

  test('a node returning while a takeover of it is under way waits for it; its senders then know which of the deliveries they fetched before are no longer theirs', async () => {
    const { clusterId, queue, entries, a, advance } = await xSilentForAfterMs();
    const [gone] = (await a.decide()).takeOver;
    assert.ok(gone && (await a.claim(gone)), 'a claims the takeover');
    // x boots (ZoneMTA freed its locks and its senders fetched again: a lock of its new life).
    await (db.collection(queue("x").collection) as any).insertOne({ id: 'new-life', seq: '001', assigned: 'x', locked: true, lockTime: Date.now() });
    let joined = false;
    const join = joinSharedQueue(queue('x'), clusterId, 'x', AFTER_MS, log).then((since) => {
      joined = true;
      return since;
    });
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(joined, false, 'x waits while the takeover is under way');
    assert.equal(await a.moveEntries(gone), 3);
    const since = await join;
    assert.ok(logs.some((line) => /a is taking over this node's queue entries; waiting/.test(line)), logs.join('\n'));
    const fence: QueueFence = { pid: process.pid, instanceId: 'x', collection: queue('x').collection, since };
    assert.deepEqual(await takenOverFrom({ id: 'new-life', seq: '001' }, fence, db), { owner: 'a', locked: false }, 'fetched by x while it booted, taken by a: handed back');
    await (db.collection(queue('x').collection) as any).insertOne({ id: 'kept', seq: '001', assigned: 'x', locked: true, lockTime: Date.now() });
    assert.equal(await takenOverFrom({ id: 'kept', seq: '001' }, fence, db), undefined, 'still its own: sent');
    assert.deepEqual(await takenOverFrom({ id: 'sent-by-a', seq: '001' }, fence, db), { owner: null, locked: false }, 'gone: its new owner sent it');
    // And no new takeover starts now that x beats.
    advance(10 * AFTER_MS);
    assert.equal(await a.tick(), 0);
    assert.equal((await entries()).kept?.assigned, 'x');
  });

  test("ZoneMTA's in-memory locks of entries a peer took over or sent are released (ZoneMTA keeps them an hour, each holding one of the domain's connections)", async () => {
    const { queue } = await setUp();
    const QueueLocker = require(path.join(__dirname, '..', '..', '..', 'node_modules', 'zone-mta', 'lib', 'queue-locker.js'));
    const locker = new QueueLocker() as DeliveryLocker & { lock(key: string, zone: string, domain: string, owner: string, max: number, ttl: number): boolean; listSkipDomains(zone: string): string[] | false };
    await (db.collection(queue('x').collection) as any).insertOne({ id: 'ours', seq: '001', assigned: 'x', locked: true, lockTime: Date.now() });
    // x's senders hold three: one still x's, one a peer took over (now a's), one that peer sent (gone).
    await (db.collection(queue('x').collection) as any).updateOne({ id: 'deferred' }, { $set: { assigned: 'a' } });
    for (const id of ['ours', 'deferred', 'sent-by-a']) assert.ok(locker.lock(`lock ${id} 001`, 'default', 'acme.test', 'sender-1', 3, 3600_000));
    assert.deepEqual(locker.listSkipDomains('default'), ['acme.test'], 'the domain is at its 3 connections');
    const released = await releaseOrphanLocks(locker, db.collection(queue('x').collection), 'x');
    assert.deepEqual(released.sort(), ['lock deferred 001', 'lock sent-by-a 001']);
    assert.deepEqual([...locker.locks.keys()], ['lock ours 001']);
    assert.equal(locker.listSkipDomains('default'), false, 'the domain has its connections back');
  });
});
