// The real addon (through lib/net) against the real kernel, in a lab of namespaces:
//   n1, n2  — the nodes that hold and move VIPs (each runs fixtures/addon-rpc.js)
//   client  — a host that talks to the VIPs and whose neighbour table must follow them
//   h4      — a 4th host, for arpAllHosts and the watch test (so n1's link is never taken down)
// Sysctls are left at the kernel defaults on purpose, arp_accept=0 in particular: that is what a
// client on a real LAN has, and it is why announce() must use the ARP *request* form (sender IP =
// target IP, broadcast). At arp_accept=0 such a gratuitous ARP updates an entry the client already
// has but never creates one (that would need arp_accept=1), so every move test first makes the
// client resolve the VIP while it is on the old holder. IPv6 is the same: an unsolicited NA with the
// override flag replaces the MAC of an existing neighbour entry (new entries would need
// accept_untracked_na).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Lab, labSkipReason, vip4, vip6, waitFor } from './harness';
import { AddonClient } from './lib/addon-client';

const ETH0 = 'eth0';

async function pings(lab: Lab, from: string, to: string): Promise<boolean> {
  const family = to.includes(':') ? '-6' : '-4';
  return (await lab.exec(from, ['ping', family, '-c', '1', '-W', '1', to], { allowFailure: true })).code === 0;
}

function cidr(address: string): string {
  return `${address}/${address.includes(':') ? 128 : 32}`;
}

describe('lib/net addon in network namespaces', { skip: labSkipReason() }, () => {
  let lab: Lab;
  let n1: AddonClient;
  let n2: AddonClient;
  let h4: AddonClient;

  before(async () => {
    lab = await Lab.create({ hosts: ['n1', 'n2', 'client', 'h4'] });
    [n1, n2, h4] = await Promise.all([AddonClient.start(lab, 'n1'), AddonClient.start(lab, 'n2'), AddonClient.start(lab, 'h4')]);
  });
  after(() => lab?.destroy());

  /** Moves `address` from n1 to n2 the way a failover does: remove on the old holder, add on the new one. */
  async function move(address: string, from: AddonClient, to: AddonClient): Promise<void> {
    await from.removeAddress(ETH0, cidr(address));
    await to.addAddress(ETH0, cidr(address));
  }

  /** Makes `host` resolve `address` (one ping) and checks it resolved to `mac`. */
  async function resolveVia(host: string, address: string, mac: string): Promise<void> {
    assert.ok(await pings(lab, host, address), `${host} -> ${address}`);
    assert.equal(await lab.neighbourMac(host, address), mac, `${host}'s entry for ${address} after pinging it`);
  }

  test('interfaces describes the namespace\'s own links', async () => {
    const list = await n1.interfaces();
    assert.deepEqual(list.map((info) => info.name).sort(), ['eth0', 'lo']);
    const eth0 = list.find((info) => info.name === 'eth0')!;
    assert.equal(eth0.mac, lab.host('n1').mac);
    assert.equal(eth0.mtu, 1500);
    assert.ok(eth0.up && eth0.running, JSON.stringify(eth0));
    assert.ok(eth0.addresses.some((a) => a.family === 4 && a.address === lab.host('n1').ipv4 && a.prefix === 16), JSON.stringify(eth0.addresses));
    assert.ok(eth0.addresses.some((a) => a.family === 6 && a.address === lab.host('n1').ipv6 && a.prefix === 64), JSON.stringify(eth0.addresses));
  });

  test('addAddress makes a VIP answer, removeAddress removes exactly it; both are idempotent', async () => {
    for (const address of [vip4(1), vip6(1)]) {
      await n1.addAddress(ETH0, cidr(address));
      await n1.addAddress(ETH0, cidr(address));
      const prefix = address.includes(':') ? 128 : 32;
      assert.ok((await lab.addresses('n1')).some((a) => a.address === address && a.prefix === prefix), `${address}/${prefix} on n1's eth0`);
      assert.ok(await pings(lab, 'client', address), `client -> ${address} while n1 holds it`);

      await n1.removeAddress(ETH0, cidr(address));
      await n1.removeAddress(ETH0, cidr(address));
      const left = await lab.addresses('n1');
      assert.ok(!left.some((a) => a.address === address), `${address} still on n1: ${JSON.stringify(left)}`);
      // Only the alias went: the host's own addresses stay.
      assert.ok(left.some((a) => a.address === lab.host('n1').ipv4) && left.some((a) => a.address === lab.host('n1').ipv6));
      assert.equal(await pings(lab, 'client', address), false, `client -> ${address} after removal must fail`);
    }
  });

  test('announce (gratuitous ARP) moves the client\'s existing entry for an IPv4 VIP to the new holder', async () => {
    const vip = vip4(2);
    await n1.addAddress(ETH0, cidr(vip));
    await resolveVia('client', vip, lab.host('n1').mac);

    await move(vip, n1, n2);
    const fromN2 = await n2.announce(ETH0, [vip]);
    assert.ok(fromN2.sent >= 1, `announce returned ${JSON.stringify(fromN2)}`);
    await waitFor(async () => (await lab.neighbourMac('client', vip)) === lab.host('n2').mac, {
      timeoutMs: 3000,
      what: `client's entry for ${vip} to become n2's MAC ${lab.host('n2').mac}`,
    });
    assert.ok(await pings(lab, 'client', vip), 'client reaches the VIP on n2 straight away');

    // And back: the announce from n1 updates the entry again.
    await move(vip, n2, n1);
    await n1.announce(ETH0, [vip], { count: 2, intervalMs: 10 });
    await waitFor(async () => (await lab.neighbourMac('client', vip)) === lab.host('n1').mac, {
      timeoutMs: 3000,
      what: `client's entry for ${vip} to become n1's MAC again`,
    });
    await n1.removeAddress(ETH0, cidr(vip));
  });

  test('announce (unsolicited NA) moves the client\'s existing entry for an IPv6 VIP to the new holder', async () => {
    const vip = vip6(3);
    await n1.addAddress(ETH0, cidr(vip));
    await resolveVia('client', vip, lab.host('n1').mac);

    await move(vip, n1, n2);
    const capture = await lab.capture('client', `icmp6 and ether src ${lab.host('n2').mac}`);
    const result = await n2.announce(ETH0, [vip]);
    assert.ok(result.sent >= 1, `announce returned ${JSON.stringify(result)}`);
    await waitFor(async () => (await lab.neighbourMac('client', vip)) === lab.host('n2').mac, {
      timeoutMs: 3000,
      what: `client's IPv6 entry for ${vip} to become n2's MAC ${lab.host('n2').mac}`,
    });
    // The unsolicited form, to all-nodes. (That it carries the override flag is shown by the entry
    // having changed at all: without it the kernel would only mark the REACHABLE entry STALE.)
    await capture.waitFor(new RegExp(`> ff02::1: ICMP6, neighbor advertisement, tgt is ${vip},`), 2000);
    await capture.stop();
    assert.ok(await pings(lab, 'client', vip));
    await n2.removeAddress(ETH0, cidr(vip));
  });

  test('arpAllHosts from the new holder updates every host that knew the VIP (IPv4 and IPv6)', async () => {
    const vips = [vip4(4), vip6(4)];
    const watchers = ['client', 'h4'];
    // n2 must know the watchers as neighbours: arpAllHosts answers the hosts in its own table.
    for (const watcher of watchers) {
      assert.ok(await pings(lab, 'n2', lab.host(watcher).ipv4));
      assert.ok(await pings(lab, 'n2', lab.host(watcher).ipv6));
    }
    for (const vip of vips) await n1.addAddress(ETH0, cidr(vip));
    for (const watcher of watchers) for (const vip of vips) await resolveVia(watcher, vip, lab.host('n1').mac);
    for (const vip of vips) await move(vip, n1, n2);

    // Within `locktime` (1 s) of its last update, an IPv4 entry ignores an ARP reply carrying a
    // different MAC unless the reply is gratuitous; a host that just talked to the old holder is in
    // that window. Wait until it has passed, so the test checks reach, not that kernel rule.
    await waitFor(
      async () => {
        for (const watcher of watchers) {
          const entry = (await lab.neighbours(watcher)).find((neighbour) => neighbour.address === vips[0]);
          if ((entry?.updatedSeconds ?? 0) < 2) return false;
        }
        return true;
      },
      { timeoutMs: 10_000, intervalMs: 200, what: 'the watchers\' IPv4 entries to be older than locktime' },
    );

    // lib/net's view of n2's neighbour table is the kernel's.
    const known = await n2.neighbours(ETH0);
    for (const watcher of watchers) {
      assert.ok(known.some((entry) => entry.address === lab.host(watcher).ipv4 && entry.mac === lab.host(watcher).mac), `${watcher} in ${JSON.stringify(known)}`);
      assert.ok(known.some((entry) => entry.address === lab.host(watcher).ipv6 && entry.mac === lab.host(watcher).mac), `${watcher} v6 in ${JSON.stringify(known)}`);
    }

    const captures = await Promise.all(watchers.map((watcher) => lab.capture(watcher, `ether src ${lab.host('n2').mac} and ether dst ${lab.host(watcher).mac}`)));
    for (const vip of vips) {
      const result = await n2.arpAllHosts(ETH0, vip);
      assert.ok(result.sent >= watchers.length, `arpAllHosts(${vip}) sent ${result.sent}, n2 knows at least ${watchers.length} hosts`);
    }
    for (const watcher of watchers) {
      for (const vip of vips) {
        await waitFor(async () => (await lab.neighbourMac(watcher, vip)) === lab.host('n2').mac, {
          timeoutMs: 3000,
          what: `${watcher}'s entry for ${vip} to become n2's MAC after arpAllHosts`,
        });
      }
    }
    // Unicast, addressed to each watcher's MAC.
    for (const capture of captures) {
      await capture.waitFor(new RegExp(`ARP.*Reply ${vips[0]!.replace(/\./g, '\\.')} is-at ${lab.host('n2').mac}`), 2000);
      await capture.waitFor(new RegExp(`neighbor advertisement, tgt is ${vips[1]},`), 2000);
      await capture.stop();
    }
    for (const vip of vips) await n2.removeAddress(ETH0, cidr(vip));
  });

  test('watch reports the link going down and an address removed behind our back', async () => {
    const watch = await h4.watch();
    const vip = vip4(5);
    try {
      await lab.exec('h4', ['ip', 'addr', 'add', cidr(vip), 'dev', 'eth0']);
      await watch.next((event) => event.type === 'address-added' && event.address === vip, 3000);
      await lab.exec('h4', ['ip', 'addr', 'del', cidr(vip), 'dev', 'eth0']);
      const removed = await watch.next((event) => event.type === 'address-removed' && event.address === vip, 3000);
      assert.deepEqual(removed, { type: 'address-removed', ifname: 'eth0', index: removed.index, family: 4, address: vip, prefix: 32 });

      await lab.linkDown('h4');
      const down = await watch.next((event) => event.type === 'link' && event.ifname === 'eth0' && (!event.up || !event.running), 3000);
      assert.equal(down.type, 'link');
      await lab.linkUp('h4');
      await watch.next((event) => event.type === 'link' && event.ifname === 'eth0' && event.up && event.running, 3000);
    } finally {
      await lab.linkUp('h4');
      await watch.close();
    }
  });

  test('probe returns the MAC of the host holding an address, and null when nobody does', async () => {
    for (const [held, free] of [[vip4(6), vip4(7)], [vip6(6), vip6(7)]] as const) {
      await n2.addAddress(ETH0, cidr(held));
      assert.equal(await n1.probe(ETH0, held, { timeoutMs: 1000 }), lab.host('n2').mac, `probe ${held}`);
      assert.equal(await n1.probe(ETH0, free, { timeoutMs: 200 }), null, `probe ${free}`);
      await n2.removeAddress(ETH0, cidr(held));
    }
  });

  test('sniff in the holder reports another host announcing its address, not its own announcements', async () => {
    const vips = [vip4(8), vip6(8)];
    for (const vip of vips) await n1.addAddress(ETH0, cidr(vip));
    const sniffer = await n1.sniff(ETH0, vips);
    try {
      // n1's own announcements first: if the sniffer reported them, they would be its first events.
      await n1.announce(ETH0, vips, { count: 1 });
      await n2.announce(ETH0, vips, { count: 1 });
      const v4 = await sniffer.next((event) => event.address === vips[0], 3000);
      assert.equal(v4.mac, lab.host('n2').mac, `first IPv4 claim: ${JSON.stringify(v4)}`);
      assert.equal(v4.ifname, ETH0);
      assert.ok(['arp-request', 'arp-reply', 'arp-probe'].includes(v4.kind), v4.kind);
      const v6 = await sniffer.next((event) => event.address === vips[1], 3000);
      assert.deepEqual({ ...v6 }, { ifname: ETH0, address: vips[1], mac: lab.host('n2').mac, kind: 'na' });
      assert.ok(sniffer.events.every((event) => event.mac !== lab.host('n1').mac), `n1's own packets were reported: ${JSON.stringify(sniffer.events)}`);

      // setAddresses narrows the watch: a claim on an address no longer listed is not reported.
      await sniffer.setAddresses([vips[1]!]);
      const before = sniffer.events.length;
      await n2.announce(ETH0, vips, { count: 1 });
      await sniffer.next((event) => sniffer.events.indexOf(event) >= before && event.address === vips[1], 3000);
      assert.ok(sniffer.events.slice(before).every((event) => event.address !== vips[0]), JSON.stringify(sniffer.events.slice(before)));
    } finally {
      await sniffer.close();
      for (const vip of vips) await n1.removeAddress(ETH0, cidr(vip));
    }
  });

  test('announce sends one gratuitous ARP per address for 1,000 addresses in one call', async () => {
    const addresses = Array.from({ length: 1000 }, (_, i) => vip4(i + 1000));
    const capture = await lab.capture('client', `arp and ether src ${lab.host('n1').mac}`);
    const result = await n1.announce(ETH0, addresses, { count: 1 });
    assert.equal(result.sent, 1000);
    // Gratuitous requests only (sender IP = target IP): n1 may also ARP for its real neighbours meanwhile.
    const gratuitous = /Request who-has (\S+) tell \1,/;
    await capture.waitForCount(gratuitous, 1000, 10_000);
    const lines = (await capture.stop()).filter((line) => gratuitous.test(line));
    const announced = new Set(lines.map((line) => gratuitous.exec(line)![1]));
    assert.equal(lines.length, 1000, 'exactly one frame per address');
    assert.ok(addresses.every((address) => announced.has(address)), 'every address announced');
  });

  test('announce modes: request, reply and both forms of gratuitous ARP', async () => {
    const vip = vip4(10);
    const n1mac = lab.host('n1').mac;
    const request = new RegExp(`${n1mac} > ff:ff:ff:ff:ff:ff, ethertype ARP.*Request who-has ${vip.replace(/\./g, '\\.')} tell ${vip.replace(/\./g, '\\.')},`);
    const reply = new RegExp(`${n1mac} > ff:ff:ff:ff:ff:ff, ethertype ARP.*Reply ${vip.replace(/\./g, '\\.')} is-at ${n1mac}`);
    for (const [mode, expected] of [['request', [request]], ['reply', [reply]], ['both', [request, reply]]] as const) {
      const capture = await lab.capture('client', `arp and ether src ${n1mac}`);
      await n1.announce(ETH0, [vip], { mode, count: 1 });
      for (const pattern of expected) await capture.waitFor(pattern, 2000);
      // A marker after the announce: once it is captured, every frame of the announce has been too.
      await n1.announce(ETH0, [vip4(11)], { mode: 'request', count: 1 });
      await capture.waitFor(/who-has 198\.18\.1\.11 /, 2000);
      const lines = await capture.stop();
      const unexpected = [request, reply].filter((pattern) => !(expected as readonly RegExp[]).includes(pattern));
      assert.ok(lines.every((line) => !unexpected.some((pattern) => pattern.test(line))), `mode ${mode} sent: ${lines.join('\n')}`);
    }
  });

  test('closing watch and sniff lets the process exit on its own', async () => {
    const client = await AddonClient.start(lab, 'h4');
    await client.watch();
    await client.sniff(ETH0, [vip4(12)]);
    // 'exit' closes both subscriptions and the IPC channel; nothing else keeps the fixture alive.
    await client.call('exit');
    const exit = await waitFor(() => client.process.exit, { timeoutMs: 5000, what: 'the fixture to exit after closing watch and sniff' });
    assert.deepEqual(exit, { code: 0, signal: null }, client.process.stderr);
  });

  test('tcpSockets finds every process\'s sessions on a VIP, and destroyTcpSockets resets them while the address can still send the RST', async () => {
    const vip = vip4(13);
    await n1.addAddress(ETH0, cidr(vip));
    // A server in n1 on the VIP (another process than the addon's), and a client in 'client' that
    // waits for data: it must see the reset, not silence.
    const py = (code: string): string[] => ['python3', '-c', code];
    const serve = lab.exec('n1', py(`
import socket,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('${vip}',2600)); s.listen()
a,_=s.accept(); time.sleep(8)`), { allowFailure: true, timeoutMs: 12_000 });
    await waitFor(async () => (await n1.tcpSockets([vip], { listening: true })).some((t) => t.state === 'LISTEN' && t.localPort === 2600), { timeoutMs: 5000, what: 'the listener on the VIP' });
    const client = lab.exec('client', py(`
import socket
c=socket.create_connection(('${vip}',2600),timeout=6)
c.sendall(b'EHLO x\\r\\n')
try:
  print('got', c.recv(10))
except Exception as e:
  print('error', type(e).__name__)`), { allowFailure: true, timeoutMs: 12_000 });
    const sessions = await waitFor(async () => {
      const list = await n1.tcpSockets([vip]);
      return list.some((t) => t.state === 'ESTABLISHED') ? list : undefined;
    }, { timeoutMs: 5000, what: 'the session on the VIP' });
    const session = sessions.find((t) => t.state === 'ESTABLISHED')!;
    assert.equal(session.local, vip);
    assert.equal(session.localPort, 2600);
    assert.equal(session.remote, lab.host('client').ipv4);
    assert.ok(session.owned, 'a process holds it');
    assert.ok(session.lastReceivedMsAgo >= 0 && session.lastReceivedMsAgo < 5000, JSON.stringify(session));
    assert.ok(!sessions.some((t) => t.state === 'LISTEN'), 'LISTEN only when asked');
    assert.deepEqual(await n1.tcpSockets([vip4(14)]), [], 'nothing on another address');

    const result = await n1.destroyTcpSockets([vip, vip4(14)]);
    assert.equal(result.destroyed, 1, JSON.stringify(result));
    assert.deepEqual(result.byAddress, { [vip]: 1 }, 'counted per address, for batched releases');
    assert.match((await client).stdout, /error ConnectionResetError/, 'the client got a reset at once');
    assert.deepEqual((await n1.tcpSockets([vip])).filter((t) => t.state === 'ESTABLISHED'), []);
    // The listener itself, with listening: a new client is refused instead of queued unanswered.
    assert.equal((await n1.destroyTcpSockets([vip], { listening: true })).destroyed, 1);
    const refused = await lab.exec('client', py(`
import socket
try:
  socket.create_connection(('${vip}',2600),timeout=3); print('connected')
except Exception as e: print('error', type(e).__name__)`), { allowFailure: true });
    assert.match(refused.stdout, /error ConnectionRefusedError/);
    await serve;
    await n1.removeAddress(ETH0, cidr(vip));
  });

  test('bad arguments are refused before any syscall', async () => {
    await assert.rejects(n1.addAddress('eth9', cidr(vip4(9))), (error: NodeJS.ErrnoException) => error.code === 'ENODEV' && /eth9/.test(error.message));
    await assert.rejects(n1.addAddress(ETH0, '1.2.3'), (error: Error) => error.name === 'TypeError' && /1\.2\.3/.test(error.message));
    await assert.rejects(n1.addAddress(ETH0, `${vip4(9)}/33`), (error: Error) => error.name === 'RangeError');
    await assert.rejects(n1.addAddress(ETH0, `${vip6(9)}/129`), (error: Error) => error.name === 'RangeError');
    assert.ok(!(await lab.addresses('n1')).some((a) => a.address === vip4(9)));
  });
});
