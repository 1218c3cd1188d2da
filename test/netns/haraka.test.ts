// The Haraka plugin inside the real Haraka from npm, configured with the
// README's own blocks as a user copies them (plugin file, config/plugins,
// relay ACL, smtp.ini with nodes=2, mta_vip.json; only `node`, `cluster.bind`
// and the smarthost `nextHop` differ per lab): two nodes share a listener VIP,
// reached through Haraka's wildcard listener, and two bindings chosen by
// sender domain. Mail relayed by Haraka
// must reach the sink from the binding's IP: through get_mx's bind when the
// delivering node holds the binding, through the node-to-node relay when the
// other node does. SIGTERM to the master holding the listener and a binding
// moves both to the other node, and mail sent again arrives from the same IP.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HARAKA_BIN } from './lib/mta-servers';
import { Lab, labSkipReason, type LabProcess, vip4 } from './harness';
import { installedPackageDir, readmeBlocks } from './lib/readme';
import { makeHarakaDir, MtaProcesses, mtaSkipReason, outputMatches, receivedBySubject, swaks, waitHolders } from './lib/mta-servers';

// The README's addresses: mx1 is 198.18.0.11 and mx2 198.18.0.12 (the lab's second and third hosts).
const NODES = ['mx1', 'mx2'] as const;
const LISTENER = vip4(25);
const ACME = vip4(26);
const BETA = vip4(27);

describe('Haraka plugin in the real Haraka', { skip: labSkipReason() ?? mtaSkipReason('haraka') }, () => {
  let lab: Lab;
  let dir: string;
  let processes: MtaProcesses;
  let sink: LabProcess;
  const mta = new Map<string, LabProcess>();

  const blocks = readmeBlocks('Haraka (');
  const [pluginFile, pluginsList, relayIni, relayAcl, smtpIni, json] = blocks.map((block) => block.text);
  assert.equal(blocks.length, 6, 'the README\'s Haraka section has its six blocks');
  assert.match(pluginFile as string, /require\('mta-vip\/haraka'\)/);
  assert.match(smtpIni as string, /nodes=2/);

  function harakaFiles(node: string): Record<string, string> {
    const options = JSON.parse(json as string) as { cluster: { node: string; cluster: { bind: string } }; nextHop?: string };
    // "Every node gets the same configuration except node and cluster.bind."
    options.cluster.node = node;
    options.cluster.cluster.bind = lab.host(node).ipv4;
    options.nextHop = `smtp://${lab.host('sink').ipv4}:2525`;
    return {
      'plugins/mta_vip.js': pluginFile as string,
      'config/plugins': pluginsList as string,
      'config/relay.ini': relayIni as string,
      'config/relay_acl_allow': relayAcl as string,
      'config/smtp.ini': smtpIni as string,
      'config/mta_vip.json': JSON.stringify(options, null, 2),
      'config/me': `${node}.haraka.test\n`,
      'config/log.ini': '[main]\nlevel=info\n',
    };
  }

  before(async () => {
    lab = await Lab.create({ hosts: ['sink', ...NODES, 'client'] });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mta-vip-haraka-'));
    processes = new MtaProcesses(lab);
    sink = await processes.sink('sink');
    for (const node of NODES) {
      const home = path.join(dir, node);
      makeHarakaDir(home, harakaFiles(node));
      // As if installed: require('mta-vip/...') resolves to this checkout.
      mta.set(node, lab.spawnNode(node, HARAKA_BIN, ['-c', home], { env: { NODE_PATH: installedPackageDir() } }));
    }
    await Promise.all([...mta].map(([node, p]) => outputMatches(p, /mta-vip: cluster mail started/, 30_000, `Haraka on ${node} started the cluster in its master`)));
    await waitHolders(lab, NODES, { [LISTENER]: 'mx1', [ACME]: 'mx1', [BETA]: 'mx2' }, 20_000);
    // The worker listens once forked; the first client must find it.
    await Promise.all([...mta].map(([node, p]) => outputMatches(p, /listener VIP 198\.18\.1\.25 ready/, 30_000, `Haraka's workers on ${node} listen`)));
  });

  after(async () => {
    await Promise.all([...mta.values()].map((p) => p.stop(5000)));
    await processes?.sweep([...NODES, 'sink']);
    await lab?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('mail to the listener VIP leaves from the binding IP chosen by sender domain (get_mx bind)', async () => {
    const sent = await swaks(lab, 'client', LISTENER, 25, 'alice@acme.example.com', 'bob@sink.test', 'haraka-local');
    assert.equal(sent.code, 0, sent.output);
    assert.match(sent.output, /220 mx1\.haraka\.test /, 'mx1 answers on the listener VIP');
    const message = await receivedBySubject(sink, mta, 'haraka-local');
    assert.equal(message.remoteAddress, ACME);
    assert.deepEqual(message.to, ['bob@sink.test']);
  });

  test('a binding held by the other node is relayed to it and leaves from its IP there', async () => {
    const sent = await swaks(lab, 'client', LISTENER, 25, 'bert@beta.example.com', 'carol@sink.test', 'haraka-relay');
    assert.equal(sent.code, 0, sent.output);
    const message = await receivedBySubject(sink, mta, 'haraka-relay');
    assert.equal(message.remoteAddress, BETA);
    const mx1 = mta.get('mx1') as LabProcess;
    assert.match(mx1.stdout + mx1.stderr, /binding beta is held by mx2: relaying/);
  });

  test('SIGTERM moves the listener VIP and the binding to the other Haraka, and mail follows', async () => {
    const mx1 = mta.get('mx1') as LabProcess;
    mx1.kill('SIGTERM');
    await mx1.exited;
    assert.match(mx1.stdout + mx1.stderr, /released 198\.18\.1\.25/);
    await waitHolders(lab, NODES, { [LISTENER]: 'mx2', [ACME]: 'mx2', [BETA]: 'mx2' }, 10_000);
    const sent = await swaks(lab, 'client', LISTENER, 25, 'alice@acme.example.com', 'dave@sink.test', 'haraka-moved');
    assert.equal(sent.code, 0, sent.output);
    assert.match(sent.output, /220 mx2\.haraka\.test /, 'mx2 answers on the listener VIP now');
    const message = await receivedBySubject(sink, mta, 'haraka-moved');
    assert.equal(message.remoteAddress, ACME);
  });
});
