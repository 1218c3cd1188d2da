// The Haraka plugin inside the real Haraka from npm (a master and one worker
// per node): two nodes share a listener VIP, reached through Haraka's wildcard
// listener, and two bindings chosen by sender domain. Mail relayed by Haraka
// must reach the sink from the binding's IP: through get_mx's bind when the
// delivering node holds the binding, through the node-to-node relay when the
// other node does. SIGTERM to the master holding the listener and a binding
// moves both to the other node, and mail sent again arrives from the same IP.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, labSkipReason, type LabProcess, vip4 } from './harness';
import { HARAKA_PLUGIN, makeHarakaDir, MtaProcesses, mtaSkipReason, outputMatches, receivedBySubject, spawnHaraka, swaks, waitHolders } from './lib/mta-servers';

const NODES = ['hx1', 'hx2'] as const;
const LISTENER = vip4(35);
const ACME = vip4(36);
const BETA = vip4(37);
const SECRET = 'haraka plugin test secret';

describe('Haraka plugin in the real Haraka', { skip: labSkipReason() ?? mtaSkipReason('haraka') }, () => {
  let lab: Lab;
  let dir: string;
  let processes: MtaProcesses;
  let sink: LabProcess;
  const mta = new Map<string, LabProcess>();

  function pluginConfig(node: string): Record<string, unknown> {
    return {
      stateFile: path.join(dir, `state-${node}.json`),
      senders: { 'acme.test': 'acme', 'beta.test': 'beta' },
      hostnames: { acme: 'acme.mail.test', beta: 'beta.mail.test' },
      nextHop: `smtp://${lab.host('sink').ipv4}:2525`,
      cluster: {
        node,
        cluster: { id: 'haraka-test', secret: SECRET, bind: lab.host(node).ipv4, peers: NODES.map((n) => lab.host(n).ipv4) },
        listeners: [`${LISTENER}:2525`],
        bindings: [
          { name: 'acme', address: ACME },
          { name: 'beta', address: BETA },
        ],
        vips: { [LISTENER]: { preferred: 'hx1' }, [ACME]: { preferred: 'hx1' }, [BETA]: { preferred: 'hx2' } },
        topology: [{ cidr: '198.18.0.0/16', interface: 'eth0' }],
        timers: { holdDownMs: 500 },
      },
    };
  }

  function harakaFiles(node: string): Record<string, string> {
    return {
      // Haraka runs this file in its plugin sandbox, where `exports` is the plugin object.
      'plugins/mta_vip.js': `Object.assign(exports, require(${JSON.stringify(HARAKA_PLUGIN)}));\n`,
      'config/plugins': 'relay\nmta_vip\n',
      'config/mta_vip.json': JSON.stringify(pluginConfig(node), null, 2),
      // The wildcard address: the kernel hands Haraka connections only for VIPs present here.
      'config/smtp.ini': 'listen=0.0.0.0:2525\nnodes=1\n',
      'config/me': `${node}.haraka.test\n`,
      'config/log.ini': '[main]\nlevel=info\n',
      'config/relay.ini': '[relay]\nacl=true\n',
      'config/relay_acl_allow': '198.18.0.0/16\n',
    };
  }

  before(async () => {
    lab = await Lab.create({ hosts: [...NODES, 'client', 'sink'] });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mta-vip-haraka-'));
    processes = new MtaProcesses(lab);
    sink = await processes.sink('sink');
    for (const node of NODES) {
      const home = path.join(dir, node);
      makeHarakaDir(home, harakaFiles(node));
      mta.set(node, spawnHaraka(lab, node, home));
    }
    await Promise.all([...mta].map(([node, p]) => outputMatches(p, /mta-vip: cluster haraka-test started/, 30_000, `Haraka on ${node} started the cluster in its master`)));
    await waitHolders(lab, NODES, { [LISTENER]: 'hx1', [ACME]: 'hx1', [BETA]: 'hx2' }, 20_000);
    // The worker listens once forked; the first client must find it.
    await Promise.all([...mta].map(([node, p]) => outputMatches(p, /worker \d+ listening/, 20_000, `Haraka's worker on ${node} listens`)));
  });

  after(async () => {
    await Promise.all([...mta.values()].map((p) => p.stop(5000)));
    await processes?.sweep([...NODES, 'sink']);
    await lab?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('mail to the listener VIP leaves from the binding IP chosen by sender domain (get_mx bind)', async () => {
    const sent = await swaks(lab, 'client', LISTENER, 2525, 'alice@acme.test', 'bob@sink.test', 'haraka-local');
    assert.equal(sent.code, 0, sent.output);
    assert.match(sent.output, /220 hx1\.haraka\.test /, 'hx1 answers on the listener VIP');
    const message = await receivedBySubject(sink, mta, 'haraka-local');
    assert.equal(message.remoteAddress, ACME);
    assert.deepEqual(message.to, ['bob@sink.test']);
  });

  test('a binding held by the other node is relayed to it and leaves from its IP there', async () => {
    const sent = await swaks(lab, 'client', LISTENER, 2525, 'bert@beta.test', 'carol@sink.test', 'haraka-relay');
    assert.equal(sent.code, 0, sent.output);
    const message = await receivedBySubject(sink, mta, 'haraka-relay');
    assert.equal(message.remoteAddress, BETA);
    const hx1 = mta.get('hx1') as LabProcess;
    assert.match(hx1.stdout + hx1.stderr, /binding beta is held by hx2: relaying/);
  });

  test('SIGTERM moves the listener VIP and the binding to the other Haraka, and mail follows', async () => {
    const hx1 = mta.get('hx1') as LabProcess;
    hx1.kill('SIGTERM');
    await hx1.exited;
    assert.match(hx1.stdout + hx1.stderr, /released 198\.18\.1\.35/);
    await waitHolders(lab, NODES, { [LISTENER]: 'hx2', [ACME]: 'hx2', [BETA]: 'hx2' }, 10_000);
    const sent = await swaks(lab, 'client', LISTENER, 2525, 'alice@acme.test', 'dave@sink.test', 'haraka-moved');
    assert.equal(sent.code, 0, sent.output);
    assert.match(sent.output, /220 hx2\.haraka\.test /, 'hx2 answers on the listener VIP now');
    const message = await receivedBySubject(sink, mta, 'haraka-moved');
    assert.equal(message.remoteAddress, ACME);
  });
});
