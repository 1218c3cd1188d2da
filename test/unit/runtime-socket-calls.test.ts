import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DestroyResult, TcpSocket } from '../../lib/net';
import { BatchedSocketCalls } from '../../lib/runtime/socket-calls';

function socket(local: string, remotePort: number): TcpSocket {
  return { local, localPort: 25, remote: '198.18.0.9', remotePort, state: 'ESTABLISHED', owned: true, sendQueue: 0, lastSentMsAgo: 5, lastReceivedMsAgo: 5 };
}

/** A kernel holding `sockets`, recording each call; `soon` queues until turn() runs the queue. */
function setup(sockets: TcpSocket[]) {
  const calls: Array<{ fn: string; addresses: string[]; listening: boolean }> = [];
  const queued: Array<() => void> = [];
  const kernel = {
    async tcpSockets(addresses: string[], options?: { listening?: boolean }): Promise<TcpSocket[]> {
      calls.push({ fn: 'list', addresses, listening: options?.listening === true });
      return sockets.filter((s) => addresses.includes(s.local));
    },
    async destroyTcpSockets(addresses: string[], options?: { listening?: boolean }): Promise<DestroyResult> {
      calls.push({ fn: 'destroy', addresses, listening: options?.listening === true });
      const byAddress: Record<string, number> = {};
      for (const s of sockets) if (addresses.includes(s.local)) byAddress[s.local] = (byAddress[s.local] ?? 0) + 1;
      return { destroyed: Object.values(byAddress).reduce((a, b) => a + b, 0), gone: 0, failed: 0, byAddress, lastError: null };
    },
  };
  const batched = new BatchedSocketCalls(kernel, (fn) => void queued.push(fn));
  const turn = async (): Promise<void> => {
    for (const fn of queued.splice(0)) fn();
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { calls, batched, turn };
}

test('the drains of one turn list their sessions with one kernel call, each getting its own', async () => {
  const { calls, batched, turn } = setup([socket('198.18.1.1', 1), socket('198.18.1.2', 2), socket('2001:db8::5', 3), socket('198.18.1.9', 4)]);
  const a = batched.tcpSockets(['198.18.1.1']);
  const b = batched.tcpSockets(['198.18.1.2', '198.18.1.3']);
  // Another spelling of the same IPv6 address is the same address.
  const c = batched.tcpSockets(['2001:DB8:0::5']);
  await turn();
  assert.deepEqual((await a).map((s) => s.remotePort), [1]);
  assert.deepEqual((await b).map((s) => s.remotePort), [2]);
  assert.deepEqual((await c).map((s) => s.remotePort), [3]);
  assert.equal(calls.length, 1);
  assert.deepEqual(calls[0], { fn: 'list', addresses: ['198.18.1.1', '198.18.1.2', '198.18.1.3', '2001:db8::5'], listening: false });
  assert.deepEqual(batched.stats, { calls: 1, asked: 3 });
});

test('listings with listeners and without are separate questions; a later turn is a new call', async () => {
  const { calls, batched, turn } = setup([socket('198.18.1.1', 1)]);
  const plain = batched.tcpSockets(['198.18.1.1']);
  const withListeners = batched.tcpSockets(['198.18.1.1'], { listening: true });
  await turn();
  await Promise.all([plain, withListeners]);
  const later = batched.tcpSockets(['198.18.1.1']);
  await turn();
  await later;
  assert.deepEqual(calls.map((c) => `${c.fn} ${c.listening}`), ['list false', 'list true', 'list false']);
  assert.deepEqual(await batched.tcpSockets([]), [], 'no addresses: no call');
});

test('a batched reset tells each caller what it reset on its own addresses', async () => {
  const { calls, batched, turn } = setup([socket('198.18.1.1', 1), socket('198.18.1.1', 2), socket('198.18.1.2', 3)]);
  const a = batched.destroyTcpSockets(['198.18.1.1']);
  const b = batched.destroyTcpSockets(['198.18.1.2']);
  const none = batched.destroyTcpSockets(['198.18.1.7']);
  await turn();
  assert.equal((await a).destroyed, 2);
  assert.equal((await b).destroyed, 1);
  assert.deepEqual(await none, { destroyed: 0, gone: 0, failed: 0, byAddress: {}, lastError: null });
  assert.equal(calls.length, 1);
});

test('a failed kernel call fails every caller of its batch', async () => {
  const queued: Array<() => void> = [];
  const error = Object.assign(new Error('netlink SOCK_DIAG: EPERM'), { code: 'EPERM' });
  const batched = new BatchedSocketCalls(
    { tcpSockets: async () => Promise.reject(error), destroyTcpSockets: async () => Promise.reject(error) },
    (fn) => void queued.push(fn),
  );
  const a = batched.tcpSockets(['198.18.1.1']);
  const b = batched.tcpSockets(['198.18.1.2']);
  for (const fn of queued.splice(0)) fn();
  await assert.rejects(a, /EPERM/);
  await assert.rejects(b, /EPERM/);
});
