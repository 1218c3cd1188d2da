// The cluster runtime end to end: three real node processes (fixtures/cluster-node.js),
// each in its own namespace, heartbeating over UDP, moving real addresses with the
// real addon; a client namespace whose neighbour table must follow the VIPs.
// Every check reads the kernel (ip addr / ip neigh in each namespace), never the
// nodes' own opinion of themselves.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import * as fs from 'node:fs';
import { fixturePath, Lab, labSkipReason, LabProcess, vip4, vip6, waitFor } from './harness';
import { AddressMonitor } from './lib/address-monitor';
import { slowSessionsThroughRelease } from './lib/mail-flow';

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
    // Explicit topology: a node whose link went down has lost its IPv6 subnet
    // address (keep_addr_on_down=0), so the subnet cannot tell the interface.
    topology: [
      { cidr: '198.18.0.0/16', interface: 'eth0' },
      { cidr: '2001:db8::/64', interface: 'eth0' },
    ],
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

  /** Every running node's status and the kernel's VIP addresses, for failure messages. */
  async dump(): Promise<string> {
    const out: string[] = [];
    for (const [node, proc] of this.procs) {
      try {
        const st = await this.status(node);
        out.push(`${node}: settled=${st.settled} quorum=${st.quorum} vips=${JSON.stringify(st.vips.map((v: any) => [v.ip, v.phase, v.owner, v.rule, v.epoch, v.unhealthy?.reason]))} peers=${JSON.stringify(st.peers.map((p: any) => [p.node, p.live, p.complete, p.holding]))}`);
      } catch (error) {
        out.push(`${node}: no status (${(error as Error).message.slice(0, 200)}); stderr ${proc.stderr.slice(-500)}`);
      }
    }
    for (const h of this.lab.hosts()) out.push(`${h.name} addresses: ${(await this.lab.addresses(h.name)).map((a) => a.address).join(' ')}`);
    return out.join('\n');
  }

  /** waitFor, with the cluster's state in the error when it times out. */
  async until<T>(probe: () => Promise<T | null | undefined | false>, timeoutMs: number, what: string): Promise<T> {
    try {
      return await waitFor(probe, { timeoutMs, intervalMs: 50, what });
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${await this.dump()}`);
    }
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
    for (const h of NODES) {
      await lab.linkUp(h).catch(() => undefined);
      // Link down flushed the host's IPv6 address (keep_addr_on_down=0): put it back.
      const host = lab.host(h);
      if (!(await lab.addresses(h)).some((a) => a.address === host.ipv6)) {
        await lab.exec(h, ['ip', 'addr', 'add', `${host.ipv6}/64`, 'dev', 'eth0', 'nodad']);
      }
    }
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
      // The dead process's alias reaper removed the alias from the killed node's
      // kernel, so that host no longer answers for the VIP.
      await waitFor(async () => !(await holdersOf(lab, ip, [before])).length || null, { timeoutMs: 5000, what: `${before}'s alias reaper removing ${ip}` });
      await cluster.start(before, configFor(lab, before, DEFAULT_VIPS));
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
    await waitFor(async () => !(await holdersOf(lab, vip4(1), ['n1'])).length || null, { timeoutMs: 5000, what: 'n1\'s alias reaper removing its VIP' });
    const interim = (await settledHolders(lab, [vip4(1)], ['n2', 'n3'])).get(vip4(1));
    assert.ok(interim === 'n2' || interim === 'n3');

    const { proc: restarted, startedAt } = await cluster.start('n1', configFor(lab, 'n1', DEFAULT_VIPS));
    const acquired = (await restarted.nextMessage((m) => m.type === 'event' && m.name === 'acquired' && m.data.ip === vip4(1), 15_000)) as { at: number };
    // A lower bound, not a speed check: both stamps come from n1's own clock, and
    // the hold-down counts from n1's start, so no load can make this early.
    assert.ok(acquired.at - startedAt >= HOLD_DOWN_MS, `n1 took ${vip4(1)} back ${acquired.at - startedAt} ms after its start (hold-down ${HOLD_DOWN_MS} ms)`);
    assert.deepEqual(await settledHolders(lab, [vip4(1)]), new Map([[vip4(1), 'n1']]));
  });

  test('link down on a holder: it gives its VIPs up, the others take them; after link up exactly one holder each', async () => {
    cluster = new Cluster(lab);
    await Promise.all(NODES.map((n) => cluster.start(n, configFor(lab, n, DEFAULT_VIPS))));
    const ips = DEFAULT_VIPS.map((v) => v.ip);
    await cluster.until(async () => (await holdersOf(lab, vip4(1))).join() === 'n1', 15_000, 'n1 holding its preferred VIP');
    await lab.linkDown('n1');
    // n1's watch sees its link go: it removes its aliases (it could not serve them),
    // and n2/n3, no longer hearing it, take every VIP.
    await cluster.until(
      async () => {
        if ((await lab.addresses('n1')).some((a) => ips.includes(a.address))) return null;
        return settledHolders(lab, ips, ['n2', 'n3'], 100).catch(() => null);
      },
      10_000,
      'n1 holding no VIP with its link down, n2/n3 one holder each',
    );
    await cluster.proc('n1').nextMessage((m) => m.type === 'event' && m.name === 'unhealthy' && m.data.reason === 'link-down', 5000);
    await lab.linkUp('n1');
    const healed = await cluster.until(
      async () => {
        const map = await settledHolders(lab, ips, NODES, 100).catch(() => null);
        return map?.get(vip4(1)) === 'n1' ? map : null;
      },
      15_000,
      'one holder each after link up, n1 holding its preferred VIP again',
    );
    assert.equal(healed.size, ips.length);
  });

  test('partition and heal without quorum: both sides serve, then exactly one holder each', async () => {
    cluster = new Cluster(lab);
    await Promise.all(NODES.map((n) => cluster.start(n, configFor(lab, n, DEFAULT_VIPS))));
    const ips = DEFAULT_VIPS.map((v) => v.ip);
    await settledHolders(lab, ips);
    await lab.partition('n1', 'n2');
    await lab.partition('n1', 'n3');
    // Like VRRP: the isolated n1 serves every VIP, and so do n2+n3 on their side.
    await waitFor(async () => {
      for (const ip of ips) if (!(await holdersOf(lab, ip, ['n1'])).length) return null;
      return true;
    }, { timeoutMs: 10_000, what: 'isolated n1 holding every VIP' });
    await settledHolders(lab, ips, ['n2', 'n3']);
    await lab.heal('n1', 'n2');
    await lab.heal('n1', 'n3');
    const after_ = await settledHolders(lab, ips, NODES, 10_000);
    assert.equal(after_.size, ips.length);
    // Each clash went to the newer claim (epochs only grow, so a takeover during the partition
    // outbids the holder it replaced); a preferred node takes its VIP back once it has been
    // heard again for the hold-down.
    await waitFor(
      async () => {
        const holders = await settledHolders(lab, ips, NODES, 10_000);
        return holders.get(vip4(1)) === 'n1' && holders.get(vip4(2)) === 'n2' && holders.get(vip4(3)) === 'n3' ? true : null;
      },
      { timeoutMs: 15_000, what: 'every preferred VIP back on its preferred node' },
    );
    let released = 0;
    for (const n of NODES) {
      const counters = (await cluster.status(n)).counters;
      released += counters.clashes_total ?? 0;
      released += counters.releases_total ?? 0;
    }
    assert.ok(released > 0, 'the two sides settled by releasing');
  });

  test('partition with quorum: the minority side holds nothing, the majority holds everything', async () => {
    cluster = new Cluster(lab);
    await Promise.all(NODES.map((n) => cluster.start(n, configFor(lab, n, DEFAULT_VIPS, { quorum: true }))));
    const ips = DEFAULT_VIPS.map((v) => v.ip);
    await waitFor(async () => ((await holdersOf(lab, vip4(1))).join() === 'n1' ? true : null), { timeoutMs: 15_000, what: 'n1 holding its preferred VIP' });
    await lab.partition('n1', 'n2');
    await lab.partition('n1', 'n3');
    await settledHolders(lab, ips, ['n2', 'n3'], 10_000);
    await waitFor(async () => ((await lab.addresses('n1')).some((a) => a.address.startsWith('198.18.1.') || a.address.startsWith('2001:db8::1:')) ? null : true), {
      timeoutMs: 5000,
      what: 'n1 (1 of 3, no quorum) holding no VIP',
    });
    const status = await cluster.status('n1');
    assert.equal(status.quorum, false);
    await lab.heal('n1', 'n2');
    await lab.heal('n1', 'n3');
    await waitFor(async () => ((await settledHolders(lab, ips)).get(vip4(1)) === 'n1' ? true : null), { timeoutMs: 15_000, what: 'n1 back with quorum and its preferred VIP' });
  });

  test('a node with the wrong secret and replayed real packets change nothing and are counted', async () => {
    cluster = new Cluster(lab);
    await Promise.all(NODES.map((n) => cluster.start(n, configFor(lab, n, DEFAULT_VIPS))));
    const ips = DEFAULT_VIPS.map((v) => v.ip);
    const holdersBefore = await waitFor(
      async () => {
        const map = await settledHolders(lab, ips);
        return DEFAULT_VIPS.every((v) => !v.preferred || map.get(v.ip) === v.preferred) ? map : null;
      },
      { timeoutMs: 15_000, intervalMs: 100, what: 'settled cluster' },
    );
    // Capture real heartbeats arriving at n2.
    const pcap = `/tmp/${lab.id}-n2.pcap`;
    await lab.exec('n2', ['tcpdump', '-i', 'eth0', '-c', '40', '-w', pcap, '-U', 'udp', 'port', '7946'], { timeoutMs: 10_000 });
    const payloads = udpPayloads(pcap);
    assert.ok(payloads.length >= 20, `captured ${payloads.length} packets`);

    // An intruder with the wrong secret, claiming the same VIPs from the client namespace.
    const intruder = lab.spawnNode('client', fixturePath('cluster-node'), [
      JSON.stringify({ ...configFor(lab, 'client', []), node: 'intruder', cluster: { id: 'lab', secret: 'not the cluster secret!', bind: lab.host('client').ipv4, peers: NODES.map((n) => lab.host(n).ipv4) } }),
    ]);
    try {
      await intruder.nextMessage((m) => m.type === 'started', 10_000);
      const before = (await cluster.status('n2')).counters;
      // Replay every captured packet to n2, twice.
      const script = `const s=require('dgram').createSocket('udp4');const p=${JSON.stringify(payloads.map((b) => b.toString('hex')))};let i=0;const next=()=>{if(i>=p.length*2){s.close();return}s.send(Buffer.from(p[i%p.length],'hex'),7946,'${lab.host('n2').ipv4}',next);i++};next();`;
      await lab.exec('client', [process.execPath, '-e', script]);
      const after_ = await waitFor(
        async () => {
          const c = (await cluster.status('n2')).counters;
          return c.dropped_bad_mac > before.dropped_bad_mac && c.dropped_replay + c.dropped_old_incarnation >= before.dropped_replay + before.dropped_old_incarnation + payloads.length ? c : null;
        },
        { timeoutMs: 5000, what: 'n2 counting the intruder as bad MAC and every replay as dropped' },
      );
      assert.ok(after_.dropped_bad_mac > 0);
      const status = await cluster.status('n2');
      assert.ok(!status.peers.some((p: any) => p.node === 'intruder'), 'intruder never became a peer');
      assert.deepEqual(await settledHolders(lab, ips), holdersBefore, 'holders unchanged');
    } finally {
      await intruder.stop();
      fs.rmSync(pcap, { force: true });
    }
  });

  test('disjoint participation: each VIP only ever lands on a node that declares it', async () => {
    cluster = new Cluster(lab);
    // n1: A B, n2: B C, n3: C A (overlapping, different sets).
    const A = vip4(11), B = vip4(12), C = vip4(13);
    const sets: Record<NodeName, string[]> = { n1: [A, B], n2: [B, C], n3: [C, A] };
    await Promise.all(NODES.map((n) => cluster.start(n, configFor(lab, n, sets[n].map((ip) => ({ ip }))))));
    const holders = await settledHolders(lab, [A, B, C]);
    for (const [ip, holder] of holders) assert.ok(sets[holder as NodeName].includes(ip), `${ip} on ${holder}, which does not declare it`);
    const victim = holders.get(A) as NodeName;
    const proc = cluster.proc(victim);
    proc.kill('SIGKILL');
    await proc.exited;
    cluster.procs.delete(victim);
    const survivors = NODES.filter((n) => n !== victim);
    const moved = await settledHolders(lab, [A], survivors);
    const newHolder = moved.get(A) as NodeName;
    assert.ok(sets[newHolder].includes(A), `${A} moved to ${newHolder}, which declares it`);
  });

  test('graceful shutdown releases at once: peers take over without waiting for dead-after', async () => {
    cluster = new Cluster(lab);
    // A long dead-after makes the difference visible: a goodbye must not wait for it.
    const slow = { timers: { holdDownMs: HOLD_DOWN_MS, heartbeatMs: 100, deadAfterMs: 20_000 } };
    await Promise.all(NODES.map((n) => cluster.start(n, configFor(lab, n, DEFAULT_VIPS, slow))));
    const holder = (await settledHolders(lab, [vip4(4)], NODES, 30_000)).get(vip4(4)) as string;
    const proc = cluster.proc(holder);
    proc.kill('SIGTERM');
    const closed = (await proc.nextMessage((m) => m.type === 'closed', 10_000)) as { tookMs: number };
    await proc.exited;
    cluster.procs.delete(holder);
    assert.deepEqual(await holdersOf(lab, vip4(4), [holder]), [], 'the closing node removed its alias');
    // Well within the 20 s dead-after: only the goodbye can explain it.
    const moved = await settledHolders(lab, [vip4(4)], NODES.filter((n) => n !== holder), 10_000);
    assert.notEqual(moved.get(vip4(4)), holder);
    assert.ok(closed.tookMs < 20_000);
  });

  test('SIGTERM to the whole process group (systemctl stop, Ctrl-C): the guardian leaves the VIPs to the node, sessions in DATA finish, the node exits once they have', async () => {
    cluster = new Cluster(lab);
    await Promise.all(NODES.map((n) => cluster.start(n, configFor(lab, n, DEFAULT_VIPS))));
    const ip = vip4(1);
    await cluster.until(async () => (await holdersOf(lab, ip)).join() === 'n1' || null, 15_000, 'n1 holding its preferred VIP');
    const proc = cluster.proc('n1');
    let exitMs = 0;
    const { slow, fresh } = await slowSessionsThroughRelease(lab, ip, 2525, async () => {
      // What systemd's KillMode=control-group and a terminal's Ctrl-C do: every process of the
      // node, its guardian included, gets the signal at once.
      const pids = await lab.pids('n1');
      assert.ok(pids.length >= 2, `the node and its guardian run in n1 (${pids.join(' ')})`);
      const signalled = Date.now();
      for (const pid of pids) process.kill(pid, 'SIGTERM');
      await proc.exited;
      exitMs = Date.now() - signalled;
      cluster.procs.delete('n1');
      await settledHolders(lab, [ip], ['n2', 'n3']);
    });
    assert.deepEqual(slow.map((r) => r.finalReply?.slice(0, 3) ?? r.error), slow.map(() => '250'), `every session in DATA finished with 250: ${JSON.stringify(slow)}`);
    assert.deepEqual(fresh.filter((r) => /timeout/i.test(r.error ?? '')), [], 'no new session was left without an answer');
    assert.equal(proc.exit?.code, 0, `clean exit: ${proc.stderr.slice(-500)}`);
    // The sessions needed about 3 s; the drain's 30 s default is for sessions that never end.
    assert.ok(exitMs < 15_000, `exited ${exitMs} ms after the signal`);
  });

  test('a listener that cannot bind marks the node unhealthy for that VIP and another node takes it', async () => {
    cluster = new Cluster(lab);
    // On n1, something else already listens on VIP 1's port (ip_nonlocal_bind lets it bind before the VIP exists).
    await lab.sysctl('n1', 'net.ipv4.ip_nonlocal_bind', '1');
    const squatter = lab.spawnNode('n1', fixturePath('port-squatter'), [vip4(1), '2525']);
    try {
      await squatter.nextMessage((m) => m.type === 'listening', 5000);
      await Promise.all(NODES.map((n) => cluster.start(n, configFor(lab, n, DEFAULT_VIPS))));
      const unhealthy = (await cluster.proc('n1').nextMessage((m) => m.type === 'event' && m.name === 'unhealthy' && m.data.ip === vip4(1), 15_000)) as any;
      assert.equal(unhealthy.data.reason, 'listen-failed');
      assert.match(unhealthy.data.detail, /EADDRINUSE|in use/);
      const holder = (await settledHolders(lab, [vip4(1)], NODES, 10_000)).get(vip4(1));
      assert.notEqual(holder, 'n1', 'the preferred but broken node does not black-hole the VIP');
    } finally {
      await squatter.stop();
      await lab.sysctl('n1', 'net.ipv4.ip_nonlocal_bind', '0');
    }
  });

  test('a VIP removed behind the holder\'s back is restored and re-announced', async () => {
    cluster = new Cluster(lab);
    await Promise.all(NODES.map((n) => cluster.start(n, configFor(lab, n, DEFAULT_VIPS))));
    const holder = (await settledHolders(lab, [vip4(4)])).get(vip4(4)) as string;
    // Settled: the holder holds it (not releasing it to a concurrent claimant) and nobody else is acquiring it.
    await cluster.until(
      async () => {
        for (const n of NODES) {
          const phase = (await cluster.status(n)).vips.find((v: any) => v.ip === vip4(4))?.phase;
          if (phase !== (n === holder ? 'held' : 'idle')) return null;
        }
        return true;
      },
      10_000,
      `${holder} alone holding ${vip4(4)}`,
    );
    await lab.exec(holder, ['ip', 'addr', 'del', `${vip4(4)}/32`, 'dev', 'eth0']);
    await cluster.proc(holder).nextMessage((m) => m.type === 'event' && m.name === 'address-restored' && m.data.ip === vip4(4), 5000);
    assert.deepEqual(await holdersOf(lab, vip4(4)), [holder]);
  });

  test('heartbeats over IPv6 unicast, and over an IPv4 multicast group, elect and move VIPs the same way', async () => {
    for (const transport of ['ipv6-unicast', 'ipv4-multicast'] as const) {
      cluster = new Cluster(lab);
      const clusterSection = (n: string) =>
        transport === 'ipv6-unicast'
          ? { id: 'lab', secret: SECRET, bind: lab.host(n).ipv6, peers: NODES.map((m) => lab.host(m).ipv6) }
          : { id: 'lab', secret: SECRET, bind: lab.host(n).ipv4, multicast: '239.255.77.1' };
      await Promise.all(NODES.map((n) => cluster.start(n, { ...configFor(lab, n, DEFAULT_VIPS), cluster: clusterSection(n) })));
      const ips = DEFAULT_VIPS.map((v) => v.ip);
      await cluster.until(
        async () => {
          const map = await settledHolders(lab, ips, NODES, 100).catch(() => null);
          return map && DEFAULT_VIPS.every((v) => !v.preferred || map.get(v.ip) === v.preferred) ? map : null;
        },
        15_000,
        `${transport}: preferred nodes holding their VIPs`,
      );
      const victim = cluster.proc('n3');
      victim.kill('SIGKILL');
      await victim.exited;
      cluster.procs.delete('n3');
      const moved = await settledHolders(lab, [vip4(3)], ['n1', 'n2']);
      assert.ok(moved.get(vip4(3)), `${transport}: n3's VIP taken over`);
      await cluster.stopAll();
      await lab.exec('n3', ['ip', 'addr', 'del', `${vip4(3)}/32`, 'dev', 'eth0'], { allowFailure: true });
    }
  });

  test('30 % random loss both ways on every node at default timers: no two holders of any VIP (IPv4 or IPv6) past one heartbeat + announcement; holder changes reported', async () => {
    cluster = new Cluster(lab);
    await Promise.all(NODES.map((n) => cluster.start(n, configFor(lab, n, DEFAULT_VIPS))));
    const ips = DEFAULT_VIPS.map((v) => v.ip);
    await cluster.until(async () => {
      const map = await settledHolders(lab, ips, NODES, 100).catch(() => null);
      return map && DEFAULT_VIPS.every((v) => !v.preferred || map.get(v.ip) === v.preferred) ? map : null;
    }, 15_000, 'preferred nodes holding their VIPs');
    const monitor = await AddressMonitor.start(lab, [...NODES]);
    const LOSS_MS = 20_000;
    try {
      for (const n of NODES) await lab.loss(n, 30);
      await new Promise((resolve) => setTimeout(resolve, LOSS_MS));
      // The loss is measured where it happens: about half of each peer's heartbeats, and a
      // silence limit stretched past dead-after accordingly.
      const measured = (await cluster.status('n1')).peers.map((p: any) => ({ node: p.node, lossPercent: p.lossPercent, silenceLimitMs: p.silenceLimitMs }));
      for (const n of NODES) await lab.clearFaults(n);
      process.stdout.write(`# measured on n1 under loss: ${JSON.stringify(measured)}\n`);
      assert.equal(measured.length, 2);
      assert.ok(measured.every((p: any) => p.lossPercent >= 25 && p.lossPercent <= 80 && p.silenceLimitMs > 200), JSON.stringify(measured));
      await settledHolders(lab, ips, NODES, 15_000);
      // heartbeat (50 ms) + one announcement round (100 ms)
      const bound = 150;
      const duals = ips.flatMap((ip) => monitor.duals(ip).map((d) => ({ ip, ...d })));
      const changes = ips.map((ip) => monitor.events.filter((e) => e.ip === ip && e.added).length);
      process.stdout.write(`# 30 % loss for ${LOSS_MS} ms: ${changes.reduce((a, b) => a + b, 0)} acquisitions, duals ${JSON.stringify(duals.map((d) => [d.ip, d.ms]))}\n`);
      // Loss this heavy (51 % end to end) used to make nodes declare live peers dead every few
      // seconds; for IPv6 the takeover's probe is lost too (neighbour discovery is IP), so each
      // false peer-down of a holder left two holders for up to 1.4 s. Witnesses and the
      // loss-stretched silence limit (loss-estimate.ts) keep live peers live; a peer-down at the
      // onset of loss stays possible (nothing had been lost yet), so holder changes are reported,
      // and the guarantee asserted is the one for every family: no lasting dual holder.
      assert.deepEqual(duals.filter((d) => d.ms > bound), [], `two holders of a VIP past ${bound} ms under loss`);
      const status = await cluster.status('n1');
      assert.equal(typeof status.vips[0].epoch, 'number');
    } finally {
      monitor.stop();
    }
  });

  test('a node stalled past dead-after (SIGSTOP) loses its VIPs, and after SIGCONT it yields instead of fighting', async () => {
    cluster = new Cluster(lab);
    await Promise.all(NODES.map((n) => cluster.start(n, configFor(lab, n, DEFAULT_VIPS))));
    const ips = DEFAULT_VIPS.map((v) => v.ip);
    await cluster.until(async () => (await holdersOf(lab, vip4(2))).join() === 'n2', 15_000, 'n2 holding its preferred VIP');
    const monitor = await AddressMonitor.start(lab, [...NODES]);
    try {
    const n2 = cluster.proc('n2');
    n2.kill('SIGSTOP');
    // n1/n3 hear nothing from n2 and take its VIP; n2's guardian removed it from n2's kernel first.
    await cluster.until(async () => (await holdersOf(lab, vip4(2), ['n1', 'n3'])).length === 1, 10_000, 'n1 or n3 taking over n2\'s VIP');
    assert.deepEqual((await holdersOf(lab, vip4(2), ['n2'])), [], "the stopped n2's kernel no longer has the VIP");
    // Keep n2 stopped well past dead-after, so its stall is unmistakable.
    await cluster.until(async () => ((await cluster.status('n1')).peers.find((p: any) => p.node === 'n2')?.lastHeardMsAgo ?? 0) > 1000, 10_000, 'n2 silent for over a second');
    n2.kill('SIGCONT');
    // n2 measures its own stall, listens again instead of declaring the others dead,
    // sees a better claim (higher epoch) on its VIP and releases it; after its
    // hold-down it gets it back by a clean handover. Exactly one holder throughout the end state.
    const stall = (await n2.nextMessage((m) => m.type === 'event' && m.name === 'stall', 10_000)) as { data: { lagMs: number } };
    assert.ok(stall.data.lagMs > 200, `stall of ${stall.data.lagMs} ms reported`);
    // It listened again instead of declaring its peers dead.
    assert.ok(!n2.messages.some((m: any) => m.type === 'event' && m.name === 'peer-down'), 'n2 declared no peer dead after its stall');
    await cluster.until(
      async () => {
        const map = await settledHolders(lab, ips, NODES, 100).catch(() => null);
        return map?.get(vip4(2)) === 'n2' ? map : null;
      },
      15_000,
      'one holder each, n2 holding its preferred VIP again',
    );
    const status = await cluster.status('n2');
    assert.equal(status.peers.filter((p: any) => p.live).length, 2, 'n2 never lost its peers for good');
    // From the kernels: no moment at which two namespaces had one VIP, through the stall, the
    // wake-up (released as stale, not restored) and the handover back.
    for (const ip of ips) assert.deepEqual(monitor.duals(ip), [], `${ip} held twice`);
    } finally {
      monitor.stop();
    }
  });

  test('a node stalled until its guardian removed its VIPs and then SIGKILLed resets the sessions it leaves: a client waiting for a reply is told at once', async () => {
    cluster = new Cluster(lab);
    await Promise.all(NODES.map((n) => cluster.start(n, configFor(lab, n, DEFAULT_VIPS))));
    const ip = vip4(1);
    await cluster.until(async () => (await holdersOf(lab, ip)).join() === 'n1' || null, 15_000, 'n1 holding its preferred VIP');
    const client = lab.spawnNode('client', fixturePath('idle-sessions'), [JSON.stringify({ ip, port: 2525, count: 4 })]);
    try {
      await client.nextMessage((m) => m.type === 'connected', 10_000);
      const n1 = cluster.proc('n1');
      n1.kill('SIGSTOP');
      // The guardian keeps the sessions when it removes the VIP of a node that only went silent.
      await cluster.until(async () => (await holdersOf(lab, ip, ['n1'])).length === 0 || null, 10_000, "n1's guardian removing the VIP of the stopped node");
      const killedAt = Date.now();
      n1.kill('SIGKILL');
      await n1.exited;
      cluster.procs.delete('n1');
      const ended = await waitFor(() => {
        const list = client.messages.filter((m: any) => m.type === 'ended') as Array<{ error: string; at: number }>;
        return list.length === 4 ? list : null;
      }, { timeoutMs: 10_000, what: 'every waiting client told of the dead node' }).catch((error: Error) => {
        throw new Error(`${error.message}; the client heard ${JSON.stringify(client.messages)}; n1 said:\n${n1.stderr.slice(-1500)}`);
      });
      for (const e of ended) assert.ok(e.at - killedAt < 5000, `told ${e.at - killedAt} ms after the kill (${e.error})`);
      assert.ok(ended.every((e) => e.error === 'ECONNRESET'), `reset, not closed or left waiting: ${JSON.stringify(ended)}`);
      assert.deepEqual(await holdersOf(lab, ip, ['n1']), [], 'the VIP is gone from the dead node again');
      assert.match(n1.stderr, new RegExp(`${ip.replace(/\./g, '\\.')}/32 back on eth0 for \\d+ ms to reset 4 sessions`));
    } finally {
      await client.stop().catch(() => undefined);
    }
  });

  test('a node that hears nothing (its inbound cluster traffic dropped) takes no VIP the others hold: the wire answers its probes', async () => {
    cluster = new Cluster(lab);
    await Promise.all(NODES.map((n) => cluster.start(n, configFor(lab, n, DEFAULT_VIPS))));
    const ips = DEFAULT_VIPS.map((v) => v.ip);
    const before = await settledHolders(lab, ips);
    const monitor = await AddressMonitor.start(lab, [...NODES]);
    try {
      await lab.loss('n3', 100, 'udp dport 7946', 'in');
      // n3 declares its peers dead, elects itself for every VIP, probes, and is answered.
      // held-on-wire is retried every dead-after period, and the problem is lifted for the
      // retry's probe: wait for a status taken while it stands (not the one after the counter).
      const status = await cluster.until(async () => {
        const s = await cluster.status('n3');
        return (s.counters.acquisitions_blocked_total ?? 0) >= 1 && s.vips.some((v: any) => v.unhealthy?.reason === 'held-on-wire') ? s : null;
      }, 10_000, 'n3 blocked by the wire, its VIPs held-on-wire');
      assert.match(status.vips.find((v: any) => v.unhealthy?.reason === 'held-on-wire').unhealthy.detail, /^([0-9a-f]{2}:){5}[0-9a-f]{2} answered the probe/);
      assert.deepEqual(await settledHolders(lab, ips), before, 'nobody lost a VIP to the deaf node');
      await lab.clearFaults('n3');
      await cluster.until(async () => ((await cluster.status('n3')).peers.filter((p: any) => p.live).length === 2 ? true : null), 10_000, 'n3 hearing its peers again');
      assert.deepEqual(await settledHolders(lab, ips), before, 'and nothing moved when it heard them again');
      for (const ip of ips) assert.deepEqual(monitor.duals(ip), [], `${ip} held twice`);
    } finally {
      monitor.stop();
      await lab.clearFaults('n3');
    }
  });

  test('operator move through the CLI and the admin endpoint: the holder drains, the chosen node takes the VIP; metrics and status tell', async () => {
    cluster = new Cluster(lab);
    await Promise.all(NODES.map((n) => cluster.start(n, { ...configFor(lab, n, DEFAULT_VIPS), fixture: { adminPort: 7980 } })));
    const holder = (await settledHolders(lab, [vip4(4)])).get(vip4(4)) as string;
    const target = NODES.find((n) => n !== holder) as string;
    const cli = require.resolve('../../lib/ops/cli.js');
    // Issued on a third node (neither holder nor target): the pin travels in heartbeats.
    const issuer = NODES.find((n) => n !== holder && n !== target) as string;
    const moved = await lab.exec(issuer, [process.execPath, cli, 'move', vip4(4), target]);
    assert.match(moved.stdout, new RegExp(`"node": "${target}"`));
    await cluster.until(async () => (await holdersOf(lab, vip4(4))).join() === target, 10_000, `${vip4(4)} moved to ${target}`);
    const released = (await cluster.proc(holder).nextMessage((m) => m.type === 'event' && m.name === 'released' && m.data.ip === vip4(4), 5000)) as any;
    assert.equal(released.data.reason, 'not-owner');
    const status = await lab.exec(target, [process.execPath, cli, 'status']);
    assert.match(status.stdout, new RegExp(`${vip4(4).replace(/\./g, '\\.')}\\s+owned\\s+${target}\\s+override`));
    const metrics = await lab.exec(target, [process.execPath, '-e', "fetch('http://127.0.0.1:7980/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))"]);
    assert.match(metrics.stdout, new RegExp(`mta_vip_vip_owned\\{node="${target}",vip="${vip4(4).replace(/\./g, '\\.')}"\\} 1`));
    assert.match(metrics.stdout, /mta_vip_acquisitions_total\{node="[^"]+"\} [1-9]/);
    // A clean network: every peer's silence limit is dead-after (0.2 s).
    assert.match(metrics.stdout, /mta_vip_peer_silence_limit_seconds\{node="[^"]+",peer="n\d"\} 0\.2\n/);
    // A move to a node that does not declare the VIP is refused with the reason.
    const refused = await lab.exec(issuer, [process.execPath, cli, 'move', vip4(4), 'nobody'], { allowFailure: true });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /nobody is not a live participant/);
  });

  test('a listener following a binding comes up wherever the binding is held, and moves with it', async () => {
    cluster = new Cluster(lab);
    const LEADER = vip4(7);
    const FOLLOWER = vip4(6);
    const config = (n: string): Record<string, unknown> => ({
      ...configFor(lab, n, []),
      listeners: [{ address: `${FOLLOWER}:2525`, follow: 'acme' }],
      bindings: [{ name: 'acme', address: LEADER }],
      vips: { [LEADER]: { preferred: 'n2' } },
    });
    await Promise.all(NODES.map((n) => cluster.start(n, config(n))));
    await cluster.until(async () => (await holdersOf(lab, LEADER)).join() === 'n2' && (await holdersOf(lab, FOLLOWER)).join() === 'n2', 15_000, 'n2 holding acme and its follower');
    const n2 = cluster.proc('n2');
    n2.kill('SIGKILL');
    await n2.exited;
    cluster.procs.delete('n2');
    const moved = await cluster.until(
      async () => {
        const leader = await holdersOf(lab, LEADER, ['n1', 'n3']);
        const follower = await holdersOf(lab, FOLLOWER, ['n1', 'n3']);
        return leader.length === 1 && follower.join() === leader.join() ? leader[0] : null;
      },
      10_000,
      'acme and its follower on the same surviving node',
    );
    // The client had never resolved the follower: its first ARP may be answered by
    // the killed node's kernel too (its alias outlives the process); the new
    // holder's repeated announcements settle that within a few hundred ms.
    await cluster.until(
      async () => {
        const banner = await lab.exec('client', ['swaks', '--server', FOLLOWER, '--port', '2525', '--quit-after', 'CONNECT', '--timeout', '1'], { allowFailure: true, timeoutMs: 5000 });
        return new RegExp(`mta-vip ${moved}`).test(banner.stdout);
      },
      10_000,
      `the follower listener answering on ${moved}, which holds acme`,
    );
  });

  test('boot removes a leftover alias of a managed VIP before doing anything else', async () => {
    cluster = new Cluster(lab);
    // What a host finds after a crash the reaper could not handle (the whole process group killed).
    await lab.exec('n3', ['ip', 'addr', 'add', `${vip4(1)}/32`, 'dev', 'eth0']);
    await Promise.all(NODES.map((n) => cluster.start(n, configFor(lab, n, DEFAULT_VIPS))));
    const status = await cluster.status('n3');
    assert.equal(status.counters.leftover_aliases_removed_total, 1);
    await cluster.until(async () => (await holdersOf(lab, vip4(1))).join() === 'n1', 15_000, 'only n1 (preferred) holding its VIP');
  });

  test('arpAllHosts with shared neighbour tables reaches a host that ignores gratuitous ARP and only talked to the dead holder', async () => {
    cluster = new Cluster(lab);
    // The client drops every broadcast ARP (gratuitous ones included), like hosts and
    // switches that ignore them: only a unicast ARP reply can move its entry.
    await lab.exec('client', ['nft', 'add table netdev mvgarp']);
    await lab.exec('client', ['nft', 'add chain netdev mvgarp in { type filter hook ingress device eth0 priority 0 ; }']);
    await lab.exec('client', ['nft', 'add rule netdev mvgarp in ether daddr ff:ff:ff:ff:ff:ff ether type arp drop']);
    try {
      await Promise.all(NODES.map((n) => cluster.start(n, configFor(lab, n, DEFAULT_VIPS, { announce: { arpAllHosts: true } }))));
      const holder = (await settledHolders(lab, [vip4(4)])).get(vip4(4)) as string;
      // What earlier tests left in the client's table (vip4(4) on another node then, STALE) would
      // be used as it is: with broadcast ARP dropped nothing corrects it within the ping's second.
      await lab.exec('client', ['ip', 'neigh', 'flush', 'dev', 'eth0']);
      assert.ok(await ping(lab, 'client', vip4(4)), 'client reaches the VIP (its ARP request goes out; the reply is unicast)');
      assert.equal(await lab.neighbourMac('client', vip4(4)), lab.host(holder).mac);
      // The holder shares its neighbour table (now with the client in it) with its peers.
      const survivors = NODES.filter((n) => n !== holder);
      const client = lab.host('client');
      await cluster.until(
        async () => {
          for (const n of survivors) {
            const peer = (await cluster.status(n)).peers.find((p: any) => p.node === holder);
            if (!peer?.neighbours.some((e: any) => e.address === client.ipv4 && e.mac === client.mac)) return null;
          }
          return true;
        },
        5000,
        `${holder}'s neighbour table, with the client in it, reaching its peers`,
      );
      const killed = cluster.proc(holder);
      killed.kill('SIGKILL');
      await killed.exited;
      cluster.procs.delete(holder);
      const next = (await settledHolders(lab, [vip4(4)], survivors)).get(vip4(4)) as string;
      // No ping while waiting: only the new holder's unicast ARP can move the entry.
      await cluster.until(async () => (await lab.neighbourMac('client', vip4(4))) === lab.host(next).mac, 5000, `client's entry showing ${next}'s MAC without any gratuitous ARP`);
    } finally {
      await lab.exec('client', ['nft', 'delete table netdev mvgarp'], { allowFailure: true });
    }
  });
});

/** The UDP payloads of an Ethernet pcap file (IPv4 only, no options parsing beyond IHL). */
function udpPayloads(file: string): Buffer[] {
  const data = fs.readFileSync(file);
  const out: Buffer[] = [];
  let offset = 24; // global header
  while (offset + 16 <= data.length) {
    const captured = data.readUInt32LE(offset + 8);
    const frame = data.subarray(offset + 16, offset + 16 + captured);
    offset += 16 + captured;
    if (frame.length < 14 + 20 + 8 || frame.readUInt16BE(12) !== 0x0800) continue;
    const ihl = ((frame[14] as number) & 0x0f) * 4;
    if (frame[14 + 9] !== 17) continue;
    const udp = 14 + ihl;
    const length = frame.readUInt16BE(udp + 4);
    out.push(Buffer.from(frame.subarray(udp + 8, udp + length)));
  }
  return out;
}
