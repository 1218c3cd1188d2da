/**
 * Idle cost (issue 8): CPU and memory of one node holding 1,000 VIPs in a
 * 4-node cluster at default timers, while nothing happens.
 *
 * A Lab with n1..n4, each running the real runtime (cluster-node fixture).
 * All four declare the same 1,000 VIPs (vip4(1..1000)) with n1 as the
 * preferred node, so once settled n1 holds all of them and n2..n4 stand by.
 * Three variants, one after the other:
 *   - listeners: every VIP carries an SMTP listener (1,000 listening smtp-servers on n1);
 *   - bindings: every VIP is an outbound binding (no listener; the node-to-node relay runs);
 *   - one-vip: a single listener VIP, the baseline (what the 1,000 VIPs add).
 * n1 starts first and takes every VIP, then the standbys join. After n1 alone
 * holds all addresses (`ip -j addr`), every VIP is 'held' in its status, and no
 * node has moved a document chunk for 3 s (joining peers fetch n1's declaration
 * and holdings first; how long that took is reported), n1's process and its alias-reaper child are
 * sampled every second for the window: CPU time (/proc/<pid>/stat utime+stime)
 * as % of one core, RSS (/proc/<pid>/status VmRSS); heartbeat packets and bytes
 * per second from n1's status counters. The standbys are measured too.
 *
 *   node dist/bench/idle.js [--quick] [--seconds S] [--variants listeners,bindings,one-vip]
 * --quick: a 5 s window (default 30 s). Needs root. Prints one JSON line and a
 * table; writes bench/results/idle.json.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_HEARTBEAT_MS } from '../lib/core/config';
import { fixturePath, Lab, run as runCommand, vip4, waitFor, type LabProcess } from '../test/netns/harness';
import { childrenOf, sampleProcess, summarize, type ProcSample, type UsageSummary } from './lib/proc-usage';
import { benchArgs, formatTable, gitSource, RESULTS_DIR } from './lib/bench-common';

const NODES = ['n1', 'n2', 'n3', 'n4'];
const VIP_COUNT = 1000;
const QUIET_MS = 3000;
const SETTLE_TIMEOUT_MS = 120_000;
const SAMPLE_INTERVAL_MS = 1000;
const VARIANTS = ['listeners', 'bindings', 'one-vip'] as const;
type Variant = (typeof VARIANTS)[number];
/** one-vip: the same cluster with a single listener VIP, the baseline the 1,000 are compared with. */
const vipsOf = (variant: Variant): number => (variant === 'one-vip' ? 1 : VIP_COUNT);

interface NodeUsage {
  node: string;
  role: 'holder' | 'standby';
  pid: number;
  main: UsageSummary;
  /** The alias reaper (the node's child process); null when it was not found. */
  reaper: (UsageSummary & { pid: number }) | null;
  /** Every status counter that moved during the window, per second (what the node was busy with). */
  countersPerSecond: Record<string, number>;
  /** Cluster events the node emitted during the window (none expected while idle). */
  events: Record<string, number>;
}

interface VariantResult {
  variant: Variant;
  vips: number;
  heldByN1: number;
  /** From the first start until n1 alone held every VIP with 3 live peers. */
  settleSeconds: number;
  /** From the first start until no node had moved a document chunk for QUIET_MS (the window starts then). */
  documentsQuietSeconds?: number;
  /** n1's document traffic between settling and quiet: peers fetching its declaration and holdings. */
  exchange?: { seconds: number; n1CountersPerSecond: Record<string, number> };
  nodes: NodeUsage[];
  /** n1's heartbeat traffic over the window. */
  traffic: { packetsSentPerSecond: number; bytesSentPerSecond: number; packetsReceivedPerSecond: number; bytesPerPacketSent: number };
  error?: string;
}

function config(lab: Lab, node: string, variant: Variant): Record<string, unknown> {
  const vips: Record<string, { preferred: string }> = {};
  const ips = Array.from({ length: vipsOf(variant) }, (_, i) => vip4(i + 1));
  for (const ip of ips) vips[ip] = { preferred: 'n1' };
  return {
    node,
    cluster: { id: 'bench-idle', secret: 'bench idle secret 0123456789', bind: lab.host(node).ipv4, peers: NODES.map((n) => lab.host(n).ipv4) },
    ...(variant !== 'bindings' ? { listeners: ips.map((ip) => `${ip}:2525`) } : { bindings: ips.map((ip, i) => ({ name: `b${i + 1}`, address: ip })) }),
    vips,
    topology: [{ cidr: '198.18.0.0/16', interface: 'eth0' }],
  };
}

/** The part of ClusterStatus this benchmark reads. */
interface NodeStatus {
  vips: Array<{ ip: string; phase: string; owner: string | null }>;
  peers: Array<{ node: string; live: boolean }>;
  counters: Record<string, number>;
}

async function status(proc: LabProcess): Promise<NodeStatus> {
  proc.send({ cmd: 'status' });
  const reply = await proc.nextMessage<{ status: NodeStatus }>((m: any) => m.type === 'status', 60_000);
  return reply.status;
}

async function vipCount(lab: Lab, node: string): Promise<number> {
  return (await lab.addresses(node)).filter((a) => a.prefix === 32 && a.address !== lab.host(node).ipv4).length;
}

async function measureVariant(lab: Lab, variant: Variant, windowMs: number): Promise<VariantResult> {
  const procs = new Map<string, LabProcess>();
  const eventCounts = new Map<string, Record<string, number>>();
  const count = vipsOf(variant);
  const started = Date.now();
  try {
    const startNode = async (node: string): Promise<void> => {
      const proc = lab.spawnNode(node, fixturePath('cluster-node'), [JSON.stringify(config(lab, node, variant))]);
      // 1,000 acquisitions are 2,000+ events: count them instead of queueing.
      const counts: Record<string, number> = {};
      eventCounts.set(node, counts);
      proc.onMessage((m: any) => {
        if (m?.type !== 'event') return false;
        counts[m.name] = (counts[m.name] ?? 0) + 1;
        return true;
      });
      procs.set(node, proc);
      await proc.nextMessage((m: any) => m.type === 'started', 30_000);
    };
    // n1 first, so it takes every VIP at once instead of preempting a peer
    // that happened to boot first (preemption waits for the hold-down).
    await startNode('n1');
    const n1 = procs.get('n1') as LabProcess;
    const holdsAll = async (): Promise<boolean> => {
      if ((await vipCount(lab, 'n1')) !== count) return false;
      const s = await status(n1);
      return s.vips.length === count && s.vips.every((v) => v.phase === 'held');
    };
    await waitFor(holdsAll, { timeoutMs: SETTLE_TIMEOUT_MS, intervalMs: 500, what: `n1 to hold all ${count} VIPs` });
    await Promise.all(NODES.slice(1).map(startNode));
    await waitFor(
      async () => {
        if (!(await holdsAll())) return false;
        const others = await Promise.all(NODES.slice(1).map((n) => vipCount(lab, n)));
        const live = (await status(n1)).peers.filter((p) => p.live).length;
        return others.every((c) => c === 0) && live === NODES.length - 1;
      },
      { timeoutMs: SETTLE_TIMEOUT_MS, intervalMs: 500, what: `n1 alone holding all ${count} VIPs, with 3 live peers` },
    );
    const settleSeconds = Math.round((Date.now() - started) / 100) / 10;
    const settledCounters = (await status(n1)).counters;
    // Peers that just joined fetch n1's declaration and holdings in chunks for
    // a few seconds: measure only once no node moved a document for QUIET_MS.
    const documentTraffic = async (): Promise<string> =>
      JSON.stringify(await Promise.all(NODES.map(async (node) => {
        const c = (await status(procs.get(node) as LabProcess)).counters;
        return [c.chunks_sent ?? 0, c.chunks_received ?? 0, c.requests_sent ?? 0, c.documents_completed ?? 0];
      })));
    let last = await documentTraffic();
    let quietSince = Date.now();
    const quietDeadline = Date.now() + SETTLE_TIMEOUT_MS;
    while (Date.now() - quietSince < QUIET_MS && Date.now() < quietDeadline) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const now = await documentTraffic();
      if (now !== last) quietSince = Date.now();
      last = now;
    }
    const documentsQuietSeconds = Math.round((Date.now() - started) / 100) / 10;
    const exchangeCounters = (await status(n1)).counters;
    const exchangeSeconds = Math.max(0.001, documentsQuietSeconds - settleSeconds);
    const exchange = {
      seconds: Math.round(exchangeSeconds * 10) / 10,
      n1CountersPerSecond: Object.fromEntries(
        ['sent', 'sent_bytes', 'received', 'received_bytes', 'chunks_sent', 'chunks_received', 'requests_sent', 'requests_received', 'documents_completed', 'documents_rejected'].map((key) => [
          key,
          Math.round((((exchangeCounters[key] ?? 0) - (settledCounters[key] ?? 0)) / exchangeSeconds) * 10) / 10,
        ]),
      ),
    };

    const pids = NODES.map((node) => {
      const pid = procs.get(node)?.pid;
      if (pid === undefined) throw new Error(`${node} has no pid`);
      return { node, pid, reaper: childrenOf(pid)[0] ?? null };
    });
    const samples = new Map<number, ProcSample[]>();
    const take = (): void => {
      for (const p of pids) {
        for (const pid of [p.pid, p.reaper]) {
          if (pid === null) continue;
          const list = samples.get(pid) ?? [];
          list.push(sampleProcess(pid));
          samples.set(pid, list);
        }
      }
    };
    const countersOfAll = async (): Promise<Map<string, Record<string, number>>> =>
      new Map(await Promise.all(NODES.map(async (node) => [node, (await status(procs.get(node) as LabProcess)).counters] as const)));
    const beforeAll = await countersOfAll();
    const eventsBefore = new Map([...eventCounts].map(([node, counts]) => [node, { ...counts }]));
    const before = beforeAll.get('n1') as Record<string, number>;
    const beforeAt = Date.now();
    take();
    const windowEnd = Date.now() + windowMs;
    // Bounded: one sample per second until the window ends.
    while (Date.now() < windowEnd) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(SAMPLE_INTERVAL_MS, Math.max(0, windowEnd - Date.now()))));
      take();
    }
    const afterAll = await countersOfAll();
    const after = afterAll.get('n1') as Record<string, number>;
    const seconds = (Date.now() - beforeAt) / 1000;
    const delta = (key: string): number => ((after[key] ?? 0) - (before[key] ?? 0)) / seconds;
    const round1 = (v: number): number => Math.round(v * 10) / 10;
    const moved = (node: string): Record<string, number> => {
      const a = afterAll.get(node) ?? {};
      const b = beforeAll.get(node) ?? {};
      return Object.fromEntries(Object.keys(a).filter((key) => a[key] !== b[key]).map((key) => [key, round1(((a[key] ?? 0) - (b[key] ?? 0)) / seconds)]));
    };
    const heldByN1 = await vipCount(lab, 'n1');
    return {
      variant,
      vips: count,
      heldByN1,
      settleSeconds,
      documentsQuietSeconds,
      exchange,
      nodes: pids.map((p) => ({
        node: p.node,
        role: p.node === 'n1' ? 'holder' : 'standby',
        pid: p.pid,
        main: summarize(samples.get(p.pid) as ProcSample[]),
        reaper: p.reaper === null ? null : { pid: p.reaper, ...summarize(samples.get(p.reaper) as ProcSample[]) },
        countersPerSecond: moved(p.node),
        events: Object.fromEntries(Object.entries(eventCounts.get(p.node) ?? {}).flatMap(([name, n]) => (n !== (eventsBefore.get(p.node)?.[name] ?? 0) ? [[name, n - (eventsBefore.get(p.node)?.[name] ?? 0)]] : []))),
      })),
      traffic: {
        packetsSentPerSecond: round1(delta('sent')),
        bytesSentPerSecond: Math.round(delta('sent_bytes')),
        packetsReceivedPerSecond: round1(delta('received')),
        bytesPerPacketSent: delta('sent') ? Math.round(delta('sent_bytes') / delta('sent')) : 0,
      },
    };
  } finally {
    // Graceful close releases 1,000 VIPs; give it time before SIGKILL.
    await Promise.all([...procs.values()].map((p) => p.stop(20_000)));
  }
}

function table(results: VariantResult[]): string {
  const head = ['variant', 'node', 'role', 'CPU % core', 'max 1 s %', 'RSS MiB', 'reaper CPU %', 'reaper RSS MiB', 'events in window'];
  const rows: string[][] = [];
  for (const r of results) {
    if (r.error) {
      rows.push([r.variant, `error: ${r.error.split('\n')[0]?.slice(0, 120)}`]);
      continue;
    }
    for (const n of r.nodes) {
      rows.push([r.variant, n.node, n.role, String(n.main.cpuPercentOfCore), String(n.main.cpuPercentMaxInterval), String(n.main.rssMiBMean), String(n.reaper?.cpuPercentOfCore ?? '-'), String(n.reaper?.rssMiBMean ?? '-'), Object.entries(n.events).map(([k, v]) => `${k} ${v}`).join(', ') || 'none']);
    }
  }
  const traffic = results
    .filter((r) => !r.error)
    .map((r) => `${r.variant}: n1 sends ${r.traffic.packetsSentPerSecond} packets/s (${r.traffic.bytesSentPerSecond} B/s, ${r.traffic.bytesPerPacketSent} B/packet), receives ${r.traffic.packetsReceivedPerSecond}/s; after the standbys joined, document exchange went on for ${r.exchange?.seconds ?? '-'} s (n1 received ${r.exchange?.n1CountersPerSecond.received_bytes ?? '-'} B/s, ${r.exchange?.n1CountersPerSecond.documents_completed ?? '-'} documents/s)`);
  return [`idle: ${VIP_COUNT} VIPs (one-vip: 1) held by n1, 4 nodes, default timers (heartbeat ${DEFAULT_HEARTBEAT_MS} ms); target < 1 % of a core`, formatTable(head, rows), ...traffic].join('\n');
}

/** Runs the idle measurement; returns the JSON result (also written to bench/results/idle.json). */
export async function run(): Promise<object> {
  const args = benchArgs();
  const windowMs = Number(args.value('--seconds') ?? process.env.IDLE_SECONDS ?? (args.quick ? 5 : 30)) * 1000;
  if (!Number.isFinite(windowMs) || windowMs < 2000 || windowMs > 600_000) throw new RangeError('--seconds must be 2..600');
  const variants = (args.value('--variants') ?? process.env.IDLE_VARIANTS ?? VARIANTS.join(',')).split(',').map((v) => v.trim()) as Variant[];
  for (const v of variants) if (!(VARIANTS as readonly string[]).includes(v)) throw new TypeError(`unknown variant ${v}; known: ${VARIANTS.join(', ')}`);
  const started = Date.now();
  const results: VariantResult[] = [];
  const lab = await Lab.create({ hosts: NODES, ipv6: false });
  try {
    for (const variant of variants) {
      console.error(`idle: ${variant} …`);
      try {
        results.push(await measureVariant(lab, variant, windowMs));
      } catch (error) {
        results.push({ variant, vips: vipsOf(variant), heldByN1: 0, settleSeconds: 0, nodes: [], traffic: { packetsSentPerSecond: 0, bytesSentPerSecond: 0, packetsReceivedPerSecond: 0, bytesPerPacketSent: 0 }, error: (error as Error).message.slice(0, 4000) });
      }
      // What a node left behind must not leak into the next variant.
      await waitFor(async () => (await Promise.all(NODES.map((n) => vipCount(lab, n)))).every((c) => c === 0), { timeoutMs: 30_000, intervalMs: 500, what: 'every VIP released' }).catch(async () => {
        for (const node of NODES) {
          const leftovers = (await lab.addresses(node)).filter((a) => a.prefix === 32 && a.address !== lab.host(node).ipv4);
          const script = leftovers.map((a) => `addr del ${a.address}/32 dev eth0`).join('\n');
          if (script) await runCommand(['ip', '-n', lab.host(node).ns, '-batch', '-'], { input: `${script}\n`, allowFailure: true });
        }
      });
    }
  } finally {
    await lab.destroy();
  }
  const holder = (r: VariantResult): NodeUsage | undefined => r.nodes.find((n) => n.node === 'n1');
  const output = {
    bench: 'idle',
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, kernel: os.release(), node: process.version, loadavg1: Math.round(os.loadavg()[0] as number * 100) / 100 },
    source: gitSource(),
    windowSeconds: windowMs / 1000,
    timers: `defaults (heartbeat ${DEFAULT_HEARTBEAT_MS} ms, dead-after ${4 * DEFAULT_HEARTBEAT_MS} ms)`,
    target: 'holder CPU < 1 % of one core',
    targetMet: results.every((r) => !r.error && (holder(r)?.main.cpuPercentOfCore ?? Infinity) < 1),
    runSeconds: Math.round((Date.now() - started) / 100) / 10,
    variants: results,
  };
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  fs.writeFileSync(path.join(RESULTS_DIR, 'idle.json'), `${JSON.stringify(output, null, 1)}\n`);
  return output;
}

if (require.main === module) {
  run().then(
    (output) => {
      console.log(JSON.stringify(output));
      console.log(table((output as { variants: VariantResult[] }).variants));
    },
    (error: Error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
