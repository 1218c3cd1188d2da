// Parsing of addresses and CIDRs given to lib/net (pure, no addon needed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseAddress, parseAddressList, parseCidr } from '../../lib/net/address';

test('parseCidr accepts IPv4 and IPv6 with a prefix', () => {
  assert.deepEqual(parseCidr('f', 'cidr', '198.51.100.7/32'), { family: 4, address: '198.51.100.7', prefix: 32 });
  assert.deepEqual(parseCidr('f', 'cidr', '2001:db8::7/128'), { family: 6, address: '2001:db8::7', prefix: 128 });
  assert.deepEqual(parseCidr('f', 'cidr', '0.0.0.0/0'), { family: 4, address: '0.0.0.0', prefix: 0 });
});

test('parseCidr refuses malformed input with a TypeError naming function, argument and value', () => {
  for (const bad of ['1.2.3', '1.2.3/32', '198.51.100.7', '198.51.100.7/', '198.51.100.7/x', '198.51.100.7/-1', '198.51.100.7/ 32', 'fe80::1%eth0/64', '', '/32']) {
    assert.throws(() => parseCidr('addAddress', 'cidr', bad), (error: Error) => {
      assert.equal(error.name, 'TypeError');
      assert.match(error.message, /^addAddress: cidr /);
      assert.ok(error.message.includes(JSON.stringify(bad)), error.message);
      assert.match(error.message, /e\.g\. 198\.51\.100\.7\/32/);
      return true;
    });
  }
  assert.throws(() => parseCidr('addAddress', 'cidr', 42), /addAddress: cidr must be a string/);
  assert.throws(() => parseCidr('addAddress', 'cidr', undefined), TypeError);
});

test('parseCidr refuses prefixes longer than the family allows with a RangeError', () => {
  assert.throws(() => parseCidr('addAddress', 'cidr', '198.51.100.7/33'), (error: Error) => error.name === 'RangeError' && /\/33.*\/32/.test(error.message));
  assert.throws(() => parseCidr('removeAddress', 'cidr', '2001:db8::7/129'), (error: Error) => error.name === 'RangeError' && /removeAddress/.test(error.message));
});

test('every IPv4 address with prefix 0..32 parses back to its parts; 33..999 is a RangeError', () => {
  const octet = fc.integer({ min: 0, max: 255 });
  fc.assert(
    fc.property(fc.tuple(octet, octet, octet, octet), fc.integer({ min: 0, max: 999 }), (parts, prefix) => {
      const address = parts.join('.');
      const text = `${address}/${prefix}`;
      if (prefix <= 32) assert.deepEqual(parseCidr('f', 'c', text), { family: 4, address, prefix });
      else assert.throws(() => parseCidr('f', 'c', text), RangeError);
    }),
  );
});

test('parseAddress takes plain addresses only', () => {
  assert.deepEqual(parseAddress('probe', 'address', '2001:db8::1'), { family: 6, address: '2001:db8::1' });
  assert.throws(() => parseAddress('probe', 'address', '198.51.100.7/32'), /probe: address "198\.51\.100\.7\/32" is not an IPv4 or IPv6 address/);
  assert.throws(() => parseAddress('probe', 'address', null), /probe: address must be a string IP address, got null/);
});

test('parseAddressList names the offending element and enforces the maximum', () => {
  assert.throws(() => parseAddressList('announce', 'addresses', ['198.51.100.1', 'nope'], 10), /announce: addresses\[1\] "nope"/);
  assert.throws(() => parseAddressList('announce', 'addresses', '198.51.100.1', 10), /must be an array/);
  assert.throws(() => parseAddressList('announce', 'addresses', ['198.51.100.1', '198.51.100.2'], 1), RangeError);
  assert.deepEqual(parseAddressList('announce', 'addresses', [], 1), []);
});
