// Haraka with worker processes (`nodes=2`, as the README's smtp.ini has it) and
// several bindings held by the other node. Each worker delivers from its own
// queue; mail for a binding held elsewhere goes through that worker's loopback
// relay gateway. Under Node's cluster module a worker's listen(0) is shared by
// the master with every other worker's n-th listen(0), so two workers' gateways
// for different bindings could be one port, handed out round robin: mail for
// one binding then left from another binding's IP. Every message must reach
// the sink from its own binding's IP, whatever worker queued it.
//
// Then mail flows while the bindings and the listener move every way they can:
// a planned move of a binding there and back (admin endpoint), SIGKILL of the
// listener's holder and its return (failback), SIGTERM of the other node and
// its return. Counted: accepted, delivered, duplicated, wrong IP, stranded
// (> 60 s from acceptance to the sink), silent client sessions (no banner, no
// reply, no reset) and sessions cut after their banner by a release.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, labSkipReason, type LabProcess, vip4, waitFor } from './harness';
import { failoverScenarios, type TwoNodeCluster } from './lib/mail-flow';
import { HARAKA_PLUGIN, makeHarakaDir, MtaProcesses, mtaSkipReason, outputMatches, swaks, waitHolders, type Received } from './lib/mta-servers';

const NODES = ['hw1', 'hw2'] as const;
const LISTENER = vip4(40);
const BINDINGS = { acme: vip4(41), beta: vip4(42), gamma: vip4(43), delta: vip4(44) } as const;
const PREFERRED: Record<keyof typeof BINDINGS, string> = { acme: 'hw1', beta: 'hw2', gamma: 'hw2', delta: 'hw2' };
const SECRET = 'haraka workers test secret';
const PER_BINDING = 30;
const ADMIN_PORT = 7990;
const HARAKA = path.join(__dirname, '..', '..', '..', 'node_modules', 'Haraka', 'bin', 'haraka');

describe('Haraka with two workers and bindings held by the other node', { skip: labSkipReason() ?? mtaSkipReason('haraka') }, () => {
  let lab: Lab;
  let dir: string;
  let processes: MtaProcesses;
  let sink: LabProcess;
  const mta = new Map<string, LabProcess>();

  function files(node: string): Record<string, string> {
    const plugin = {
      stateFile: path.join(dir, `state-${node}.json`),
      senders: Object.fromEntries(Object.keys(BINDINGS).map((b) => [`${b}.test`, b])),
      hostnames: Object.fromEntries(Object.keys(BINDINGS).map((b) => [b, `${b}.mail.test`])),
      admin: { port: ADMIN_PORT },
      nextHop: `smtp://${lab.host('sink').ipv4}:2525`,
      cluster: {
        node,
        cluster: { id: 'haraka-workers', secret: SECRET, bind: lab.host(node).ipv4, peers: NODES.map((n) => lab.host(n).ipv4) },
        listeners: [`${LISTENER}:2525`],
        bindings: Object.entries(BINDINGS).map(([name, address]) => ({ name, address })),
        vips: { [LISTENER]: { preferred: 'hw1' }, ...Object.fromEntries(Object.entries(BINDINGS).map(([name, ip]) => [ip, { preferred: PREFERRED[name as keyof typeof BINDINGS] }])) },
        topology: [{ cidr: '198.18.0.0/16', interface: 'eth0' }],
        timers: { holdDownMs: 500 },
      },
    };
    return {
      'plugins/mta_vip.js': `Object.assign(exports, require(${JSON.stringify(HARAKA_PLUGIN)}));\n`,
      'config/plugins': 'relay\nmta_vip\n',
      'config/mta_vip.json': JSON.stringify(plugin, null, 2),
      'config/smtp.ini': 'listen=0.0.0.0:2525\nnodes=2\n',
      'config/me': `${node}.haraka.test\n`,
      'config/log.ini': '[main]\nlevel=info\n',
      'config/relay.ini': '[relay]\nacl=true\n',
      'config/relay_acl_allow': '198.18.0.0/16\n',
    };
  }

  before(async () => {
    lab = await Lab.create({ hosts: [...NODES, 'client', 'sink'] });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mta-vip-haraka-workers-'));
    processes = new MtaProcesses(lab);
    sink = await processes.sink('sink');
    for (const node of NODES) makeHarakaDir(path.join(dir, node), files(node));
    await Promise.all(NODES.map((node) => startHaraka(node)));
    await waitHolders(lab, NODES, HOME, 20_000);
  });

  const HOME: Record<string, string> = { [LISTENER]: 'hw1', ...Object.fromEntries(Object.entries(BINDINGS).map(([b, ip]) => [ip, PREFERRED[b as keyof typeof BINDINGS]])) };

  /** Starts (or restarts) Haraka on `node` and waits for its cluster and both workers. */
  async function startHaraka(node: string): Promise<LabProcess> {
    const p = lab.spawnNode(node, HARAKA, ['-c', path.join(dir, node)]);
    const before = mta.get(node);
    if (before) mta.set(`${node} (pid ${before.child.pid})`, before); // its output, for the post-mortem
    mta.set(node, p);
    await outputMatches(p, /mta-vip: cluster haraka-workers started/, 30_000, `Haraka on ${node} started the cluster`);
    await waitFor(() => ((p.stdout + p.stderr).match(/worker \d+ listening/g) ?? []).length >= 2 || null, { timeoutMs: 30_000, what: `both of ${node}'s workers listening` });
    return p;
  }

  after(async () => {
    await Promise.all([...mta.values()].map((p) => p.stop(5000)));
    await processes?.sweep([...NODES, 'sink']);
    await lab?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test(`${PER_BINDING * 4} messages through hw1's two workers: every one leaves from its own binding's IP`, async () => {
    const names = Object.keys(BINDINGS) as Array<keyof typeof BINDINGS>;
    const messages = Array.from({ length: PER_BINDING * names.length }, (_, i) => ({ binding: names[i % names.length] as keyof typeof BINDINGS, subject: `hw-${i}` }));
    // Eight clients at a time, so both workers queue mail and open gateways concurrently.
    const queue = [...messages];
    const failures: string[] = [];
    await Promise.all(Array.from({ length: 8 }, async () => {
      for (let m = queue.shift(); m; m = queue.shift()) {
        const sent = await swaks(lab, 'client', LISTENER, 2525, `user@${m.binding}.test`, 'rcpt@sink.test', m.subject);
        if (sent.code !== 0) failures.push(`${m.subject}: ${sent.output.slice(-300)}`);
      }
    }));
    assert.deepEqual(failures, [], 'hw1 accepted every message');
    const received = new Map<string, Received>();
    await waitFor(() => {
      for (const message of sink.messages.splice(0)) {
        const r = message as Received;
        if (r.type === 'received') received.set(r.subject, r);
      }
      return received.size >= messages.length || null;
    }, { timeoutMs: 90_000, intervalMs: 100, what: `the sink to receive ${messages.length} messages (has ${received.size})` });
    const wrong = messages.filter((m) => received.get(m.subject)?.remoteAddress !== BINDINGS[m.binding]).map((m) => `${m.subject} (${m.binding}) from ${received.get(m.subject)?.remoteAddress}`);
    assert.deepEqual(wrong, [], 'messages that left from another IP than their binding\'s');
    assert.equal(received.size, messages.length, 'no duplicate or stray message');
    // The relayed bindings did go through the gateways (else the test proved nothing about them).
    const hw1 = mta.get('hw1') as LabProcess;
    for (const binding of ['beta', 'gamma', 'delta']) assert.match(hw1.stdout + hw1.stderr, new RegExp(`binding ${binding} is held by hw2: relaying through 127\\.0\\.0\\.1`));
  });

  const cluster = (): TwoNodeCluster => ({
    lab,
    sink,
    mtas: mta,
    nodes: NODES,
    home: HOME,
    listener: LISTENER,
    adminPort: ADMIN_PORT,
    restart: async (node) => {
      await processes.sweep([node]);
      await startHaraka(node);
    },
  });

  failoverScenarios(cluster, BINDINGS, 'beta', 'haraka');
});
