// The ZoneMTA plugin inside the real ZoneMTA from npm: two nodes (each with
// its own Redis and CongoDB in its namespace) share a listener VIP and two
// bindings. Mail sent by swaks to the listener VIP must reach the sink from
// the binding's IP: directly when the receiving node holds the binding,
// through the node-to-node relay when the other node does. SIGTERM to the
// node holding the listener and its binding moves both to the other node,
// and mail sent again arrives from the same binding IP through it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, labSkipReason, type LabProcess, vip4 } from './harness';
import { congoDbModule, MtaProcesses, mtaSkipReason, outputMatches, receivedBySubject, spawnZoneMta, swaks, waitHolders, ZONEMTA_PLUGIN } from './lib/mta-servers';

const NODES = ['mx1', 'mx2'] as const;
const LISTENER = vip4(25);
const ACME = vip4(26);
const BETA = vip4(27);
const SECRET = 'zonemta plugin test secret';

function skipReason(): string | undefined {
  return labSkipReason() ?? mtaSkipReason('zonemta');
}

describe('ZoneMTA plugin in the real ZoneMTA', { skip: skipReason() }, () => {
  let lab: Lab;
  let dir: string;
  let processes: MtaProcesses;
  let sink: LabProcess;
  const mta = new Map<string, LabProcess>();

  function pluginConfig(node: string): Record<string, unknown> {
    return {
      enabled: ['main', 'receiver', 'sender'],
      stateFile: path.join(dir, `state-${node}.json`),
      zones: { default: 'acme', beta: 'beta' },
      hostnames: { acme: 'acme.mail.test', beta: 'beta.mail.test' },
      cluster: {
        node,
        cluster: { id: 'zonemta-test', secret: SECRET, bind: lab.host(node).ipv4, peers: NODES.map((n) => lab.host(n).ipv4) },
        listeners: [`${LISTENER}:2525`],
        bindings: [
          { name: 'acme', address: ACME },
          { name: 'beta', address: BETA },
        ],
        vips: { [LISTENER]: { preferred: 'mx1' }, [ACME]: { preferred: 'mx1' }, [BETA]: { preferred: 'mx2' } },
        topology: [{ cidr: '198.18.0.0/16', interface: 'eth0' }],
        timers: { holdDownMs: 500 },
      },
    };
  }

  function zoneMtaConfig(node: string): Record<string, unknown> {
    const sinkHost = lab.host('sink').ipv4;
    const zone = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ host: sinkHost, port: 2525, processes: 1, connections: 2, ignoreIPv6: true, pool: 'default', ...extra });
    return {
      name: `ZoneMTA-${node}`,
      ident: `zone-mta-${node}`,
      log: { level: 'info' },
      queue: { instanceId: node },
      dbs: { mongo: 'mongodb://127.0.0.1:27017/zone-mta', redis: { host: '127.0.0.1', port: 6379, db: 3 }, sender: 'zone-mta' },
      dns: { caching: false },
      mtaSts: { enabled: false },
      pluginsPath: dir,
      plugins: { [ZONEMTA_PLUGIN]: pluginConfig(node) },
      // The wildcard address: the kernel hands ZoneMTA connections only for VIPs present here.
      smtpInterfaces: { feeder: { enabled: true, host: '0.0.0.0', port: 2525, processes: 1, authentication: false, hostname: `${node}.zonemta.test` } },
      zones: { default: zone(), beta: zone({ recipientDomains: ['beta.test'] }), bounces: zone() },
    };
  }

  before(async () => {
    const congo = await congoDbModule();
    lab = await Lab.create({ hosts: [...NODES, 'client', 'sink'] });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mta-vip-zonemta-'));
    processes = new MtaProcesses(lab);
    sink = await processes.sink('sink');
    await Promise.all(NODES.map(async (node) => {
      await processes.redis(node);
      await processes.congo(node, congo);
    }));
    for (const node of NODES) mta.set(node, spawnZoneMta(lab, node, dir, zoneMtaConfig(node)));
    await Promise.all([...mta].map(([node, p]) => outputMatches(p, /Initialized mta-vip/, 60_000, `ZoneMTA on ${node} loaded the plugin in its main process`)));
    await waitHolders(lab, NODES, { [LISTENER]: 'mx1', [ACME]: 'mx1', [BETA]: 'mx2' }, 20_000);
  });

  after(async () => {
    await Promise.all([...mta.values()].map((p) => p.stop(5000)));
    await processes?.sweep([...NODES, 'sink']);
    await lab?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('mail to the listener VIP leaves from the binding IP of its zone', async () => {
    const sent = await swaks(lab, 'client', LISTENER, 2525, 'alice@acme.test', 'bob@sink.test', 'zonemta-local');
    assert.equal(sent.code, 0, sent.output);
    assert.match(sent.output, /220 mx1\.zonemta\.test /, 'mx1 answers on the listener VIP');
    const message = await receivedBySubject(sink, mta, 'zonemta-local');
    assert.equal(message.remoteAddress, ACME);
    assert.deepEqual(message.to, ['bob@sink.test']);
  });

  test('a binding held by the other node is relayed to it and leaves from its IP there', async () => {
    const sent = await swaks(lab, 'client', LISTENER, 2525, 'alice@acme.test', 'carol@beta.test', 'zonemta-relay');
    assert.equal(sent.code, 0, sent.output);
    const message = await receivedBySubject(sink, mta, 'zonemta-relay');
    assert.equal(message.remoteAddress, BETA);
    const mx1 = mta.get('mx1') as LabProcess;
    const mx2 = mta.get('mx2') as LabProcess;
    assert.match(mx1.stdout + mx1.stderr, /binding beta is held by mx2: relaying/);
    assert.match(mx2.stdout + mx2.stderr, /relayed by mx1 for binding beta in zone beta/);
  });

  test('SIGTERM moves the listener VIP and the binding to the other ZoneMTA, and mail follows', async () => {
    const mx1 = mta.get('mx1') as LabProcess;
    mx1.kill('SIGTERM');
    const exit = await mx1.exited;
    assert.equal(exit.signal, null, `mx1 exited by itself after releasing: ${JSON.stringify(exit)}`);
    assert.match(mx1.stdout + mx1.stderr, /released 198\.18\.1\.25/);
    await waitHolders(lab, NODES, { [LISTENER]: 'mx2', [ACME]: 'mx2', [BETA]: 'mx2' }, 10_000);
    const sent = await swaks(lab, 'client', LISTENER, 2525, 'alice@acme.test', 'dave@sink.test', 'zonemta-moved');
    assert.equal(sent.code, 0, sent.output);
    assert.match(sent.output, /220 mx2\.zonemta\.test /, 'mx2 answers on the listener VIP now');
    const message = await receivedBySubject(sink, mta, 'zonemta-moved');
    assert.equal(message.remoteAddress, ACME);
  });
});
