// Whole VipCluster nodes without root: the real membership on 127.0.0.x, the
// real engine and driver, and a fake addon (test/unit/helpers/fake-net.ts)
// that records what would have been done to the interface.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createCluster, type VipCluster } from '../../lib';
import { FakeNet } from './helpers/fake-net';
import { waitFor } from './helpers/membership-pool';

const VIP = '198.18.1.1';
const PORT = 20000 + Math.floor(Math.random() * 20000);
const open: VipCluster[] = [];
after(async () => {
  await Promise.all(open.map((c) => c.close()));
});

function node(name: string, address: string, netPort: FakeNet): VipCluster {
  const cluster = createCluster(
    {
      node: name,
      cluster: { id: 'driver', secret: 'sixteen bytes at least!', bind: address, port: PORT, peers: [`127.0.0.61:${PORT}`, `127.0.0.62:${PORT}`] },
      listeners: [`${VIP}:2525`],
      vips: { [VIP]: { preferred: 'a' } },
      topology: [{ cidr: '198.18.1.0/24', interface: 'eth0' }],
      timers: { heartbeatMs: 20, deadAfterMs: 100, holdDownMs: 200 },
    },
    { aliasReaper: false, relay: { enabled: false }, shareNeighboursMs: 0, ports: { net: netPort } },
  );
  open.push(cluster);
  return cluster;
}

test('two nodes with a fake addon: the preferred node acquires, a removed address is restored, a graceful close hands over', async () => {
  const netA = new FakeNet(['127.0.0.61']);
  const netB = new FakeNet(['127.0.0.62']);
  const a = node('a', '127.0.0.61', netA);
  const b = node('b', '127.0.0.62', netB);
  const errors: string[] = [];
  a.on('error', (e) => void errors.push(`${e.operation}: ${e.error.message}`));
  // A listener that throws must not leave the VIP half-acquired.
  a.on('acquired', () => {
    throw new Error('listener bug');
  });
  await a.start();
  // b is not running yet: status names the configured peer a has never heard.
  assert.deepEqual(a.status().unheardPeers, ['127.0.0.62']);
  await b.start();
  await waitFor('a hears b', () => a.status().unheardPeers.length === 0, 5000);
  // Events are delivered once the step's effects have started: wait for the event too.
  await waitFor('a holds the VIP', () => netA.has(`${VIP}/32`) && a.status().vips[0]?.phase === 'held' && errors.length > 0, 5000).catch((error: Error) => {
    throw new Error(`${error.message}: a ${JSON.stringify(a.status().vips)} ${netA.log.join(' ')}; b ${JSON.stringify(b.status().vips)} ${netB.log.join(' ')}; errors ${errors.join('; ')}`);
  });
  assert.equal(netB.has(`${VIP}/32`), false);
  assert.deepEqual(netA.probes, [[VIP]], 'probed once before the address was added');
  // announce.count 3: the takeover's announcement, then each further round in a call of its own
  // (a call of several rounds would sleep between them on one of libuv's threads).
  await waitFor('three announcements', () => netA.announcements.filter((x) => x.addresses.includes(VIP)).length >= 3, 5000);
  assert.deepEqual(netA.announcements.filter((x) => x.addresses.includes(VIP)).map((x) => x.count), [1, 1, 1]);
  assert.deepEqual(errors, ["'acquired' listener: listener bug"]);

  await netA.removeBehindBack(`${VIP}/32`);
  await waitFor('a restored the address', () => netA.has(`${VIP}/32`) && (a.status().counters.addresses_restored_total ?? 0) === 1, 5000);

  const epoch = a.status().vips[0]?.epoch ?? 0;
  await a.close();
  await waitFor('b took the VIP over', () => netB.has(`${VIP}/32`) && b.status().vips[0]?.phase === 'held', 5000);
  assert.equal(netA.has(`${VIP}/32`), false, 'a removed it before b added it');
  assert.ok((b.status().vips[0]?.epoch ?? 0) > epoch, 'the takeover outbids the previous epoch');
});
