import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HealthBook } from '../../lib/runtime/health';
import { assertNetworkPrivileges, missingCapabilities } from '../../lib/runtime/privileges';

const vips = [
  { ip: '198.18.1.1', interface: 'eth0' },
  { ip: '198.18.1.2', interface: 'eth0' },
  { ip: '198.18.1.3', interface: 'eth1' },
];

test('a failed VIP is unhealthy until its retry time, then forgotten', () => {
  const book = new HealthBook();
  book.fail('198.18.1.1', 'listen-failed', 'EADDRINUSE', 1000);
  assert.deepEqual([...book.unhealthy(vips)], ['198.18.1.1']);
  assert.equal(book.nextRetry(), 1000);
  assert.equal(book.expire(999), false);
  assert.equal(book.expire(1000), true);
  assert.deepEqual([...book.unhealthy(vips)], []);
  assert.equal(book.nextRetry(), null);
});

test('a down link makes every VIP on it unhealthy, and only those', () => {
  const book = new HealthBook();
  assert.equal(book.setLink('eth0', false), true);
  assert.equal(book.setLink('eth0', false), false, 'no change reported twice');
  assert.deepEqual([...book.unhealthy(vips)].sort(), ['198.18.1.1', '198.18.1.2']);
  assert.equal(book.problem('198.18.1.2', 'eth0')?.reason, 'link-down');
  assert.equal(book.problem('198.18.1.3', 'eth1'), undefined);
  assert.equal(book.setLink('eth0', true), true);
  assert.deepEqual([...book.unhealthy(vips)], []);
});

test('a shutdown mark never expires and sets no retry timer', () => {
  const book = new HealthBook();
  book.fail('198.18.1.3', 'shutdown', 'cluster.close()', Infinity);
  assert.equal(book.nextRetry(), null);
  assert.equal(book.expire(Number.MAX_SAFE_INTEGER), false);
  assert.deepEqual([...book.unhealthy(vips)], ['198.18.1.3']);
});

test('hold marks a VIP until cleared, says whether it changed, and clear only lifts its own reason', () => {
  const book = new HealthBook();
  assert.equal(book.hold('198.18.1.1', 'not-ready', 'no listener'), true);
  assert.equal(book.hold('198.18.1.1', 'not-ready', 'no listener'), false, 'already held');
  assert.equal(book.expire(Number.MAX_SAFE_INTEGER), false, 'never expires on its own');
  assert.equal(book.clear('198.18.1.1', 'listen-failed'), false, 'another reason is not cleared');
  assert.deepEqual([...book.unhealthy(vips)], ['198.18.1.1']);
  assert.equal(book.clear('198.18.1.1', 'not-ready'), true);
  assert.deepEqual([...book.unhealthy(vips)], []);
});

test('problems of different reasons live side by side: setReady(true) keeps a failure\'s back-off, a failure\'s retry keeps not-ready', () => {
  const book = new HealthBook();
  // A listen failure backing off, then the MTA says it is not ready, then ready again.
  book.fail('198.18.1.1', 'listen-failed', 'EADDRINUSE', 5000);
  assert.equal(book.hold('198.18.1.1', 'not-ready', 'workers restarting'), true);
  assert.deepEqual(book.problem('198.18.1.1', 'eth0'), { reason: 'not-ready', detail: 'workers restarting', retryAt: Infinity, also: ['listen-failed'] });
  assert.equal(book.clear('198.18.1.1', 'not-ready'), true);
  assert.deepEqual([...book.unhealthy(vips)], ['198.18.1.1'], 'the back-off still holds');
  assert.equal(book.nextRetry(), 5000);
  assert.equal(book.expire(5000), true);
  assert.deepEqual([...book.unhealthy(vips)], []);
  // Not ready first, then a failure whose retry comes: still not ready.
  book.hold('198.18.1.2', 'not-ready', 'no listener');
  book.fail('198.18.1.2', 'address-failed', 'EPERM', 100);
  assert.equal(book.expire(100), true);
  assert.deepEqual([...book.unhealthy(vips)], ['198.18.1.2']);
  assert.equal(book.problem('198.18.1.2', 'eth0')?.reason, 'not-ready');
  // A down link is shown first, with the VIP's own problems after it.
  book.setLink('eth0', false);
  assert.deepEqual(book.problem('198.18.1.2', 'eth0'), { reason: 'link-down', detail: 'link eth0 is down', retryAt: null, also: ['not-ready'] });
});

test('a process without CAP_NET_ADMIN or CAP_NET_RAW is refused with EPERM naming both and how to grant them', () => {
  const full = 'Name:\tnode\nCapEff:\t000001ffffffffff\n';
  const none = 'Name:\tnode\nCapEff:\t0000000000000000\n';
  const rawOnly = `CapEff:\t${(1n << 13n).toString(16).padStart(16, '0')}\n`;
  assert.deepEqual(missingCapabilities(full), []);
  assert.deepEqual(missingCapabilities(rawOnly), ['CAP_NET_ADMIN']);
  assert.doesNotThrow(() => assertNetworkPrivileges(full));
  assert.throws(() => assertNetworkPrivileges(none), (error: NodeJS.ErrnoException) => {
    assert.equal(error.code, 'EPERM');
    assert.match(error.message, /needs CAP_NET_ADMIN and CAP_NET_RAW \(EPERM\)/);
    assert.match(error.message, /AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW/);
    return true;
  });
});
