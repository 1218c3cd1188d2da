// The ZoneMTA plugin inside the real ZoneMTA from npm, configured with the
// README's own config file as a user copies it (evaluated by ZoneMTA, its
// require.resolve() finding the package through NODE_PATH as if installed;
// only node, cluster.bind, the databases and the zones' smarthost differ per
// lab): two nodes (each with its own Redis and CongoDB in its namespace) share
// a listener VIP and two bindings. Mail sent by swaks to the listener VIP must reach the sink from
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
import { congoDbModule, MtaProcesses, mtaSkipReason, outputMatches, receivedBySubject, swaks, waitHolders, ZONEMTA_DIR } from './lib/mta-servers';
import { installedPackageDir, readmeBlocks } from './lib/readme';

const NODES = ['mx1', 'mx2'] as const;
const LISTENER = vip4(25);
const ACME = vip4(26);
const BETA = vip4(27);

function skipReason(): string | undefined {
  return labSkipReason() ?? mtaSkipReason('zonemta');
}

describe('ZoneMTA plugin in the real ZoneMTA', { skip: skipReason() }, () => {
  let lab: Lab;
  let dir: string;
  let processes: MtaProcesses;
  let sink: LabProcess;
  const mta = new Map<string, LabProcess>();

  const blocks = readmeBlocks('ZoneMTA (');
  const readmeConfig = blocks[0]?.text as string;
  assert.equal(blocks[0]?.lang, 'js');
  assert.match(readmeConfig, /require\.resolve\('mta-vip\/zonemta'\)/);

  /** ZoneMTA's config file: the README's, run as written, then what differs per lab. */
  function configFile(node: string): string {
    const sink = lab.host('sink').ipv4;
    const file = path.join(dir, `zonemta-${node}.js`);
    fs.writeFileSync(file, `const readme = { exports: {} };
(function (module) {
${readmeConfig}
})(readme);
const config = readme.exports;
const plugin = Object.values(config.plugins)[0];
// "Every node gets the same configuration except node and cluster.bind."
plugin.cluster.node = ${JSON.stringify(node)};
plugin.cluster.cluster.bind = ${JSON.stringify(lab.host(node).ipv4)};
// The lab's own: databases in the node's namespace, the sink as every zone's next hop.
config.queue = { ...config.queue, instanceId: ${JSON.stringify(node)} };
config.dbs = { mongo: 'mongodb://127.0.0.1:27017/zone-mta', redis: { host: '127.0.0.1', port: 6379, db: 3 }, sender: 'zone-mta' };
config.zones.bounces = { pool: 'default' };
for (const zone of Object.values(config.zones)) Object.assign(zone, { host: ${JSON.stringify(sink)}, port: 2525, processes: 1, connections: 2, ignoreIPv6: true });
config.smtpInterfaces.feeder = { ...config.smtpInterfaces.feeder, processes: 1, authentication: false, hostname: ${JSON.stringify(`${node}.zonemta.test`)} };
config.log = { level: 'info' };
config.dns = { caching: false };
config.mtaSts = { enabled: false };
module.exports = config;
`);
    return file;
  }

  before(async () => {
    const congo = await congoDbModule();
    lab = await Lab.create({ hosts: ['sink', ...NODES, 'client'] });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mta-vip-zonemta-'));
    processes = new MtaProcesses(lab);
    sink = await processes.sink('sink');
    await Promise.all(NODES.map(async (node) => {
      await processes.redis(node);
      await processes.congo(node, congo);
    }));
    for (const node of NODES) {
      mta.set(node, lab.spawnNode(node, path.join(ZONEMTA_DIR, 'app.js'), [`--config=${configFile(node)}`], { wrapper: ['env', '-C', ZONEMTA_DIR], env: { NODE_PATH: installedPackageDir() } }));
    }
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
    const sent = await swaks(lab, 'client', LISTENER, 25, 'alice@acme.example.com', 'bob@sink.test', 'zonemta-local');
    assert.equal(sent.code, 0, sent.output);
    assert.match(sent.output, /220 mx1\.zonemta\.test /, 'mx1 answers on the listener VIP');
    const message = await receivedBySubject(sink, mta, 'zonemta-local');
    assert.equal(message.remoteAddress, ACME);
    assert.deepEqual(message.to, ['bob@sink.test']);
  });

  test('a binding held by the other node is relayed to it and leaves from its IP there', async () => {
    const sent = await swaks(lab, 'client', LISTENER, 25, 'bert@beta.example.com', 'carol@sink.test', 'zonemta-relay');
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
    const sent = await swaks(lab, 'client', LISTENER, 25, 'alice@acme.example.com', 'dave@sink.test', 'zonemta-moved');
    assert.equal(sent.code, 0, sent.output);
    assert.match(sent.output, /220 mx2\.zonemta\.test /, 'mx2 answers on the listener VIP now');
    const message = await receivedBySubject(sink, mta, 'zonemta-moved');
    assert.equal(message.remoteAddress, ACME);
  });
});
