// ZoneMTA under failover, deployed the way that lets queued mail survive a
// node: two ZoneMTA nodes sharing one MongoDB (CongoDB here) and one Redis on a
// third host, each with its own queue instance id. Mail flows to the listener
// VIP while a binding moves there and back (admin endpoint), the listener's
// holder is SIGKILLed and comes back, and the other node is SIGTERMed and
// comes back. Every accepted message must reach the sink once, from its own
// binding's IP, within 60 s, and no client session may be left silent or cut
// by a release.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, labSkipReason, type LabProcess, vip4 } from './harness';
import { failoverScenarios, flowMessages, moveVia, runFlow, type TwoNodeCluster } from './lib/mail-flow';
import { waitFor } from './lib/wait';
import { congoDbModule, type Received, MtaProcesses, mtaSkipReason, outputMatches, receivedBySubject, spawnZoneMta, swaks, waitHolders, ZONEMTA_PLUGIN } from './lib/mta-servers';

const NODES = ['mz1', 'mz2'] as const;
const LISTENER = vip4(50);
const BINDINGS = { acme: vip4(51), beta: vip4(52) } as const;
const HOME: Record<string, string> = { [LISTENER]: 'mz1', [BINDINGS.acme]: 'mz1', [BINDINGS.beta]: 'mz2' };
const SECRET = 'zonemta failover test secret';
const ADMIN_PORT = 7991;
const QUEUE_TAKEOVER_MS = 4000;

/**
 * A ZoneMTA plugin of the test's, run before mta-vip's hooks: holds a delivery that is about to
 * leave from its binding here (subject 'hold ...') between ZoneMTA's fetch and its connection,
 * until the file 'release-hold' appears, so the binding can move away in that window.
 */
const HOLD_PLUGIN = `'use strict';
const fs = require('fs');
const path = require('path');
module.exports.title = 'hold-before-connect';
module.exports.init = (app, done) => {
  app.addHook('sender:connect', async (delivery) => {
    const subject = String(delivery.headers.getFirst('Subject') || '');
    if (!subject.startsWith('hold ') || delivery.mtaVipVia !== 'local') return;
    app.logger.info('hold', 'holding %s (%s) before its connection', delivery.id, subject);
    const file = path.join(__dirname, 'release-hold');
    for (let i = 0; i < 1200 && !fs.existsSync(file); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    app.logger.info('hold', 'released %s', delivery.id);
  });
  done();
};
`;

describe('ZoneMTA under failover, two nodes sharing MongoDB and Redis', { skip: labSkipReason() ?? mtaSkipReason('zonemta') }, () => {
  let lab: Lab;
  let dir: string;
  let processes: MtaProcesses;
  let sink: LabProcess;
  const mta = new Map<string, LabProcess>();

  function config(node: string): Record<string, unknown> {
    const db = lab.host('db').ipv4;
    // Two sender processes per zone, each with its own relay gateway. processes x connections stays
    // within ZoneMTA's per-domain maxConnections (5): above it, ZoneMTA's fetch locks a delivery in
    // MongoDB, then fails its in-memory domain lock and leaves it locked for the lock TTL (an hour).
    const zone = (extra: Record<string, unknown>): Record<string, unknown> => ({ host: lab.host('sink').ipv4, port: 2525, processes: 2, connections: 2, ignoreIPv6: true, pool: 'default', ...extra });
    return {
      name: `ZoneMTA-${node}`,
      ident: `zone-mta-${node}`,
      log: { level: 'info' },
      // Each node its own instance id: a delivery one node has locked is never sent by the other.
      queue: { instanceId: node },
      dbs: { mongo: `mongodb://${db}:27017/zone-mta`, redis: { host: db, port: 6379, db: 3 }, sender: 'zone-mta' },
      dns: { caching: false },
      mtaSts: { enabled: false },
      pluginsPath: dir,
      plugins: {
        'hold-before-connect': { enabled: ['sender'], ordering: 1 },
        [ZONEMTA_PLUGIN]: {
          ordering: 2,
          enabled: ['main', 'receiver', 'sender'],
          stateFile: path.join(dir, `state-${node}.json`),
          zones: { default: 'acme', beta: 'beta' },
          hostnames: { acme: 'acme.mail.test', beta: 'beta.mail.test' },
          admin: { port: ADMIN_PORT },
          // A node down in the cluster and silent in the queue this long has its queue taken over.
          queueTakeoverMs: QUEUE_TAKEOVER_MS,
          cluster: {
            node,
            cluster: { id: 'zonemta-failover', secret: SECRET, bind: lab.host(node).ipv4, peers: NODES.map((n) => lab.host(n).ipv4) },
            listeners: [`${LISTENER}:2525`],
            bindings: Object.entries(BINDINGS).map(([name, address]) => ({ name, address })),
            vips: { [LISTENER]: { preferred: 'mz1' }, [BINDINGS.acme]: { preferred: 'mz1' }, [BINDINGS.beta]: { preferred: 'mz2' } },
            topology: [{ cidr: '198.18.0.0/16', interface: 'eth0' }],
            timers: { holdDownMs: 500 },
          },
        },
      },
      smtpInterfaces: { feeder: { enabled: true, host: '0.0.0.0', port: 2525, processes: 1, authentication: false, hostname: `${node}.zonemta.test` } },
      zones: { default: zone({}), beta: zone({ recipientDomains: ['beta.test'] }), bounces: zone({}) },
    };
  }

  async function startZoneMta(node: string): Promise<LabProcess> {
    const p = spawnZoneMta(lab, node, dir, config(node));
    const before = mta.get(node);
    if (before) mta.set(`${node} (pid ${before.child.pid})`, before);
    mta.set(node, p);
    await outputMatches(p, /Initialized mta-vip/, 60_000, `ZoneMTA on ${node} loaded the plugin`);
    await outputMatches(p, /Sending queue initialized|queue initialized/i, 60_000, `ZoneMTA on ${node} has its queue`);
    return p;
  }

  before(async () => {
    const congo = await congoDbModule();
    lab = await Lab.create({ hosts: [...NODES, 'db', 'client', 'sink'] });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mta-vip-zonemta-failover-'));
    fs.writeFileSync(path.join(dir, 'hold-before-connect.js'), HOLD_PLUGIN);
    processes = new MtaProcesses(lab);
    sink = await processes.sink('sink');
    await processes.redis('db', 6379, lab.host('db').ipv4);
    await processes.congo('db', congo, 27017, lab.host('db').ipv4);
    const check = await lab.exec('mz1', ['redis-cli', '-h', lab.host('db').ipv4, 'ping'], { allowFailure: true });
    assert.match(check.stdout + check.stderr, /PONG/, `Redis on db reachable from mz1: ${check.stdout} ${check.stderr} ${JSON.stringify((await lab.exec('db', ['ss', '-ltnp'], { allowFailure: true })).stdout)}`);
    await Promise.all(NODES.map((node) => startZoneMta(node))).catch(async (error: Error) => {
      throw new Error(`${error.message}\n--- listening on db: ${(await lab.exec('db', ['ss', '-ltnp'], { allowFailure: true })).stdout}`);
    });
    await waitHolders(lab, NODES, HOME, 30_000).catch((error: Error) => {
      throw new Error(`${error.message}\n${[...mta].map(([node, p]) => `--- ${node}\n${(p.stdout + p.stderr).slice(-3000)}`).join('\n')}`);
    });
  });

  after(async () => {
    await Promise.all([...mta.values()].map((p) => p.stop(5000)));
    await processes?.sweep([...NODES, 'db', 'sink']);
    await lab?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Runs `body` (async, with `db` the queue's database) in the db host with ZoneMTA's mongodb driver; resolves with what it prints. */
  async function withQueueDb(body: string): Promise<string> {
    const driver = require.resolve('mongodb', { paths: [path.join(__dirname, '..', '..', '..', 'node_modules', 'zone-mta')] });
    const script = `const { MongoClient } = require(${JSON.stringify(driver)});
      (async () => {
        const client = await MongoClient.connect('mongodb://${lab.host('db').ipv4}:27017/zone-mta');
        const db = client.db();
        try { ${body} } finally { await client.close(); }
      })().catch((error) => { console.log('error: ' + error.message); });`;
    const result = await lab.exec('db', [process.execPath, '-e', script], { allowFailure: true, timeoutMs: 20_000 });
    return result.stdout + result.stderr;
  }

  /** The shared queue's entries (at most 40) and the nodes' records, for a failure's report. */
  const describeQueue = (): Promise<string> =>
    withQueueDb(`
      const now = Date.now();
      const entries = await db.collection('zone-queue').find({}).limit(40).toArray();
      for (const e of entries) console.log(JSON.stringify({ id: e.id, seq: e.seq, zone: e.sendingZone, to: e.recipient, assigned: e.assigned, locked: e.locked, lockAgoMs: e.lockTime ? now - e.lockTime : null, dueInMs: e.queued ? new Date(e.queued).getTime() - now : null, deferred: e._deferred && e._deferred.count }));
      console.log('entries in all: ' + await db.collection('zone-queue').countDocuments({}));
      for (const r of await db.collection('mta-vip-queue-nodes').find({}).toArray()) console.log(JSON.stringify({ node: r.node, instanceId: r.instanceId, beat: r.beat, atAgoMs: now - new Date(r.at).getTime(), takeover: r.takeover }));
    `);

  const cluster = (): TwoNodeCluster => ({
    describeQueue,
    lab,
    sink,
    mtas: mta,
    nodes: NODES,
    home: HOME,
    listener: LISTENER,
    adminPort: ADMIN_PORT,
    restart: async (node) => {
      // ZoneMTA's senders and receivers outlive a SIGKILLed main process: what a node's crash leaves.
      await processes.sweep([node]);
      await startZoneMta(node);
    },
  });

  failoverScenarios(cluster, BINDINGS, 'beta', 'zonemta');

  test('a delivery whose binding moves away between fetch and connection is sent from the binding\'s IP by its new holder within seconds, not after ZoneMTA\'s 5-minute deferral', async () => {
    await waitHolders(lab, NODES, HOME, 30_000);
    const mz2 = mta.get('mz2') as LabProcess;
    // The hold is in sender:connect, which ZoneMTA skips when it reuses a pooled connection: wait
    // until the earlier tests' connections from beta's IP have closed (the fresh-clone CI reused one
    // and the delivery went out unheld).
    await waitFor(async () => (await lab.exec('mz2', ['ss', '-Htn', 'state', 'established', 'src', BINDINGS.beta])).stdout.trim() === '', { timeoutMs: 60_000, intervalMs: 200, what: `no pooled connection from ${BINDINGS.beta} left on mz2` });
    // mz1 takes it on the listener and relays it to mz2, which holds beta; mz2's sender holds it.
    const sent = await swaks(lab, 'client', LISTENER, 2525, 'user@beta.test', 'rcpt@beta.test', 'hold moved binding');
    assert.equal(sent.code, 0, sent.output);
    await outputMatches(mz2, /holding \S+ \(hold moved binding\) before its connection/, 30_000, 'mz2 holds the delivery before its connection').catch(async (error: Error) => {
      for (const [node, p] of mta) fs.writeFileSync(path.join(os.tmpdir(), `mta-vip-hold-${node}.log`), p.stdout + p.stderr);
      throw new Error(`${error.message}\nqueue: ${await describeQueue()}`);
    });
    await moveVia(lab, 'mz2', ADMIN_PORT, BINDINGS.beta, 'mz1');
    await waitHolders(lab, NODES, { ...HOME, [BINDINGS.beta]: 'mz1' }, 15_000);
    const started = Date.now();
    fs.writeFileSync(path.join(dir, 'release-hold'), '');
    try {
      const message = await receivedBySubject(sink, mta, 'hold moved binding', 20_000);
      assert.equal(message.remoteAddress, BINDINGS.beta, 'from the binding\'s IP, on its new holder');
      assert.match(mz2.stdout + mz2.stderr, /binding beta left this node before connecting \(holder mz1\); trying again in 2000 ms/);
      process.stdout.write(`# delivered ${Date.now() - started} ms after the binding had moved\n`);
    } finally {
      fs.rmSync(path.join(dir, 'release-hold'), { force: true });
      await moveVia(lab, 'mz2', ADMIN_PORT, BINDINGS.beta, null);
      await moveVia(lab, 'mz1', ADMIN_PORT, BINDINGS.beta, null);
      await waitHolders(lab, NODES, HOME, 30_000);
    }
    // The move was the binding's, not the destination's: the next message for that domain goes out at
    // once (ZoneMTA had cached the failed connection as the destination's and deferred the zone's mail
    // to it for 5 minutes).
    const next = await swaks(lab, 'client', LISTENER, 2525, 'user@beta.test', 'rcpt@beta.test', 'after the held one');
    assert.equal(next.code, 0, next.output);
    const after = await receivedBySubject(sink, mta, 'after the held one', 20_000);
    assert.equal(after.remoteAddress, BINDINGS.beta);
  });

  test('a third node configured with a live node\'s queue.instanceId is refused at start, naming that node', async () => {
    await waitHolders(lab, NODES, HOME, 30_000);
    const root = path.join(__dirname, '..', '..', '..');
    const script = `
      const { MongoClient } = require(${JSON.stringify(require.resolve('mongodb', { paths: [path.join(root, 'node_modules', 'zone-mta')] }))});
      const { joinSharedQueue } = require(${JSON.stringify(path.join(root, 'dist', 'lib', 'plugins', 'zonemta-queue-takeover.js'))});
      (async () => {
        const client = await MongoClient.connect('mongodb://${lab.host('db').ipv4}:27017/zone-mta');
        try {
          await joinSharedQueue({ instanceId: 'mz1', collection: 'zone-queue', mongodb: client.db() }, 'zonemta-failover', 'mz3', ${QUEUE_TAKEOVER_MS}, console.log);
          console.log('registered');
        } catch (error) {
          console.log(error.name + ': ' + error.message);
        } finally {
          await client.close();
        }
      })();`;
    const result = await lab.exec('mz2', [process.execPath, '-e', script], { allowFailure: true });
    assert.match(result.stdout, /PluginConfigError: .*queue\.instanceId "mz1" is also used by node mz1/, result.stdout + result.stderr);
  });

  // Last: mz1 does not come back.
  test('a node SIGKILLed for good: the survivor takes over its queue, and every accepted message goes out once, from its binding\'s IP, including one the dead node had locked in flight', async () => {
    await waitHolders(lab, NODES, HOME, 30_000);
    const [mz1, mz2] = [mta.get('mz1') as LabProcess, mta.get('mz2') as LabProcess];
    // A delivery mz1 has fetched (locked in the shared queue, assigned to its instance) and holds before connecting.
    const held = receivedBySubject(sink, mta, 'hold dead node', 120_000);
    const sent = await swaks(lab, 'client', LISTENER, 2525, 'user@acme.test', 'rcpt@acme.test', 'hold dead node');
    assert.equal(sent.code, 0, sent.output);
    await outputMatches(mz1, /holding \S+ \(hold dead node\) before its connection/, 30_000, 'mz1 holds the delivery before its connection');
    const { outgoing, bindingOf } = flowMessages(5000, BINDINGS, LISTENER, 2525, 'zonemta-dead');
    let killedAt = 0;
    const counts = await runFlow(lab, sink, mta, outgoing, bindingOf, BINDINGS, async ({ more, killed }) => {
      await more(30);
      await killed(async () => {
        killedAt = Date.now();
        mz1.kill('SIGKILL');
        await waitHolders(lab, NODES, { [LISTENER]: 'mz2', [BINDINGS.acme]: 'mz2', [BINDINGS.beta]: 'mz2' }, 15_000);
        // mz2's sender would hold it too: from now on, nobody holds.
        fs.writeFileSync(path.join(dir, 'release-hold'), '');
      });
      await more(40);
    });
    try {
      const message = await held;
      assert.equal(message.remoteAddress, BINDINGS.acme, 'the held delivery left from its binding\'s IP, on the survivor');
      assert.match(mz2.stdout + mz2.stderr, /queue takeover: mz1 \(instance mz1\) is gone for 4000 ms; took over [1-9]\d* of its queue entries as instance mz2/);
      process.stdout.write(`# the delivery mz1 had locked arrived ${(message as Received & { at: number }).at - killedAt} ms after the kill; flow ${JSON.stringify({ ...counts, report: undefined, undeliveredIds: undefined })}\n`);
    } finally {
      fs.rmSync(path.join(dir, 'release-hold'), { force: true });
    }
    assert.ok(counts.accepted >= 70, `mail flowed before and after the kill (${counts.accepted}): ${counts.report}`);
    assert.deepEqual(
      { accepted: counts.accepted, delivered: counts.delivered, duplicated: counts.duplicated, wrongIp: counts.wrongIp, stranded: counts.stranded, silent: counts.silent, cut: counts.cut },
      { accepted: counts.attempted, delivered: counts.accepted, duplicated: 0, wrongIp: 0, stranded: 0, silent: 0, cut: 0 },
      counts.report,
    );
  });
});
