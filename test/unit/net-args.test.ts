// lib/net with the real addon, unprivileged: argument checks with clear
// messages, ENODEV for unknown interfaces, interfaces() on loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from '../../lib/net';

// Without a built addon these cannot run; on CI that is a failure, not a skip.
const skip = net.capability.loaded || process.env.CI === 'true' ? false : `native addon not built (${net.capability.error})`;

test('interfaces() lists lo with 127.0.0.1/8, up, with the documented shape', { skip }, () => {
  const list = net.interfaces();
  const lo = list.find((link) => link.name === 'lo');
  assert.ok(lo, `no lo in ${JSON.stringify(list.map((link) => link.name))}`);
  assert.equal(lo.up, true);
  assert.equal(lo.mac, '00:00:00:00:00:00');
  assert.ok(lo.index > 0 && lo.mtu > 0);
  assert.ok(lo.addresses.some((a) => a.family === 4 && a.address === '127.0.0.1' && a.prefix === 8), JSON.stringify(lo.addresses));
  for (const link of list) assert.match(link.mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
});

test('an unknown interface is ENODEV listing the interfaces that exist', { skip }, async () => {
  const names = net.interfaces().map((link) => link.name);
  const calls: Array<[string, () => Promise<unknown>]> = [
    ['addAddress', () => net.addAddress('mvnope0', '198.51.100.7/32')],
    ['removeAddress', () => net.removeAddress('mvnope0', '198.51.100.7/32')],
    ['announce', () => net.announce('mvnope0', ['198.51.100.7'])],
    ['arpAllHosts', () => net.arpAllHosts('mvnope0', '198.51.100.7')],
    ['probe', () => net.probe('mvnope0', '198.51.100.7')],
    ['probeMany', () => net.probeMany('mvnope0', ['198.51.100.7', '2001:db8::7'])],
    ['neighbours', () => net.neighbours('mvnope0')],
    ['sniff', async () => net.sniff('mvnope0', [], () => undefined)],
  ];
  for (const [fn, call] of calls) {
    await assert.rejects(call(), (error: NodeJS.ErrnoException) => {
      assert.equal(error.code, 'ENODEV', fn);
      assert.equal(error.message, `${fn}: interface mvnope0 does not exist; interfaces here: ${names.join(', ')}`);
      return true;
    });
  }
});

test('bad options are TypeError/RangeError naming the option', { skip }, async () => {
  await assert.rejects(net.announce('lo', ['127.0.0.1'], { count: 0 }), /RangeError: announce: options\.count must be between 1 and 100, got 0/);
  await assert.rejects(net.announce('lo', ['127.0.0.1'], { count: 1.5 }), /TypeError: announce: options\.count must be an integer/);
  await assert.rejects(net.announce('lo', ['127.0.0.1'], { intervalMs: 10_001 }), RangeError);
  await assert.rejects(net.announce('lo', ['127.0.0.1'], { mode: 'loud' as 'both' }), /announce: options\.mode must be 'request', 'reply' or 'both'/);
  await assert.rejects(net.probe('lo', '127.0.0.1', { timeoutMs: 60_001 }), RangeError);
  await assert.rejects(net.arpAllHosts('lo', '127.0.0.1', { extra: [{ address: '2001:db8::1', mac: '02:00:00:00:00:01' }] }), /is IPv6, but address 127\.0\.0\.1 is IPv4/);
  await assert.rejects(net.arpAllHosts('lo', '127.0.0.1', { extra: [{ address: '127.0.0.2', mac: '02:00:00:00:00' }] }), /arpAllHosts: options\.extra\[0\]\.mac "02:00:00:00:00" is not a MAC like aa:bb:cc:dd:ee:ff/);
  await assert.rejects(net.addAddress('lo/x', '127.0.0.2/32'), /TypeError: addAddress: ifname "lo\/x" is not a valid interface name/);
  assert.throws(() => net.sniff('lo', ['127.0.0.1'], 'nope' as unknown as () => void), /sniff: onClaim must be a function/);
  assert.throws(() => net.watch(undefined as unknown as () => void), /watch: onEvent must be a function/);
});

test('probeMany refuses bad arguments before any syscall, naming the argument', { skip }, async () => {
  await assert.rejects(net.probeMany('lo', '127.0.0.1' as unknown as string[]), /TypeError: probeMany: addresses must be an array of IP address strings, got "127\.0\.0\.1"/);
  await assert.rejects(net.probeMany('lo', ['127.0.0.1', '2001:db8::1', '127.0.0']), /TypeError: probeMany: addresses\[2\] "127\.0\.0" is not an IPv4 or IPv6 address/);
  await assert.rejects(net.probeMany('lo', ['127.0.0.1', 7 as unknown as string]), /TypeError: probeMany: addresses\[1\] must be a string IP address, got number/);
  const tooMany = Array.from({ length: net.MAX_ADDRESSES + 1 }, () => '127.0.0.1');
  await assert.rejects(net.probeMany('lo', tooMany), new RegExp(`RangeError: probeMany: addresses has ${net.MAX_ADDRESSES + 1} addresses, at most ${net.MAX_ADDRESSES} per call`));
  await assert.rejects(net.probeMany('lo', ['127.0.0.1'], { timeoutMs: 60_001 }), /RangeError: probeMany: options\.timeoutMs must be between 0 and 60000, got 60001/);
  await assert.rejects(net.probeMany('lo', ['127.0.0.1'], { timeoutMs: 2.5 }), /TypeError: probeMany: options\.timeoutMs must be an integer, got 2\.5/);
  await assert.rejects(net.probeMany('lo', ['127.0.0.1'], 10 as unknown as { timeoutMs: number }), /TypeError: probeMany: options must be an object, got number/);
  await assert.rejects(net.probeMany('', ['127.0.0.1']), /TypeError: probeMany: ifname must be a non-empty interface name/);
});

test('probeMany with no addresses resolves to an empty map', { skip }, async () => {
  assert.deepEqual(await net.probeMany('lo', []), new Map());
});

test('neighbours() on lo resolves with an array of well-formed entries', { skip }, async () => {
  const entries = await net.neighbours('lo');
  for (const entry of entries) {
    assert.equal(typeof entry.address, 'string');
    assert.ok(entry.mac === null || /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(entry.mac));
    assert.match(entry.state, /^[A-Z]+$/);
  }
});
