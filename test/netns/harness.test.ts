// Self-test of the namespace lab: if these fail, every multi-node test built on the lab is suspect.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Lab, LAB_FAULT_TABLE, fixturePath, labSkipReason, run, vip4, vip6, waitFor } from './harness';

/** One ICMP echo with a 1 s reply timeout; true when answered. */
async function pings(lab: Lab, from: string, to: string): Promise<boolean> {
  const family = to.includes(':') ? '-6' : '-4';
  const result = await lab.exec(from, ['ping', family, '-c', '1', '-W', '1', to], { allowFailure: true });
  return result.code === 0;
}

async function netnsNames(): Promise<string[]> {
  const { stdout } = await run(['ip', 'netns', 'list']);
  return stdout.split('\n').map((line) => line.split(' ')[0] ?? '').filter(Boolean);
}

describe('lab harness', { skip: labSkipReason() }, () => {
  let lab: Lab;
  before(async () => {
    lab = await Lab.create({ hosts: ['n1', 'n2', 'n3'] });
  });
  after(() => lab?.destroy());

  test('hosts get their addresses and reach each other over IPv4 and IPv6', async () => {
    const n1 = lab.host('n1');
    const n2 = lab.host('n2');
    assert.equal(n1.ns, `${lab.id}-n1`);
    assert.notEqual(n1.mac, n2.mac);
    const addresses = await lab.addresses('n1');
    assert.deepEqual(addresses.filter((a) => !a.address.startsWith('fe80')), [
      { family: 4, address: n1.ipv4, prefix: 16 },
      { family: 6, address: n1.ipv6, prefix: 64 },
    ]);
    assert.ok(await pings(lab, 'n1', n2.ipv4), 'n1 -> n2 IPv4');
    assert.ok(await pings(lab, 'n2', n1.ipv6), 'n2 -> n1 IPv6');
    assert.ok(await pings(lab, 'n3', n1.ipv4), 'n3 -> n1 IPv4');
    // The pings left neighbour entries with the right MACs.
    assert.equal(await lab.neighbourMac('n1', n2.ipv4), n2.mac);
    assert.equal(await lab.neighbourMac('n1', n2.ipv6), n2.mac);
  });

  test('partition cuts every frame between two hosts, including ARP, and heal restores it', async () => {
    const n1 = lab.host('n1');
    const n2 = lab.host('n2');
    const n3 = lab.host('n3');
    await lab.partition('n1', 'n2');
    try {
      // Everything n2 receives from n1's MAC: with a working partition, nothing at all.
      const fromN1 = await lab.capture('n2', `ether src ${n1.mac}`);
      // Forget n2 so n1 has to ARP / solicit for it: those broadcasts must not get through either.
      await lab.exec('n1', ['ip', 'neigh', 'flush', 'dev', 'eth0']);
      assert.equal(await pings(lab, 'n1', n2.ipv4), false, 'n1 -> n2 IPv4 must fail while partitioned');
      assert.equal(await pings(lab, 'n1', n2.ipv6), false, 'n1 -> n2 IPv6 must fail while partitioned');
      assert.equal(await lab.neighbourMac('n1', n2.ipv4), null, 'ARP must not resolve n2 across the partition');
      // n3 is not partitioned from anybody. Its ping to n2 is a marker: the bridge delivers to n2 in
      // order, so once the marker is seen, anything n1 sent earlier would have been seen as well.
      assert.ok(await pings(lab, 'n1', n3.ipv4), 'n1 -> n3 still works');
      assert.ok(await pings(lab, 'n3', n2.ipv4), 'n3 -> n2 still works');
      const lines = await fromN1.stop();
      assert.deepEqual(lines, [], 'n2 saw frames from n1 during the partition');
    } finally {
      await lab.heal('n1', 'n2');
    }
    // The neighbour entries went FAILED during the partition; the kernel retries them on the next
    // packets, so poll rather than expect the very first ping to succeed.
    await waitFor(() => pings(lab, 'n1', n2.ipv4), { timeoutMs: 10_000, what: 'n1 -> n2 IPv4 after heal' });
    await waitFor(() => pings(lab, 'n2', n1.ipv6), { timeoutMs: 10_000, what: 'n2 -> n1 IPv6 after heal' });
    const { stdout } = await run(['ip', 'netns', 'exec', lab.bridgeNs, 'nft', 'list', 'ruleset']);
    assert.doesNotMatch(stdout, /drop/, 'heal left drop rules on the bridge');
  });

  test('loss installs an nft rule inside the host that really drops, and clearFaults removes it', async () => {
    const n1 = lab.host('n1');
    await lab.loss('n2', 100, 'icmp type echo-request', 'in');
    await lab.loss('n2', 30, 'udp dport 7946');
    const { stdout } = await lab.exec('n2', ['nft', 'list', 'ruleset']);
    assert.match(stdout, new RegExp(`table inet ${LAB_FAULT_TABLE}`));
    assert.match(stdout, /icmp type echo-request drop/);
    assert.match(stdout, /udp dport 7946 numgen random mod 10000 < 3000 drop/);
    // Only in n2: the other hosts' rulesets are untouched.
    assert.doesNotMatch((await lab.exec('n1', ['nft', 'list', 'ruleset'])).stdout, /drop/);
    assert.equal(await pings(lab, 'n1', lab.host('n2').ipv4), false, 'echo requests to n2 are all dropped');
    assert.ok(await pings(lab, 'n1', lab.host('n2').ipv6), 'IPv6 echo (icmpv6) is not matched by the IPv4 rule');
    await lab.clearFaults('n2');
    assert.doesNotMatch((await lab.exec('n2', ['nft', 'list', 'ruleset'])).stdout, /drop/);
    assert.ok(await pings(lab, 'n1', lab.host('n2').ipv4), 'echo works again after clearFaults');
    assert.ok(await pings(lab, 'n2', n1.ipv4));
    await assert.rejects(lab.loss('n2', 10, 'udp dport 1; flush ruleset'), TypeError);
    await assert.rejects(lab.loss('n2', 101), RangeError);
  });

  test('linkDown takes eth0 down and linkUp brings it back', async () => {
    const n2 = lab.host('n2');
    await lab.linkDown('n2');
    const down = JSON.parse((await lab.exec('n2', ['ip', '-j', 'link', 'show', 'eth0'])).stdout) as Array<{ flags: string[] }>;
    assert.ok(!down[0]?.flags.includes('UP'), `eth0 flags after linkDown: ${down[0]?.flags}`);
    assert.equal(await pings(lab, 'n1', n2.ipv4), false, 'n2 unreachable with its link down');
    await lab.linkUp('n2');
    await waitFor(() => pings(lab, 'n1', n2.ipv4), { timeoutMs: 5000, what: 'n1 to reach n2 after linkUp' });
  });

  test('a node process spawned in a host sees only that namespace and can talk over IPC', async () => {
    const child = lab.spawnNode('n3', fixturePath('netinfo'));
    const info = await child.nextMessage<{ type: string; links: string[]; addresses: Array<{ name: string; address: string }> }>(
      (message) => message?.type === 'netinfo',
    );
    assert.deepEqual(info.links, ['eth0', 'lo']);
    const eth0 = info.addresses.filter((entry) => entry.name === 'eth0').map((entry) => entry.address);
    assert.ok(eth0.includes(lab.host('n3').ipv4), `eth0 addresses seen by the child: ${eth0}`);
    assert.ok(!eth0.includes(lab.host('n1').ipv4));
    const exit = await child.exited;
    assert.equal(exit.code, 0, child.stderr);
  });

  test('vip4 and vip6 are lab addresses on-link for every host', () => {
    assert.equal(vip4(1), '198.18.1.1');
    assert.equal(vip4(254), '198.18.1.254');
    assert.equal(vip4(1000), '198.18.4.232');
    assert.equal(vip6(25), '2001:db8::1:25');
    assert.throws(() => vip4(0), RangeError);
    assert.throws(() => vip6(10_000), RangeError);
  });
});

describe('lab clean-up', { skip: labSkipReason() }, () => {
  test('destroy stops the lab processes and deletes every namespace, and is idempotent', async () => {
    const lab = await Lab.create({ hosts: ['a', 'b'], ipv6: false });
    try {
      assert.deepEqual((await netnsNames()).filter((ns) => ns.startsWith(lab.id)).sort(), [`${lab.id}-a`, `${lab.id}-b`, `${lab.id}-br`]);
      assert.deepEqual((await lab.addresses('a')).map((a) => a.family), [4], 'ipv6: false leaves no IPv6 address');
      const child = lab.spawnNode('a', fixturePath('netinfo'), ['stay']);
      await child.nextMessage((message) => message?.type === 'netinfo');
      const capture = await lab.capture('b', 'arp');
      await lab.destroy();
      assert.notEqual(child.exit, null, 'destroy returned before the spawned process exited');
      assert.deepEqual(await capture.stop(), []);
      assert.deepEqual((await netnsNames()).filter((ns) => ns.startsWith(lab.id)), []);
      await lab.destroy();
      await assert.rejects(lab.capture('a', 'arp'), /destroyed/);
    } finally {
      await lab.destroy();
    }
  });

  test('waitFor says what it waited for and what it last saw', async () => {
    let calls = 0;
    await assert.rejects(
      waitFor(() => ++calls > 1000 && 'never', { timeoutMs: 100, intervalMs: 10, what: 'the impossible' }),
      /timed out after 100ms waiting for the impossible; last value: false/,
    );
    assert.equal(await waitFor(() => (++calls % 3 === 0 ? calls : undefined), { timeoutMs: 1000, intervalMs: 1, what: 'a third call' }) % 3, 0);
  });
});
