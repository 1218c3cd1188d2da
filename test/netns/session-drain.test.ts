// A binding leaving a node, with deliveries of another process (an MTA's
// sender) on its address: the cluster process cannot see those sessions, the
// kernel can. A delivery waiting for its next hop's reply when the binding
// moves must finish before the address goes (not hang for nodemailer's
// 10-minute timeout); an idle pooled connection on it must not hold the move
// for the whole drain; and nothing may be left on the address afterwards.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fixturePath, Lab, labSkipReason, type LabProcess, vip4, waitFor } from './harness';
import { moveVia } from './lib/mail-flow';
import { holderOf } from './lib/mta-servers';
import { AddonClient } from './lib/addon-client';

const NODES = ['n1', 'n2'] as const;
const ACME = vip4(60);
const ADMIN_PORT = 7992;
const SINK_DELAY_MS = 2500;

describe('release drains the sessions of other processes on a binding\'s address', { skip: labSkipReason() }, () => {
  let lab: Lab;
  let sink: LabProcess;
  const nodes = new Map<string, LabProcess>();
  let probe: AddonClient;

  before(async () => {
    lab = await Lab.create({ hosts: [...NODES, 'sink'] });
    // A next hop far away: every MAIL FROM waits SINK_DELAY_MS for its reply.
    sink = lab.spawnNode('sink', fixturePath('sink'), [JSON.stringify({ host: lab.host('sink').ipv4, port: 2525, delayMs: SINK_DELAY_MS })]);
    await sink.nextMessage((m: { type?: string }) => m.type === 'listening', 10_000);
    for (const node of NODES) {
      const config = {
        node,
        cluster: { id: 'drain', secret: 'session drain test secret', bind: lab.host(node).ipv4, peers: NODES.map((n) => lab.host(n).ipv4) },
        bindings: [{ name: 'acme', address: ACME }],
        vips: { [ACME]: { preferred: 'n1' } },
        topology: [{ cidr: '198.18.0.0/16', interface: 'eth0' }],
        timers: { holdDownMs: 300 },
        fixture: { adminPort: ADMIN_PORT },
      };
      nodes.set(node, lab.spawnNode(node, fixturePath('cluster-node'), [JSON.stringify(config)]));
    }
    await waitFor(async () => (await holderOf(lab, NODES, ACME)) === 'n1' || null, { timeoutMs: 15_000, what: 'n1 holding acme' });
    probe = await AddonClient.start(lab, 'n1');
  });

  after(async () => {
    await probe?.stop();
    await Promise.all([...nodes.values(), sink].map((p) => p?.stop()));
    await lab?.destroy();
  });

  async function sender(pool: boolean): Promise<LabProcess> {
    const proc = lab.spawnNode('n1', fixturePath('outbound-sender'), [JSON.stringify({ localAddress: ACME, host: lab.host('sink').ipv4, port: 2525, pool })]);
    await proc.nextMessage((m: { type?: string }) => m.type === 'ready', 10_000);
    return proc;
  }

  async function moveAndBack(step: () => Promise<void>): Promise<void> {
    await step();
    await moveVia(lab, 'n1', ADMIN_PORT, ACME, null);
    await moveVia(lab, 'n2', ADMIN_PORT, ACME, null);
    await waitFor(async () => (await holderOf(lab, NODES, ACME)) === 'n1' || null, { timeoutMs: 15_000, what: 'acme back on n1' });
  }

  test('a delivery waiting for its next hop when the binding moves finishes from the binding\'s IP before the address goes', async () => {
    const proc = await sender(false);
    try {
      await moveAndBack(async () => {
        proc.send({ cmd: 'send', id: 'in-flight' });
        // The session is up and waiting for the sink's reply to MAIL FROM.
        await waitFor(async () => (await probe.tcpSockets([ACME])).some((s) => s.remotePort === 2525 && s.state === 'ESTABLISHED') || null, { timeoutMs: 5000, what: 'the delivery\'s session on the binding\'s address' });
        const movedAt = Date.now();
        await moveVia(lab, 'n1', ADMIN_PORT, ACME, 'n2');
        const sent = await proc.nextMessage<{ ok: boolean; response: string; at: number }>((m: { type?: string }) => m.type === 'sent', 20_000);
        assert.ok(sent.ok, `the delivery finished: ${sent.response}`);
        const received = await sink.nextMessage<{ remoteAddress: string }>((m: { type?: string; subject?: string }) => m.type === 'received' && m.subject === 'in-flight', 5000);
        assert.equal(received.remoteAddress, ACME);
        await waitFor(async () => (await holderOf(lab, NODES, ACME)) === 'n2' || null, { timeoutMs: 15_000, what: 'acme on n2 once the delivery ended' });
        assert.ok(sent.at - movedAt < 15_000, 'well within the 30 s drain');
      });
    } finally {
      await proc.stop();
    }
  });

  test('an idle pooled connection on the binding\'s address is reset at once and does not hold the move for the drain', async () => {
    const proc = await sender(true);
    try {
      proc.send({ cmd: 'send', id: 'pooled' });
      assert.ok((await proc.nextMessage<{ ok: boolean }>((m: { type?: string }) => m.type === 'sent', 20_000)).ok);
      // The pool keeps its connection open, idle.
      assert.ok((await probe.tcpSockets([ACME])).some((s) => s.remotePort === 2525 && s.state === 'ESTABLISHED'), 'the pooled connection is open');
      await moveAndBack(async () => {
        const movedAt = Date.now();
        await moveVia(lab, 'n1', ADMIN_PORT, ACME, 'n2');
        await waitFor(async () => (await holderOf(lab, NODES, ACME)) === 'n2' || null, { timeoutMs: 25_000, what: 'acme on n2' }).catch(async (error: Error) => {
          throw new Error(`${error.message}; sockets on it: ${JSON.stringify(await probe.tcpSockets([ACME]))}`);
        });
        const tookMs = Date.now() - movedAt;
        // At most AMBIGUOUS_IDLE_MS (5 s) of silence when the sink's 250 came in the same clock tick as our ".".
        assert.ok(tookMs < 12_000, `the move took ${tookMs} ms: the idle connection did not hold it for the 30 s drain`);
        assert.deepEqual((await probe.tcpSockets([ACME])).filter((s) => s.state !== 'TIME_WAIT'), [], 'nothing left on the address');
      });
    } finally {
      await proc.stop();
    }
  });
});
