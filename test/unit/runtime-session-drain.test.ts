import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TcpSocket } from '../../lib/net';
import { busySessions, drainSessions, sessionKey, type SessionDrainPorts } from '../../lib/runtime/session-drain';

const VIP = '198.18.1.7';

function socket(overrides: Partial<TcpSocket>): TcpSocket {
  return { local: VIP, localPort: 40000, remote: '198.18.0.9', remotePort: 25, state: 'ESTABLISHED', owned: true, sendQueue: 0, lastSentMsAgo: 5000, lastReceivedMsAgo: 5000, ...overrides };
}

const ports25 = new Set([25]);

test('outbound: waiting for the peer is busy, an idle pooled connection and an orphan are not', () => {
  const afterDot = socket({ lastSentMsAgo: 3, lastReceivedMsAgo: 400 });
  const slowReply = socket({ remotePort: 26, lastSentMsAgo: 20_000, lastReceivedMsAgo: 25_000 });
  const unacked = socket({ remotePort: 27, sendQueue: 120, lastSentMsAgo: 10, lastReceivedMsAgo: 5 });
  const talking = socket({ remotePort: 28, lastSentMsAgo: 900, lastReceivedMsAgo: 200 });
  const pooled = socket({ remotePort: 29, lastSentMsAgo: 4000, lastReceivedMsAgo: 3000 });
  const orphan = socket({ remotePort: 30, owned: false, sendQueue: 500, state: 'FIN_WAIT1', lastSentMsAgo: 1, lastReceivedMsAgo: 9000 });
  const unknown = socket({ remotePort: 31, lastSentMsAgo: -1, lastReceivedMsAgo: -1 });
  // Sent and received in one jiffy: a reply at once, or a command at once after one.
  const sameTickRecent = socket({ remotePort: 32, lastSentMsAgo: 3000, lastReceivedMsAgo: 3000 });
  const sameTickOld = socket({ remotePort: 33, lastSentMsAgo: 6000, lastReceivedMsAgo: 6000 });
  const busy = busySessions([afterDot, slowReply, unacked, talking, pooled, orphan, unknown, sameTickRecent, sameTickOld], ports25, new Set(), 1000);
  assert.deepEqual(busy.map((s) => s.remotePort), [25, 26, 27, 28, 31, 32]);
});

test('inbound: only sessions present when the drain began are waited for; listeners never', () => {
  const old = socket({ localPort: 25, remotePort: 51000 });
  const fresh = socket({ localPort: 25, remotePort: 51001 });
  const closedWithReplyInFlight = socket({ localPort: 25, remotePort: 51002, owned: false, sendQueue: 40, state: 'FIN_WAIT1' });
  const closedDone = socket({ localPort: 25, remotePort: 51003, owned: false, sendQueue: 0, state: 'FIN_WAIT2' });
  const listener = socket({ localPort: 25, remote: '0.0.0.0', remotePort: 0, state: 'LISTEN' });
  const present = new Set([old, closedWithReplyInFlight, closedDone, listener].map(sessionKey));
  const busy = busySessions([old, fresh, closedWithReplyInFlight, closedDone, listener], ports25, present, 1000);
  assert.deepEqual(busy.map((s) => s.remotePort), [51000, 51002]);
});

/** A fake kernel: a script of socket tables over (fake) time. */
function fakeKernel(tables: Array<{ at: number; sockets: TcpSocket[] }>): SessionDrainPorts & { destroyedAt: number | null; clock: number } {
  const kernel = {
    clock: 0,
    destroyedAt: null as number | null,
    now: () => kernel.clock,
    sleep: async (ms: number) => {
      kernel.clock += ms;
    },
    tcpSockets: async () => [...tables].reverse().find((t) => t.at <= kernel.clock)?.sockets ?? [],
    destroyTcpSockets: async () => {
      kernel.destroyedAt = kernel.clock;
      const left = [...tables].reverse().find((t) => t.at <= kernel.clock)?.sockets ?? [];
      return { destroyed: left.length, gone: 0, failed: 0, byAddress: {}, lastError: null };
    },
  };
  return kernel;
}

test('a drain ends as soon as the busy sessions do, and resets what is left', async () => {
  const delivery = socket({ lastSentMsAgo: 1, lastReceivedMsAgo: 50 });
  const pooled = socket({ remotePort: 99, lastSentMsAgo: 9000, lastReceivedMsAgo: 8000 });
  const kernel = fakeKernel([
    { at: 0, sockets: [delivery, pooled] },
    { at: 300, sockets: [pooled] },
  ]);
  const result = await drainSessions(kernel, VIP, { listenerPorts: [], deadlineMs: 30_000, pollMs: 25 });
  assert.equal(kernel.destroyedAt, 300, 'reset right after the delivery ended, not at the deadline');
  assert.deepEqual(result, { waitedMs: 300, drained: 1, reset: 1, timedOut: false });
});

test('a drain stops at its deadline and resets the sessions still busy', async () => {
  const stuck = socket({ lastSentMsAgo: 1, lastReceivedMsAgo: 50 });
  const kernel = fakeKernel([{ at: 0, sockets: [stuck] }]);
  const result = await drainSessions(kernel, VIP, { listenerPorts: [], deadlineMs: 1000, pollMs: 25 });
  assert.equal(kernel.destroyedAt, 1000);
  assert.deepEqual(result, { waitedMs: 1000, drained: 0, reset: 1, timedOut: true });
});

test('a drain cut short (another node holds the VIP now) ends at the next poll and resets the sessions still busy', async () => {
  const stuck = socket({ lastSentMsAgo: 1, lastReceivedMsAgo: 50 });
  const kernel = fakeKernel([{ at: 0, sockets: [stuck] }]);
  const result = await drainSessions(kernel, VIP, { listenerPorts: [], deadlineMs: 30_000, pollMs: 25, cutShort: () => kernel.clock >= 100 });
  assert.equal(kernel.destroyedAt, 100);
  assert.deepEqual(result, { waitedMs: 100, drained: 0, reset: 1, timedOut: true });
});

test('with nothing busy the drain resets at once (deadline 0 too)', async () => {
  const kernel = fakeKernel([{ at: 0, sockets: [socket({ owned: false })] }]);
  const result = await drainSessions(kernel, VIP, { listenerPorts: [25], deadlineMs: 0 });
  assert.deepEqual(result, { waitedMs: 0, drained: 0, reset: 1, timedOut: false });
});
