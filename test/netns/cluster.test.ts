// The cluster runtime end to end: three real node processes (fixtures/cluster-node.js),
// each in its own namespace, heartbeating over UDP, moving real addresses with the
// real addon; a client namespace whose neighbour table must follow the VIPs.
// Every check reads the kernel (ip addr / ip neigh in each namespace), never the
// nodes' own opinion of themselves.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { fixturePath, Lab, labSkipReason, LabProcess, vip4, vip6, waitFor } from './harness';

const SECRET = 'correct horse battery staple';
const NODES = ['n1', 'n2', 'n3'] as const;
type NodeName = (typeof NODES)[number];
const HOLD_DOWN_MS = 1500;

interface Declared {
  ip: string;
  preferred?: NodeName;
}

/** The default VIP set: one preferred VIP per node, one free IPv4 VIP, one free IPv6 VIP. */
const DEFAULT_VIPS: Declared[] = [{ ip: vip4(1), preferred: 'n1' }, { ip: vip4(2), preferred: 'n2' }, { ip: vip4(3), preferred: 'n3' }, { ip: vip4(4) }, { ip: vip6(5) }];

function configFor(lab: Lab, node: string, vips: Declared[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  const vipSettings: Record<string, { preferred?: string }> = {};
  for (const v of vips) vipSettings[v.ip] = v.preferred ? { preferred: v.preferred } : {};
  return {
    node,
    cluster: { id: 'lab', secret: SECRET, bind: lab.host(node).ipv4, peers: NODES.map((n) => lab.host(n).ipv4) },
    // Every VIP carries an SMTP listener, so acquiring really starts a server on it.
    listeners: vips.map((v) => (v.ip.includes(':') ? `[${v.ip}]:2525` : `${v.ip}:2525`)),
    vips: vipSettings,
    timers: { holdDownMs: HOLD_DOWN_MS },
    ...extra,
  };
}

class Cluster {
  readonly procs = new Map<string, LabProcess>();
  constructor(readonly lab: Lab) {}

  /** Starts a node; resolves with its process and when (its own Date.now()) it began starting. */
  async start(node: string, config: Record<string, unknown>): Promise<{ proc: LabProcess; startedAt: number }> {
    const proc = this.lab.spawnNode(node, fixturePath('cluster-node'), [JSON.stringify(config)]);
    this.procs.set(node, proc);
    const started = (await proc.nextMessage((m) => m.type === 'started', 10_000)) as { at: number };
    return { proc, startedAt: started.at };
  }

  proc(node: string): LabProcess {
    const p = this.procs.get(node);
    if (!p) throw new Error(`${node} is not running`);
    return p;
  }

  async status(node: string): Promise<any> {
    const p = this.proc(node);
    p.send({ cmd: 'status' });
    return ((await p.nextMessage((m) => m.type === 'status', 5000)) as any).status;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.procs.values()].map((p) => p.stop(3000)));
    this.procs.clear();
  }
}

/** The namespaces (among `hosts`) whose eth0 carries `ip`. */
async function holdersOf(lab: Lab, ip: string, hosts: readonly string[] = NODES): Promise<string[]> {
  const out: string[] = [];
  for (const h of hosts) if ((await lab.addresses(h)).some((a) => a.address === ip)) out.push(h);
  return out;
}

/** Waits until every ip has exactly one holder among `hosts`; returns ip → holder. */
async function settledHolders(lab: Lab, ips: string[], hosts: readonly string[] = NODES, timeoutMs = 10_000): Promise<Map<string, string>> {
  return waitFor(
    async () => {
      const map = new Map<string, string>();
      for (const ip of ips) {
        const h = await holdersOf(lab, ip, hosts);
        if (h.length !== 1) return null;
        map.set(ip, h[0] as string);
      }
      return map;
    },
    { timeoutMs, intervalMs: 50, what: `exactly one holder for each of ${ips.join(', ')}` },
  );
}

async function ping(lab: Lab, from: string, ip: string): Promise<boolean> {
  return (await lab.exec(from, ['ping', ip.includes(':') ? '-6' : '-4', '-c', '1', '-W', '1', ip], { allowFailure: true })).code === 0;
}

describe('cluster runtime: three nodes in namespaces', { skip: labSkipReason() }, () => {
  let lab: Lab;
  let cluster: Cluster;

  before(async () => {
    lab = await Lab.create({ hosts: [...NODES, 'client'] });
  });
  afterEach(async () => {
    await cluster?.stopAll();
    for (const h of NODES) await lab.clearFaults(h).catch(() => undefined);
    for (const h of NODES) await lab.linkUp(h).catch(() => undefined);
    // A SIGKILLed node leaves its aliases behind; the next test starts clean.
    for (const h of NODES) {
      for (const a of await lab.addresses(h)) {
        if (a.address.startsWith('198.18.1.') || a.address.startsWith('2001:db8::1:')) {
          await lab.exec(h, ['ip', 'addr', 'del', `${a.address}/${a.prefix}`, 'dev', 'eth0'], { allowFailure: true });
        }
      }
    }
  });
  after(() => lab?.destroy());

  test('start: every VIP has exactly one holder, preferred nodes hold theirs, listeners answer there', async () => {
    cluster = new Cluster(lab);
    await Promise.all(NODES.map((n) => cluster.start(n, configFor(lab, n, DEFAULT_VIPS))));
    const ips = DEFAULT_VIPS.map((v) => v.ip);
    // Preferred nodes get theirs after the hold-down; wait for that state.
    const holders = await waitFor(
      async () => {
        const map = await settledHolders(lab, ips);
        return DEFAULT_VIPS.every((v) => !v.preferred || map.get(v.ip) === v.preferred) ? map : null;
      },
      { timeoutMs: 15_000, intervalMs: 100, what: 'preferred nodes holding their VIPs' },
    );
    // The free VIPs are spread (least-loaded), not all on one node.
    assert.notEqual(holders.get(vip4(4)), undefined);
    // The SMTP listener is up on the holder of each VIP and answers with its banner.
    for (const ip of ips) {
      const holder = holders.get(ip) as string;
      const banner = await waitFor(
        async () => {
          const r = await lab.exec('client', ['swaks', '--server', ip, '--port', '2525', '--quit-after', 'CONNECT', '--timeout', '3'], { allowFailure: true, timeoutMs: 8000 });
          return r.code === 0 && r.stdout.includes(`mta-vip ${holder}`) ? r.stdout : null;
        },
        { timeoutMs: 10_000, intervalMs: 200, what: `SMTP banner of ${holder} on ${ip}` },
      );
      assert.match(banner, new RegExp(`220 .*mta-vip ${holder}`));
    }
    const status = await cluster.status('n1');
    assert.equal(status.vips.find((v: any) => v.ip === vip4(1)).state, 'owned');
    assert.equal(status.vips.find((v: any) => v.ip === vip4(2)).state, 'standby');
    assert.equal(status.peers.filter((p: any) => p.live).length, 2);
  });

  test('SIGKILL the holder: another node takes the VIP and the client neighbour entry moves to its MAC', async () => {
    cluster = new Cluster(lab);
    await Promise.all(NODES.map((n) => cluster.start(n, configFor(lab, n, DEFAULT_VIPS))));
    for (const ip of [vip4(4), vip6(5)]) {
      const before = (await settledHolders(lab, [ip])).get(ip) as string;
      assert.ok(await ping(lab, 'client', ip), `client reaches ${ip} on ${before}`);
      assert.equal(await lab.neighbourMac('client', ip), lab.host(before).mac);
      const killed = cluster.proc(before);
      killed.kill('SIGKILL');
      await killed.exited;
      cluster.procs.delete(before);
      const survivors = NODES.filter((n) => cluster.procs.has(n));
      const after_ = (await settledHolders(lab, [ip], survivors)).get(ip) as string;
      assert.notEqual(after_, before);
      // The gratuitous ARP / unsolicited NA moved the client's existing entry.
      await waitFor(async () => (await lab.neighbourMac('client', ip)) === lab.host(after_).mac, {
        timeoutMs: 5000,
        intervalMs: 50,
        what: `client's neighbour entry for ${ip} showing ${after_}'s MAC`,
      });
      assert.ok(await ping(lab, 'client', ip), `client reaches ${ip} on ${after_}`);
      // The killed node's kernel still carries the alias (a dead process on a live host);
      // restart it: boot removes the leftover before anything else.
      await cluster.start(before, configFor(lab, before, DEFAULT_VIPS));
      await waitFor(async () => !(await holdersOf(lab, ip, [before])).length || null, { timeoutMs: 5000, what: `${before} removing its leftover ${ip}` });
    }
  });

  test('restarted preferred node takes its VIP back after the hold-down, never before', async () => {
    cluster = new Cluster(lab);
    await Promise.all(NODES.map((n) => cluster.start(n, configFor(lab, n, DEFAULT_VIPS))));
    await waitFor(async () => ((await holdersOf(lab, vip4(1))).join() === 'n1' ? true : null), { timeoutMs: 15_000, what: 'n1 holding its preferred VIP' });
    const n1 = cluster.proc('n1');
    n1.kill('SIGKILL');
    await n1.exited;
    cluster.procs.delete('n1');
    // Remove the dead process's alias, as a restart on a rebooted host would find.
    await lab.exec('n1', ['ip', 'addr', 'del', `${vip4(1)}/32`, 'dev', 'eth0']);
    const interim = (await settledHolders(lab, [vip4(1)], ['n2', 'n3'])).get(vip4(1));
    assert.ok(interim === 'n2' || interim === 'n3');

    const { proc: restarted, startedAt } = await cluster.start('n1', configFor(lab, 'n1', DEFAULT_VIPS));
    const acquired = (await restarted.nextMessage((m) => m.type === 'event' && m.name === 'acquired' && m.data.ip === vip4(1), 15_000)) as { at: number };
    // A lower bound, not a speed check: both stamps come from n1's own clock, and
    // the hold-down counts from n1's start, so no load can make this early.
    assert.ok(acquired.at - startedAt >= HOLD_DOWN_MS, `n1 took ${vip4(1)} back ${acquired.at - startedAt} ms after its start (hold-down ${HOLD_DOWN_MS} ms)`);
    assert.deepEqual(await settledHolders(lab, [vip4(1)]), new Map([[vip4(1), 'n1']]));
  });
});
