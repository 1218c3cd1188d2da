import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveConfig } from '../../lib/core/config';
import { declarationDigest, declare, decodeDeclaration, encodeDeclaration, followersOf, NodeDeclaration } from '../../lib/core/declaration';
import { canonicalIp, parseCidr, cidrContains, parseIp } from '../../lib/core/ip';

const env = {
  hostname: 'mx1',
  interfaces: [
    {
      name: 'eth0',
      addresses: [
        { family: 4 as const, address: '192.168.0.10', prefix: 24 },
        { family: 6 as const, address: '2001:db8::10', prefix: 64 },
      ],
    },
  ],
};
const cluster = { id: 'mail', secret: 'a-secret-of-enough-bytes', bind: '192.168.0.10' };

function configured(listeners: string[]): NodeDeclaration {
  return declare(
    resolveConfig(
      {
        cluster,
        listeners: [...listeners, { address: '192.168.0.61:25', follow: 'acme' }],
        bindings: [{ name: 'acme', address: '192.168.0.51' }],
        vips: { '192.168.0.51': { preferred: 'mx2' } },
      },
      env,
    ),
  );
}

test('declare lists the managed IPs sorted by address with their services', () => {
  const d = configured(['[2001:db8::7]:25', '192.168.0.100:25', '192.168.0.9:587', '192.168.0.9:25']);
  assert.equal(d.node, 'mx1');
  assert.deepEqual(d.vips.map((v) => v.ip), ['192.168.0.9', '192.168.0.51', '192.168.0.61', '192.168.0.100', '2001:db8::7']);
  assert.deepEqual(d.vips[0], { ip: '192.168.0.9', family: 4, interface: 'eth0', prefix: 32, binding: null, ports: [25, 587], preferred: null, follows: null });
  assert.deepEqual(d.vips[1], { ip: '192.168.0.51', family: 4, interface: 'eth0', prefix: 32, binding: 'acme', ports: [], preferred: 'mx2', follows: null });
  assert.equal(d.vips[2]?.follows, '192.168.0.51');
  assert.deepEqual(followersOf(d, '192.168.0.51'), ['192.168.0.61']);
});

test('the same declaration gives the same bytes and digest whatever the config order', () => {
  const a = configured(['192.168.0.9:25', '192.168.0.9:587', '[2001:db8:0::7]:25']);
  const b = configured(['[2001:DB8::7]:25', '192.168.0.9:587', '192.168.0.9:25']);
  assert.deepEqual(encodeDeclaration(a), encodeDeclaration(b));
  assert.equal(declarationDigest(a).length, 32);
  assert.deepEqual(declarationDigest(a), declarationDigest(b));
  const c = configured(['192.168.0.9:25']);
  assert.notDeepEqual(declarationDigest(a), declarationDigest(c));
});

test('decode(encode(d)) gives d back', () => {
  const d = configured(['192.168.0.9:25', '[2001:db8::7]:25']);
  assert.deepEqual(decodeDeclaration(encodeDeclaration(d)), d);
  assert.deepEqual(decodeDeclaration(new Uint8Array(encodeDeclaration(d))), d);
});

test('decode refuses garbage and non-canonical input', () => {
  const good = JSON.parse(encodeDeclaration(configured(['192.168.0.9:25'])).toString()) as unknown[];
  const bad: Array<[string, unknown]> = [
    ['not JSON', 'not json'],
    ['unsupported version', [2, 'mx1', []]],
    ['node', [1, '', []]],
    ['7-element', [1, 'mx1', [['192.168.0.9']]]],
    ['canonical IP', [1, 'mx1', [['192.168.000.9', 'eth0', 32, null, [], null, null]]]],
    ['canonical IP', [1, 'mx1', [['2001:DB8::1', 'eth0', 128, null, [], null, null]]]],
    ['prefix', [1, 'mx1', [['192.168.0.9', 'eth0', 33, null, [], null, null]]]],
    ['port', [1, 'mx1', [['192.168.0.9', 'eth0', 32, null, [0], null, null]]]],
    ['sorted and unique', [1, 'mx1', [['192.168.0.9', 'eth0', 32, null, [25, 25], null, null]]]],
    ['sorted by address', [1, 'mx1', [['192.168.0.10', 'eth0', 32, null, [], null, null], ['192.168.0.9', 'eth0', 32, null, [], null, null]]]],
    ['listed twice', [1, 'mx1', [['192.168.0.9', 'eth0', 32, null, [], null, null], ['192.168.0.9', 'eth0', 32, null, [], null, null]]]],
    ['follows', [1, 'mx1', [['192.168.0.9', 'eth0', 32, null, [], null, '192.168.0.9']]]],
    ['binding', [1, 'mx1', [['192.168.0.9', 'eth0', 32, 7, [], null, null]]]],
  ];
  for (const [why, value] of bad) {
    const bytes = Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));
    assert.throws(() => decodeDeclaration(bytes), (e: Error & { code?: string }) => e.code === 'EDECLARATION' && e.message.includes(why), why);
  }
  const spaced = Buffer.from(JSON.stringify(good, null, 1));
  assert.throws(() => decodeDeclaration(spaced), /not in canonical form/);
});

test('IP parsing is strict and canonical', () => {
  assert.equal(canonicalIp('2001:0DB8:0000:0000:0000:0000:0000:0001'), '2001:db8::1');
  assert.equal(canonicalIp('2001:db8:0:1:0:0:0:1'), '2001:db8:0:1::1');
  assert.equal(canonicalIp('::ffff:192.0.2.1'), '::ffff:192.0.2.1');
  assert.equal(canonicalIp('::'), '::');
  assert.equal(canonicalIp('010.0.0.1'), null);
  assert.equal(canonicalIp('256.0.0.1'), null);
  assert.equal(canonicalIp('fe80::1%eth0'), null);
  assert.equal(canonicalIp('1.2.3'), null);
  const net = parseCidr('198.51.100.0/24');
  assert.ok(net && cidrContains(net, parseIp('198.51.100.200')!));
  assert.ok(net && !cidrContains(net, parseIp('198.51.101.1')!));
  assert.ok(net && !cidrContains(net, parseIp('2001:db8::1')!));
  const net6 = parseCidr('2001:db8::/33');
  assert.ok(net6 && cidrContains(net6, parseIp('2001:db8:7fff::1')!));
  assert.ok(net6 && !cidrContains(net6, parseIp('2001:db8:8000::1')!));
});

test('decode of random or corrupted bytes either throws EDECLARATION or returns a canonical declaration', async () => {
  const fc = (await import('fast-check')).default;
  const good = encodeDeclaration(configured(['192.168.0.9:25', '[2001:db8::7]:25']));
  const check = (bytes: Uint8Array) => {
    try {
      const d = decodeDeclaration(bytes);
      assert.deepEqual(encodeDeclaration(d), Buffer.from(bytes));
    } catch (error) {
      assert.equal((error as { code?: string }).code, 'EDECLARATION', String(error));
    }
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), check), { numRuns: 300 });
  fc.assert(
    fc.property(fc.nat(good.length - 1), fc.integer({ min: 32, max: 126 }), (at, byte) => {
      const copy = Buffer.from(good);
      copy[at] = byte;
      check(copy);
    }),
    { numRuns: 500 },
  );
});
