// The runtime's API surface before start(): config refusal, and listen()
// checking itself against the config. Nothing here needs privileges (the
// addon's interfaces() only reads), and nothing is started.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, createCluster } from '../../lib';

const base = {
  node: 'n1',
  cluster: { id: 'unit', secret: 'sixteen bytes at least!', bind: '127.0.0.1' },
  listeners: ['127.0.0.50:2525', { address: '127.0.0.52:2525', follow: 'acme' }],
  bindings: [{ name: 'acme', address: '127.0.0.51' }],
  topology: [{ cidr: '127.0.0.0/8', interface: 'lo' }],
};

test('a bad config refuses to start, listing every problem with its path', () => {
  assert.throws(
    () => createCluster({ ...base, cluster: { ...base.cluster, secret: 'short' }, bindings: [{ name: 'acme', address: '1.2.3' }] }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      const paths = error.problems.map((p) => p.path);
      assert.ok(paths.includes('cluster.secret'), paths.join());
      assert.ok(paths.some((p) => p.startsWith('bindings[0]')), paths.join());
      assert.match(error.message, /bindings\[0\]\.address/);
      return true;
    },
  );
});

test('listen() on a managed VIP needs the listener declared in the config', () => {
  const cluster = createCluster(base, { relay: { enabled: false } });
  assert.throws(() => cluster.listen('127.0.0.50:2526', {}), /config's listeners do not declare it: add '127\.0\.0\.50:2526' to listeners/);
  const listener = cluster.listen('127.0.0.50:2525', {});
  assert.equal(listener.ip, '127.0.0.50');
  assert.equal(listener.port, 2525);
});

test('listen() with follow must match the config\'s follower declaration', () => {
  const cluster = createCluster(base, { relay: { enabled: false } });
  assert.throws(() => cluster.listen('127.0.0.50:2525', {}, { follow: 'acme' }), /must match the config/);
  assert.doesNotThrow(() => cluster.listen('127.0.0.52:2525', {}, { follow: 'acme' }));
});

test('listen() on an address that is not a VIP is a plain listener; bad addresses are refused', () => {
  const cluster = createCluster(base, { relay: { enabled: false } });
  assert.doesNotThrow(() => cluster.listen('127.0.0.1:2525', {}));
  assert.throws(() => cluster.listen('127.0.0.1', {}), TypeError);
});

test('bindings are unknown to the directory until the cluster has seen a live declaration of them', () => {
  const cluster = createCluster(base, { relay: { enabled: false } });
  // Our own declaration counts: the binding is known, held by nobody yet.
  assert.deepEqual(
    { ...cluster.binding('acme'), epoch: 0 },
    { name: 'acme', address: '127.0.0.51', holder: null, local: false, state: 'unowned', epoch: 0, weight: 1 },
  );
  assert.equal(cluster.binding('nope'), undefined);
  assert.throws(() => cluster.transport('nope'), /nope/);
});
