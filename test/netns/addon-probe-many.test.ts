// probeMany, the batched duplicate-address probe, against real kernels in a lab: n2 holds some
// addresses, n1 probes a mixed IPv4/IPv6 batch in one call and must get n2's MAC for exactly the
// held ones. The kernel of the holder answers (ARP reply to an RFC 5227 probe, NA to a DAD NS), as
// it would for a crashed node whose aliases are still configured.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Lab, labSkipReason, vip4, vip6 } from './harness';
import { AddonClient } from './lib/addon-client';

const ETH0 = 'eth0';

function cidr(address: string): string {
  return `${address}/${address.includes(':') ? 128 : 32}`;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('lib/net probeMany in network namespaces', { skip: labSkipReason() }, () => {
  let lab: Lab;
  let n1: AddonClient;
  let n2: AddonClient;

  before(async () => {
    lab = await Lab.create({ hosts: ['n1', 'n2', 'client'] });
    [n1, n2] = await Promise.all([AddonClient.start(lab, 'n1'), AddonClient.start(lab, 'n2')]);
  });
  after(() => lab?.destroy());

  test('of 10 mixed addresses, the 3 another host holds map to its MAC and the 7 others to null', async () => {
    const held = [vip4(20), vip6(21), vip4(23)];
    const free = [vip4(21), vip6(20), vip4(22), vip6(22), vip6(23), vip4(24), vip6(24)];
    // Interleaved, so neither family comes as one block.
    const batch = [vip4(20), vip6(20), vip4(21), vip6(21), vip4(22), vip6(22), vip4(23), vip6(23), vip4(24), vip6(24)];
    for (const address of held) await n2.addAddress(ETH0, cidr(address));
    // Every probe must go out on the wire: an ARP probe (sender 0.0.0.0) or a DAD NS (from ::).
    const capture = await lab.capture('client', `ether src ${lab.host('n1').mac} and (arp or icmp6)`);
    try {
      const result = await n1.probeMany(ETH0, batch, { timeoutMs: 1000 });
      assert.deepEqual([...result.keys()], batch, 'one entry per address, in the order given');
      for (const address of held) assert.equal(result.get(address), lab.host('n2').mac, `probeMany: ${address} is held by n2`);
      for (const address of free) assert.equal(result.get(address), null, `probeMany: ${address} is free`);

      for (const address of batch) {
        const probe = address.includes(':')
          ? new RegExp(`:: > ff02::1:ff\\S*: ICMP6, neighbor solicitation, who has ${escape(address)},`)
          : new RegExp(`Request who-has ${escape(address)} tell 0\\.0\\.0\\.0,`);
        await capture.waitFor(probe, 3000);
      }
    } finally {
      await capture.stop();
      for (const address of held) await n2.removeAddress(ETH0, cidr(address));
    }
  });

  test('two spellings of one address are probed once and both get the answer', async () => {
    const address = vip6(25);
    const upper = address.toUpperCase();
    assert.notEqual(upper, address);
    await n2.addAddress(ETH0, cidr(address));
    try {
      const result = await n1.probeMany(ETH0, [address, upper, vip4(25)], { timeoutMs: 500 });
      assert.deepEqual([...result], [[address, lab.host('n2').mac], [upper, lab.host('n2').mac], [vip4(25), null]]);
    } finally {
      await n2.removeAddress(ETH0, cidr(address));
    }
  });

  test('a batch of 1,000 held addresses gets every answer (none lost while the probes go out)', async () => {
    const held = [...Array.from({ length: 500 }, (_, i) => vip4(2000 + i)), ...Array.from({ length: 500 }, (_, i) => vip6(2000 + i))];
    for (const address of held) await n2.addAddress(ETH0, cidr(address));
    try {
      const result = await n1.probeMany(ETH0, held, { timeoutMs: 5000 });
      const unanswered = held.filter((address) => result.get(address) !== lab.host('n2').mac);
      assert.deepEqual(unanswered, [], `${unanswered.length} of ${held.length} held addresses without n2's MAC`);
    } finally {
      for (const address of held) await n2.removeAddress(ETH0, cidr(address));
    }
  });

  test('an empty list resolves to an empty map', async () => {
    assert.deepEqual(await n1.probeMany(ETH0, []), new Map());
  });
});
