// Without CAP_NET_RAW / CAP_NET_ADMIN every privileged lib/net call must fail with code EPERM and a
// message naming the missing capability (so an operator knows what to grant), and nothing may change.
// The fixture runs as root inside a namespace but under setpriv, which removes both capabilities from
// the bounding and inheritable sets before exec'ing node: root's permitted and effective sets after
// exec are limited by the bounding set, so node runs without them. The test checks that this really
// happened (capsh --has-p, and the fixture's own /proc/self/status) before trusting any EPERM.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fixturePath, Lab, labSkipReason, vip4, vip6 } from './harness';
import { AddonClient, type AddonCallError } from './lib/addon-client';

const WITHOUT_NET_CAPS = ['setpriv', '--bounding-set', '-net_admin,-net_raw', '--inh-caps', '-net_admin,-net_raw', '--'];
const CAP_NET_ADMIN = 12;
const CAP_NET_RAW = 13;

function hasCap(mask: string, bit: number): boolean {
  return ((BigInt(`0x${mask || '0'}`) >> BigInt(bit)) & 1n) === 1n;
}

/** An assert.rejects validator: code EPERM and the capability named in the message. */
function epermNaming(capability: 'CAP_NET_RAW' | 'CAP_NET_ADMIN') {
  return (error: AddonCallError) => {
    assert.equal(error.code, 'EPERM', `code of ${error.name}: ${error.message}`);
    assert.match(error.message, new RegExp(capability));
    return true;
  };
}

describe('lib/net without network capabilities', { skip: labSkipReason() }, () => {
  let lab: Lab;
  let unprivileged: AddonClient;
  const held = vip4(1);

  before(async () => {
    lab = await Lab.create({ hosts: ['n1', 'n2'] });
    // As full root: a neighbour for arpAllHosts to answer, and an address for removeAddress to try
    // (so an implementation that skips absent addresses still has to make the syscall).
    await lab.exec('n1', ['ping', '-c', '1', '-W', '1', lab.host('n2').ipv4]);
    await lab.exec('n1', ['ip', 'addr', 'add', `${held}/32`, 'dev', 'eth0']);
    unprivileged = await AddonClient.start(lab, 'n1', { wrapper: WITHOUT_NET_CAPS });
  });
  after(() => lab?.destroy());

  test('the wrapper really drops CAP_NET_RAW and CAP_NET_ADMIN (and only the wrapper does)', async () => {
    for (const cap of ['cap_net_raw', 'cap_net_admin']) {
      const dropped = await lab.exec('n1', [...WITHOUT_NET_CAPS, 'capsh', `--has-p=${cap}`], { allowFailure: true });
      assert.notEqual(dropped.code, 0, `${cap} still permitted under the wrapper: ${dropped.stdout}${dropped.stderr}`);
      assert.equal((await lab.exec('n1', ['capsh', `--has-p=${cap}`], { allowFailure: true })).code, 0, `${cap} missing even without the wrapper`);
    }
    const { effective, bounding } = unprivileged.ready.caps;
    assert.ok(!hasCap(effective, CAP_NET_RAW) && !hasCap(effective, CAP_NET_ADMIN), `fixture CapEff ${effective}`);
    assert.ok(!hasCap(bounding, CAP_NET_RAW) && !hasCap(bounding, CAP_NET_ADMIN), `fixture CapBnd ${bounding}`);
  });

  test('announce, probe, probeMany, sniff and arpAllHosts fail with EPERM naming CAP_NET_RAW', async () => {
    await assert.rejects(unprivileged.announce('eth0', [held]), epermNaming('CAP_NET_RAW'));
    await assert.rejects(unprivileged.announce('eth0', [vip6(1)]), epermNaming('CAP_NET_RAW'));
    await assert.rejects(unprivileged.probe('eth0', vip4(2), { timeoutMs: 50 }), epermNaming('CAP_NET_RAW'));
    await assert.rejects(unprivileged.probeMany('eth0', [vip4(2), vip6(2)], { timeoutMs: 50 }), epermNaming('CAP_NET_RAW'));
    await assert.rejects(unprivileged.sniff('eth0', [held]), epermNaming('CAP_NET_RAW'));
    await assert.rejects(unprivileged.arpAllHosts('eth0', held), epermNaming('CAP_NET_RAW'));
  });

  test('addAddress and removeAddress fail with EPERM naming CAP_NET_ADMIN and change nothing', async () => {
    await assert.rejects(unprivileged.addAddress('eth0', `${vip4(3)}/32`), epermNaming('CAP_NET_ADMIN'));
    await assert.rejects(unprivileged.addAddress('eth0', `${vip6(3)}/128`), epermNaming('CAP_NET_ADMIN'));
    await assert.rejects(unprivileged.removeAddress('eth0', `${held}/32`), epermNaming('CAP_NET_ADMIN'));
    const addresses = (await lab.addresses('n1')).map((a) => a.address);
    assert.ok(addresses.includes(held), 'removeAddress without CAP_NET_ADMIN removed the address');
    assert.ok(!addresses.includes(vip4(3)) && !addresses.includes(vip6(3)));
  });

  test('a cluster node without them refuses to start, naming both, before binding a socket or adding anything', async () => {
    const config = {
      node: 'n1',
      cluster: { id: 'caps', secret: 'a cluster secret of enough bytes', bind: lab.host('n1').ipv4, peers: [lab.host('n1').ipv4, lab.host('n2').ipv4] },
      listeners: [`${vip4(7)}:2525`],
      vips: { [vip4(7)]: { preferred: 'n1' } },
      topology: [{ cidr: '198.18.0.0/16', interface: 'eth0' }],
    };
    const node = lab.spawnNode('n1', fixturePath('cluster-node'), [JSON.stringify(config)], { wrapper: WITHOUT_NET_CAPS });
    const refused = (await node.nextMessage((m) => m.type === 'start-error' || m.type === 'started', 10_000)) as { type: string; code?: string; message?: string };
    assert.equal(refused.type, 'start-error', 'started without CAP_NET_ADMIN and CAP_NET_RAW');
    assert.equal(refused.code, 'EPERM');
    assert.match(refused.message ?? '', /needs CAP_NET_ADMIN and CAP_NET_RAW \(EPERM\).*setcap cap_net_raw,cap_net_admin\+ep/);
    const udp = await lab.exec('n1', ['ss', '-Huln', 'sport', '= :7946']);
    assert.equal(udp.stdout.trim(), '', `the cluster port was bound: ${udp.stdout}`);
    assert.ok(!(await lab.addresses('n1')).some((a) => a.address === vip4(7)));
  });

  test('reading interfaces needs no capability', async () => {
    const eth0 = (await unprivileged.interfaces()).find((info) => info.name === 'eth0');
    assert.equal(eth0?.mac, lab.host('n1').mac);
    assert.ok(eth0?.addresses.some((a) => a.address === held));
  });
});
