import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, HostEnvironment, resolveConfig, validateConfig } from '../../lib/core/config';

const env: HostEnvironment = {
  hostname: 'mx1',
  interfaces: [
    { name: 'lo', addresses: [{ family: 4, address: '127.0.0.1', prefix: 8 }] },
    {
      name: 'eth0',
      addresses: [
        { family: 4, address: '192.168.0.10', prefix: 24 },
        { family: 6, address: '2001:db8::10', prefix: 64 },
      ],
    },
    { name: 'eth1', addresses: [{ family: 4, address: '198.18.0.10', prefix: 24 }] },
  ],
};

const cluster = { id: 'mail', secret: 'a-secret-of-enough-bytes', bind: '192.168.0.10' };

function problemsOf(input: unknown): Array<{ path: string; message: string }> {
  return validateConfig(input, env).problems;
}

function hasProblem(problems: Array<{ path: string; message: string }>, path: string, pattern: RegExp): void {
  assert.ok(
    problems.some((p) => p.path === path && pattern.test(p.message)),
    `expected a problem at ${path} matching ${pattern}; got:\n${problems.map((p) => `${p.path}: ${p.message}`).join('\n')}`,
  );
}

test('a minimal config resolves with the documented defaults', () => {
  const config = resolveConfig({ cluster, listeners: ['192.168.0.51:25'] }, env);
  assert.equal(config.node, 'mx1');
  assert.equal(config.cluster.port, 7946);
  assert.deepEqual(config.cluster.peers, []);
  assert.equal(config.cluster.multicast, null);
  assert.equal(config.cluster.secret.toString(), cluster.secret);
  assert.deepEqual(config.timers, { heartbeatMs: 50, deadAfterMs: 200, holdDownMs: 2000 });
  assert.equal(config.quorum, false);
  assert.equal(config.rebalance, 'never');
  assert.deepEqual(config.announce, { count: 3, intervalMs: 100, mode: 'request', arpAllHosts: false, reannounceMs: 0 });
  assert.deepEqual(config.vips, [
    { ip: '192.168.0.51', family: 4, interface: 'eth0', interfaceSource: 'subnet', prefix: 32, preferred: null, binding: null, ports: [25], follows: null },
  ]);
  assert.deepEqual(config.listeners, [{ address: '192.168.0.51:25', ip: '192.168.0.51', family: 4, port: 25, failover: true, follows: null }]);
});

test('dead-after defaults to four heartbeats', () => {
  const config = resolveConfig({ cluster, timers: { heartbeatMs: 100 } }, env);
  assert.equal(config.timers.deadAfterMs, 400);
});

test("the seed's node1: a listener and a binding on one IP make one VIP with both services", () => {
  const config = resolveConfig(
    {
      node: 'node1',
      cluster,
      listeners: [{ address: '192.168.0.51:25', failover: true }, '192.168.0.51:587'],
      bindings: [{ name: 'example', address: '192.168.0.51', failover: true }],
    },
    env,
  );
  assert.equal(config.vips.length, 1);
  assert.equal(config.vips[0]?.binding, 'example');
  assert.deepEqual(config.vips[0]?.ports, [25, 587]);
});

test('auto-upgrade: one failover service on an IP makes every service on it managed', () => {
  const config = resolveConfig(
    {
      cluster,
      listeners: [{ address: '192.168.0.51:25', failover: false }, { address: '192.168.0.60:25', failover: false }],
      bindings: [{ name: 'acme', address: '192.168.0.51', failover: true }],
    },
    env,
  );
  assert.deepEqual(config.vips.map((v) => v.ip), ['192.168.0.51']);
  assert.equal(config.listeners.find((l) => l.ip === '192.168.0.51')?.failover, true);
  assert.equal(config.listeners.find((l) => l.ip === '192.168.0.60')?.failover, false);
});

test('validation collects every problem with its path and the fix', () => {
  const problems = problemsOf({
    cluster: { id: 'mail', secret: 'short', bind: '192.168.0.10', prefers: 1 },
    listeners: ['192.168.0.51', 'nonsense:25', '2001:db8::7:25', { address: '192.168.0.52:99999' }],
    bindings: [
      { name: 'acme', address: '192.168.0.51' },
      { name: 'acme', address: '192.168.0.53' },
      { name: 'beta', address: '1.2.3' },
      { name: 'gamma', address: '192.168.0.51' },
      { name: 'remote', address: '203.0.113.9' },
    ],
    vips: {
      '192.168.0.51': { preferred: '' },
      '192.168.0.70': { preferred: 'mx2' },
      'not-an-ip': {},
    },
    timers: { heartbeatMs: 100, deadAfterMs: 150 },
    rebalance: 'sometimes',
  });
  hasProblem(problems, 'cluster.secret', /too short; use at least 16/);
  hasProblem(problems, 'cluster.prefers', /unknown setting/);
  hasProblem(problems, 'listeners[0]', /has no port/);
  hasProblem(problems, 'listeners[1]', /"nonsense" is not an IP address/);
  hasProblem(problems, 'listeners[2]', /ambiguous; write an IPv6 address with a port as "\[ipv6\]:port"/);
  hasProblem(problems, 'listeners[3].address', /"99999" is not a port/);
  hasProblem(problems, 'bindings[1].name', /"acme" is already used at bindings\[0\]; binding names must be unique/);
  hasProblem(problems, 'bindings[2].address', /^"1.2.3" is not an IP address/);
  hasProblem(problems, 'bindings[3].address', /192.168.0.51 is already the address of binding "acme"/);
  hasProblem(problems, 'bindings[4].address', /203.0.113.9: no interface can carry it; add vips\['203.0.113.9'\].interface or a topology entry/);
  hasProblem(problems, "vips['192.168.0.51'].preferred", /empty string/);
  hasProblem(problems, "vips['192.168.0.70']", /no listener or binding on this node uses 192.168.0.70/);
  hasProblem(problems, "vips['not-an-ip']", /is not an IP address/);
  hasProblem(problems, 'timers.deadAfterMs', /less than two heartbeats/);
  hasProblem(problems, 'rebalance', /"never" or "on-join"/);
  assert.equal(validateConfig({}, env).config, undefined);
});

test('resolveConfig throws a ConfigError listing every problem, one per line', () => {
  assert.throws(
    () => resolveConfig({ cluster, bindings: [{ name: 'a', address: 'x' }, { name: 'a', address: 'y' }] }, env),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.code, 'ECONFIG');
      // Every problem, the duplicate name too, though neither address is valid.
      assert.equal(error.problems.length, 3);
      const lines = error.message.split('\n');
      assert.match(lines[0] as string, /3 problems/);
      assert.match(lines[1] as string, /bindings\[0\]\.address: "x" is not an IP address/);
      assert.match(lines[2] as string, /bindings\[1\]\.address: "y" is not an IP address/);
      assert.match(lines[3] as string, /bindings\[1\]\.name: binding name "a" is already used at bindings\[0\]/);
      return true;
    },
  );
});

test('a preference is a node name, never a boolean', () => {
  const problems = problemsOf({ cluster, listeners: ['192.168.0.51:25'], vips: { '192.168.0.51': { preferred: true } } });
  hasProblem(problems, "vips['192.168.0.51'].preferred", /names the preferred node .* never true\/false/);
});

test('the interface comes from vips, then topology, then the subnet of a host address', () => {
  const config = resolveConfig(
    {
      cluster,
      listeners: ['192.168.0.51:25', '192.168.0.52:25', '203.0.113.5:25', '[2001:DB8:0:0::7]:25'],
      vips: { '192.168.0.51': { interface: 'eth1', prefix: 24 } },
      topology: [{ cidr: '203.0.113.0/24', interface: 'eth1', prefix: 28 }],
    },
    env,
  );
  const byIp = new Map(config.vips.map((v) => [v.ip, v]));
  assert.deepEqual([byIp.get('192.168.0.51')?.interface, byIp.get('192.168.0.51')?.interfaceSource, byIp.get('192.168.0.51')?.prefix], ['eth1', 'vips', 24]);
  assert.deepEqual([byIp.get('192.168.0.52')?.interface, byIp.get('192.168.0.52')?.interfaceSource, byIp.get('192.168.0.52')?.prefix], ['eth0', 'subnet', 32]);
  assert.deepEqual([byIp.get('203.0.113.5')?.interface, byIp.get('203.0.113.5')?.interfaceSource, byIp.get('203.0.113.5')?.prefix], ['eth1', 'topology', 28]);
  assert.deepEqual([byIp.get('2001:db8::7')?.interface, byIp.get('2001:db8::7')?.prefix], ['eth0', 128]);
  // Sorted by address: IPv4 numerically, then IPv6.
  assert.deepEqual(config.vips.map((v) => v.ip), ['192.168.0.51', '192.168.0.52', '203.0.113.5', '2001:db8::7']);
  assert.equal(config.listeners[3]?.address, '[2001:db8::7]:25');
});

test('an interface that does not exist is a problem', () => {
  const problems = problemsOf({ cluster, listeners: ['192.168.0.51:25'], vips: { '192.168.0.51': { interface: 'eth9' } } });
  hasProblem(problems, "vips['192.168.0.51'].interface", /"eth9" does not exist on this host \(have: lo, eth0, eth1\)/);
});

test("a VIP is never the host's own address, but a leftover /32 alias of it is accepted", () => {
  hasProblem(problemsOf({ cluster, listeners: ['192.168.0.10:25'] }), 'listeners[0]', /is the host's own address on eth0 \(\/24\)/);
  const leftover: HostEnvironment = {
    hostname: 'mx1',
    interfaces: [{ name: 'eth0', addresses: [{ family: 4, address: '192.168.0.10', prefix: 24 }, { family: 4, address: '192.168.0.51', prefix: 32 }] }],
  };
  assert.equal(validateConfig({ cluster, listeners: ['192.168.0.51:25'] }, leftover).problems.length, 0);
});

test('cluster.bind must be an address of this host and not a VIP', () => {
  hasProblem(problemsOf({ cluster: { ...cluster, bind: '192.168.0.99' } }), 'cluster.bind', /not an address of this host/);
});

test('peers take the cluster port by default; multicast must be a group', () => {
  const config = resolveConfig({ cluster: { ...cluster, port: 8000, peers: ['192.168.0.11', '192.168.0.12:9000', '[2001:db8::11]:9001', '2001:db8::12'] } }, env);
  assert.deepEqual(config.cluster.peers, [
    { ip: '192.168.0.11', port: 8000 },
    { ip: '192.168.0.12', port: 9000 },
    { ip: '2001:db8::11', port: 9001 },
    { ip: '2001:db8::12', port: 8000 },
  ]);
  hasProblem(problemsOf({ cluster: { ...cluster, multicast: '192.168.0.1' } }), 'cluster.multicast', /not a multicast group/);
});

test('a listener follows a binding by name or IP; the follower moves with its leader', () => {
  const config = resolveConfig(
    {
      cluster,
      listeners: [{ address: '192.168.0.61:25', follow: 'acme' }, { address: '192.168.0.62:25', follow: '192.168.0.51' }, '192.168.0.61:587'],
      bindings: [{ name: 'acme', address: '192.168.0.51' }],
    },
    env,
  );
  const byIp = new Map(config.vips.map((v) => [v.ip, v]));
  assert.equal(byIp.get('192.168.0.61')?.follows, '192.168.0.51');
  assert.deepEqual(byIp.get('192.168.0.61')?.ports, [25, 587]);
  assert.equal(byIp.get('192.168.0.62')?.follows, '192.168.0.51');
  assert.equal(byIp.get('192.168.0.51')?.follows, null);
  assert.ok(config.listeners.every((l) => l.follows === '192.168.0.51'));
});

test('follower mistakes are config errors', () => {
  const problems = problemsOf({
    cluster,
    listeners: [
      { address: '192.168.0.61:25', follow: 'acme' },
      { address: '192.168.0.62:25', follow: 'nobody' },
      { address: '192.168.0.63:25', follow: 'acme' },
      { address: '192.168.0.63:26', follow: 'beta' },
      { address: '192.168.0.64:25', follow: 'acme', failover: false },
    ],
    bindings: [
      { name: 'acme', address: '192.168.0.51' },
      { name: 'beta', address: '192.168.0.52' },
      { name: 'gamma', address: '192.168.0.64' },
    ],
    vips: { '192.168.0.61': { preferred: 'mx1' } },
  });
  hasProblem(problems, "vips['192.168.0.61'].preferred", /cannot have its own preferred node/);
  hasProblem(problems, 'listeners[1].follow', /no binding named "nobody"/);
  hasProblem(problems, 'listeners[3].follow', /already follows "acme"/);
  hasProblem(problems, 'listeners[4].failover', /moves with it; remove failover: false/);
  hasProblem(problems, 'listeners[4].follow', /carries binding "gamma"; a follower IP carries only listeners/);
});

test('non-objects and missing sections are reported, not thrown', () => {
  hasProblem(problemsOf(null), '', /expected a config object/);
  hasProblem(problemsOf({}), 'cluster', /missing/);
  hasProblem(problemsOf({ cluster, listeners: 'x', bindings: {}, topology: 3 }), 'listeners', /expected an array/);
  hasProblem(problemsOf({ cluster, topology: [{ cidr: '10.0.0.0/33', interface: 'eth0' }] }), 'topology[0].cidr', /not a CIDR range/);
  hasProblem(problemsOf({ cluster, node: 'has space' }), 'node', /not a valid node name/);
});

test('a binding with a bad address still claims its name: the duplicate is reported in the same pass', () => {
  const result = validateConfig(
    {
      node: 'n1',
      cluster: { id: 'c', secret: 'sixteen bytes at least!', bind: '198.18.0.10' },
      bindings: [
        { name: 'acme', address: 'not-an-ip' },
        { name: 'acme', address: '198.18.9.53' },
      ],
    },
    { hostname: 'n1', interfaces: [{ name: 'eth0', addresses: [{ family: 4, address: '198.18.0.10', prefix: 16 }] }] },
  );
  const paths = result.problems.map((p) => p.path);
  assert.ok(paths.includes('bindings[0].address'), paths.join());
  assert.ok(paths.includes('bindings[1].name'), paths.join());
});

test('cluster.secretFile: the secret from a file readable by its owner only; a file others can read, a missing or short one, or both secret and secretFile are refused', async () => {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const { readSecretFile } = await import('../../lib/runtime/secret-file');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mta-vip-secret-'));
  try {
    const file = path.join(dir, 'secret');
    fs.writeFileSync(file, 'a-secret-of-enough-bytes\n', { mode: 0o600 });
    fs.chmodSync(file, 0o600);
    const withFile = { hostname: env.hostname, interfaces: env.interfaces, readSecretFile };
    const { secret: _inline, ...fromFile } = cluster;
    const config = resolveConfig({ node: 'mx1', cluster: { ...fromFile, secretFile: file } }, withFile);
    assert.equal(config.cluster.secret.toString(), 'a-secret-of-enough-bytes', 'read, trailing newline dropped');
    fs.chmodSync(file, 0o644);
    hasProblem(validateConfig({ node: 'mx1', cluster: { ...fromFile, secretFile: file } }, withFile).problems, 'cluster.secretFile', /has mode 644: others can read the secret; chmod 600/);
    hasProblem(validateConfig({ node: 'mx1', cluster: { ...fromFile, secretFile: path.join(dir, 'none') } }, withFile).problems, 'cluster.secretFile', /ENOENT/);
    fs.writeFileSync(path.join(dir, 'short'), 'short', { mode: 0o600 });
    hasProblem(validateConfig({ node: 'mx1', cluster: { ...fromFile, secretFile: path.join(dir, 'short') } }, withFile).problems, 'cluster.secretFile', /holds 5 bytes; use at least 16/);
    hasProblem(validateConfig({ node: 'mx1', cluster: { ...cluster, secretFile: file } }, withFile).problems, 'cluster.secretFile', /either secret or secretFile, not both/);
    // The pure validation without a reader says how to validate it.
    hasProblem(problemsOf({ node: 'mx1', cluster: { ...fromFile, secretFile: file } }), 'cluster.secretFile', /cannot read files/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
