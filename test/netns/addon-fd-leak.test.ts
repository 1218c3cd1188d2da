// 10,000 calls across the whole lib/net API inside a fresh network namespace
// must leave the number of open file descriptors unchanged and RSS roughly
// flat: every socket lives in an RAII Fd, every worker and reader thread is
// joined and freed.
//
// The same file is the child workload: run with MTA_VIP_FD_LEAK_CHILD=1 (under
// `ip netns exec`) it makes the calls and prints one JSON line of measurements.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { registerLab, unregisterLab } from './lib/registry';

const CALLS = 10_000;
const VETH = 'fdl0';
const PEER = 'fdl1';
const DOWN = 'fdldown';

interface Measurement { fdsBefore: number; fdsAfter: number; rssBefore: number; rssAfter: number; calls: number; failures: Record<string, number> }

async function childWorkload(): Promise<void> {
  const net = await import('../../lib/net');
  const gc = (globalThis as { gc?: () => void }).gc;
  const openFds = (): number => fs.readdirSync('/proc/self/fd').length;
  const failures: Record<string, number> = {};
  let calls = 0;

  // Each step is one API call; errors expected on the down interface are counted by code.
  const steps: Array<() => Promise<unknown>> = [
    () => net.addAddress(VETH, '198.18.201.1/32'),
    () => net.addAddress(VETH, '198.18.201.1/32'), // already present: idempotent path
    () => net.removeAddress(VETH, '198.18.201.1/32'),
    () => net.removeAddress(VETH, '198.18.201.1/32'), // already gone
    () => net.addAddress(VETH, '2001:db8:fd::1:1/128'),
    () => net.removeAddress(VETH, '2001:db8:fd::1:1/128'),
    () => net.announce(VETH, ['198.18.201.2', '2001:db8:fd::1:2'], { count: 2, intervalMs: 0, mode: 'both' }),
    () => net.announce(DOWN, ['198.18.201.3'], { count: 1 }), // fails: ENETDOWN
    () => net.arpAllHosts(VETH, '198.18.200.1', { extra: [{ address: '198.18.200.2', mac: '02:00:00:00:fd:01' }] }),
    () => net.neighbours(VETH),
    async () => net.interfaces(),
    () => net.probe(VETH, '198.18.201.9', { timeoutMs: 1 }),
    () => net.probe(VETH, '2001:db8:fd::9', { timeoutMs: 1 }),
    async () => net.sniff(VETH, ['198.18.201.1'], () => undefined).close(),
    async () => net.watch(() => undefined).close(),
    async () => net.interfaces().find((link) => link.name === 'does-not-exist'),
    () => net.neighbours('mvnope0'), // fails: ENODEV from the wrapper
  ];

  async function runCalls(count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      calls++;
      try {
        await steps[i % steps.length]!();
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? (error as Error).name;
        failures[code] = (failures[code] ?? 0) + 1;
      }
    }
  }

  // Warm up: libuv's thread pool, V8's heap and the allocator reach steady state.
  await runCalls(1000);
  gc?.();
  await new Promise((resolve) => setTimeout(resolve, 50));
  const fdsBefore = openFds();
  const rssBefore = process.memoryUsage().rss;
  calls = 0;
  for (const key of Object.keys(failures)) delete failures[key];
  await runCalls(CALLS);
  gc?.();
  // Packet sockets are closed in the background (an RCU grace period each):
  // give the last ones up to 5 s to go, checking every 20 ms.
  const deadline = Date.now() + 5000;
  while (openFds() > fdsBefore && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  const result: Measurement = { fdsBefore, fdsAfter: openFds(), rssBefore, rssAfter: process.memoryUsage().rss, calls, failures };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function ip(args: string[]): void {
  const result = spawnSync('ip', args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${result.stderr.trim()}`);
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const NOT_ROOT = 'needs root to create a network namespace (run npm run test:netns as root)';

/** A one-line skip reason when not root; never on CI, where the test runs and fails instead. */
function skipReason(): string | false {
  return isRoot || process.env.CI === 'true' ? false : NOT_ROOT;
}

if (process.env.MTA_VIP_FD_LEAK_CHILD === '1') {
  childWorkload().catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else {
  const skip = skipReason();
  const ns = `${process.env.MTA_VIP_RUN_ID ?? 'mvdev'}-fd-${randomBytes(3).toString('hex')}`;
  let created = false;
  const cleanup = {
    destroySync(): void {
      if (created) spawnSync('ip', ['netns', 'del', ns]);
      created = false;
    },
  };
  after(() => {
    cleanup.destroySync();
    unregisterLab(cleanup);
  });

  test(`${CALLS} lib/net calls leak no file descriptors and little memory`, { skip, timeout: 240_000 }, (t) => {
    if (!isRoot) throw new Error(`${NOT_ROOT}; CI=true forbids skipping`);
    registerLab(cleanup);
    ip(['netns', 'add', ns]);
    created = true;
    ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    ip(['-n', ns, 'link', 'add', VETH, 'type', 'veth', 'peer', 'name', PEER]);
    ip(['-n', ns, 'link', 'add', DOWN, 'type', 'veth', 'peer', 'name', `${DOWN}p`]); // left down
    ip(['-n', ns, 'link', 'set', VETH, 'up']);
    ip(['-n', ns, 'link', 'set', PEER, 'up']);
    ip(['-n', ns, 'addr', 'add', '198.18.200.1/24', 'dev', VETH]);
    ip(['-n', ns, 'addr', 'add', '198.18.200.2/24', 'dev', PEER]);
    ip(['-n', ns, 'addr', 'add', '2001:db8:fd::1/64', 'dev', VETH, 'nodad']);

    const child = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--expose-gc', __filename], {
      encoding: 'utf8',
      env: { ...process.env, MTA_VIP_FD_LEAK_CHILD: '1' },
      timeout: 200_000,
    });
    assert.equal(child.status, 0, `child failed (${child.signal ?? child.status}): ${child.stderr}`);
    const result = JSON.parse(child.stdout.trim().split('\n').pop()!) as Measurement;
    const note = JSON.stringify(result);
    t.diagnostic(note);
    assert.equal(result.calls, CALLS);
    // The failing steps really failed, and with the codes we expect; nothing else failed.
    assert.deepEqual(Object.keys(result.failures).sort(), ['ENETDOWN', 'ENODEV'], note);
    assert.equal(result.fdsAfter, result.fdsBefore, `open fds changed: ${note}`);
    // A leak of one small object per call would show as several MB over 10,000 calls;
    // 16 MB leaves room for allocator noise.
    assert.ok(result.rssAfter - result.rssBefore < 16 * 1024 * 1024, `RSS grew by ${((result.rssAfter - result.rssBefore) / 1048576).toFixed(1)} MB: ${note}`);
  });
}
