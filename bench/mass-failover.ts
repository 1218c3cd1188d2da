/**
 * Mass failover (issue 17): 3 nodes declaring the same N listener VIPs (n1
 * preferred for all, default timers). Each trial SIGKILLs n1's process
 * (its guardian removes the addresses), the survivors take the VIPs over, then
 * n1 starts again and takes them back after its hold-down (failback).
 *
 * Measured, per trial:
 *   - from the kernels (`ip -ts monitor address`): when each VIP appeared on a
 *     survivor after the kill; intervals during which two nodes that hear each
 *     other had one VIP (past one heartbeat + announcement, 150 ms); address
 *     additions beyond the one per VIP a move needs;
 *   - from a client (bench/lib/mass-prober) probing a sample of the VIPs, one
 *     connection loop each: when each VIP accepted a TCP connection on a
 *     survivor after the kill, and each VIP's longest outage during failback;
 *   - from the nodes: their event loops' longest delay (monitorEventLoopDelay)
 *     and every peer-down (a false failover caused by the work of moving).
 *
 *   node dist/bench/mass-failover.js [--vips N] [--trials T] [--sample S] [--quick] [--out FILE]
 * Needs root. Prints one JSON line and a table; writes bench/results/mass-failover.json
 * (or --out).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fixturePath, Lab, vip4, waitFor, type LabProcess } from '../test/netns/harness';
import { AddressMonitor } from '../test/netns/lib/address-monitor';
import type { MassAttempt } from './lib/mass-prober';
import { benchArgs, formatTable, gitSource, RESULTS_DIR } from './lib/bench-common';

const NODES = ['n1', 'n2', 'n3'] as const;
const PORT = 2525;
/** One heartbeat (50 ms) + the announcement's reach: the bound for two holders that hear each other. */
const DUAL_BOUND_MS = 150;
const HOLD_DOWN_MS = 2000;

export interface MassTrial {
  trial: number;
  crash: {
    /** ms from the kill until each VIP was on a survivor (kernel). */
    takeoverMs: Percentiles;
    /** ms from the kill until each sampled VIP accepted a connection on a survivor. */
    connectMs: Percentiles;
    /** Sampled VIPs that never accepted a connection within the trial's deadline. */
    unreachable: number;
    /** Longest event-loop delay of each survivor during the takeover. */
    stallMs: Record<string, number>;
    peerDowns: number;
    dualsOverBound: number;
    longestDualMs: number;
    settledMs: number | null;
  };
  failback: {
    /** From n1's start until n1 alone held every VIP (includes the hold-down). */
    settledMs: number | null;
    /** Each sampled VIP's longest run without a successful connection. */
    outageMs: Percentiles;
    stallMs: Record<string, number>;
    peerDowns: number;
    dualsOverBound: number;
    longestDualMs: number;
    extraAdditions: number;
  };
}

export interface Percentiles {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function percentiles(values: number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => (sorted.length ? (sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number) : NaN);
  return { n: sorted.length, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: sorted.length ? (sorted[sorted.length - 1] as number) : NaN };
}

function config(lab: Lab, node: string, ips: string[]): Record<string, unknown> {
  return {
    node,
    cluster: { id: 'bench-mass', secret: 'bench mass failover secret 0123', bind: lab.host(node).ipv4, peers: NODES.map((n) => lab.host(n).ipv4) },
    listeners: ips.map((ip) => `${ip}:${PORT}`),
    vips: Object.fromEntries(ips.map((ip) => [ip, { preferred: 'n1' }])),
    topology: [{ cidr: '198.18.0.0/16', interface: 'eth0' }],
    timers: { holdDownMs: HOLD_DOWN_MS },
    // MTA_VIP_BENCH_TRACE=<file>: the events of each VIP's moves go over IPC too, for the
    // timeline written there (not 'state': thousands per move, their serialisation would be
    // most of what the trace measured).
    fixture: { events: ['peer-down', 'stall', 'error', ...(process.env.MTA_VIP_BENCH_TRACE ? ['peer-up', 'acquired', 'released', 'conflict', 'unhealthy'] : [])] },
  };
}

/** The sampled VIPs every node holds, from the kernels. */
async function holders(lab: Lab, ips: string[]): Promise<Map<string, string[]>> {
  const wanted = new Set(ips);
  const map = new Map<string, string[]>(ips.map((ip) => [ip, []]));
  for (const node of NODES) {
    for (const a of await lab.addresses(node)) if (wanted.has(a.address)) map.get(a.address)?.push(node);
  }
  return map;
}

async function everyVipOn(lab: Lab, ips: string[], ok: (hosts: string[]) => boolean, timeoutMs: number, what: string): Promise<number | null> {
  const started = Date.now();
  try {
    await waitFor(async () => ([...(await holders(lab, ips)).values()].every(ok) ? true : null), { timeoutMs, intervalMs: 100, what });
    return Date.now() - started;
  } catch {
    return null;
  }
}

async function loopDelay(proc: LabProcess): Promise<number> {
  proc.send({ cmd: 'loop' });
  const reply = (await proc.nextMessage((m: { type?: string }) => m.type === 'loop', 10_000)) as { maxMs: number };
  return Math.round(reply.maxMs);
}

let requestId = 0;
async function attemptsSince(prober: LabProcess, sinceMs: number): Promise<MassAttempt[]> {
  const id = ++requestId;
  prober.send({ cmd: 'attempts', id, sinceMs });
  const reply = (await prober.nextMessage((m: { type?: string; id?: number }) => m.type === 'attempts' && m.id === id, 20_000)) as { attempts: MassAttempt[] };
  return reply.attempts;
}

/** Duals among `hosts` from `fromMs` on: how many last past the bound, and the longest. */
function dualsAmong(monitor: AddressMonitor, ips: string[], hosts: readonly string[], fromMs: number, untilMs: number): { over: number; longest: number } {
  let over = 0;
  let longest = 0;
  const set = new Set(hosts);
  for (const ip of ips) {
    for (const d of monitor.duals(ip)) {
      if (d.fromMs < fromMs || d.fromMs > untilMs) continue;
      if (d.hosts.filter((h) => set.has(h)).length < 2) continue;
      longest = Math.max(longest, d.ms);
      if (d.ms > DUAL_BOUND_MS) over++;
    }
  }
  return { over, longest };
}

/** Peer-down events the processes reported since `sinceMs`, leaving out those about `except` (a node really killed). */
function peerDownsSince(procs: Iterable<LabProcess>, sinceMs: number, except?: string): number {
  let n = 0;
  for (const p of procs) n += p.messages.filter((m: any) => m.type === 'event' && m.name === 'peer-down' && m.at >= sinceMs && m.data?.node !== except).length;
  return n;
}

/** Each sampled VIP's longest gap between successful connections in [from, until]. */
function outages(attempts: MassAttempt[], sample: string[], from: number, until: number): number[] {
  return sample.map((ip) => {
    const oks = attempts.filter((a) => a.ip === ip && a.ok && a.connected !== null).map((a) => a.connected as number).filter((t) => t >= from && t <= until).sort((a, b) => a - b);
    let last = from;
    let longest = 0;
    for (const t of oks) {
      longest = Math.max(longest, t - last);
      last = t;
    }
    return Math.max(longest, until - last);
  });
}

export interface MassFailoverOptions {
  vips: number;
  trials: number;
  sample: number;
  /** Runs after the last trial, before the lab goes (the namespace test's end-state checks); what it returns are errors. */
  verify?: (lab: Lab, ips: string[]) => Promise<string[]>;
}

export async function runMassFailover(options: MassFailoverOptions): Promise<{ trials: MassTrial[]; errors: string[] }> {
  const ips = Array.from({ length: options.vips }, (_, i) => vip4(i + 1));
  const step = Math.max(1, Math.floor(ips.length / options.sample));
  const sample = ips.filter((_, i) => i % step === 0).slice(0, options.sample);
  const lab = await Lab.create({ hosts: [...NODES, 'client'] });
  const procs = new Map<string, LabProcess>();
  const trials: MassTrial[] = [];
  const errors: string[] = [];
  let monitor: AddressMonitor | null = null;
  let prober: LabProcess | null = null;
  const marks: Array<[number, string]> = [];
  const start = async (node: string): Promise<void> => {
    const proc = lab.spawnNode(node, fixturePath('cluster-node'), [JSON.stringify(config(lab, node, ips))]);
    procs.set(node, proc);
    await proc.nextMessage((m: { type?: string }) => m.type === 'started', 60_000);
  };
  try {
    await start('n1');
    if ((await everyVipOn(lab, ips, (h) => h.join() === 'n1', 120_000, 'n1 holding every VIP')) === null) {
      const n1 = procs.get('n1') as LabProcess;
      n1.send({ cmd: 'status' });
      const { status } = (await n1.nextMessage((m: { type?: string }) => m.type === 'status', 10_000)) as { status: { vips: Array<{ phase: string; state: string; unhealthy: unknown }> } };
      const phases: Record<string, number> = {};
      for (const v of status.vips) phases[`${v.phase}/${v.state}`] = (phases[`${v.phase}/${v.state}`] ?? 0) + 1;
      const unhealthy = status.vips.filter((v) => v.unhealthy).slice(0, 3);
      throw new Error(`n1 never held every VIP: ${JSON.stringify(phases)} ${JSON.stringify(unhealthy)} ${n1.stderr.slice(-800)}`);
    }
    await Promise.all(['n2', 'n3'].map(start));
    // Time for the standbys to fetch n1's declaration and holdings. Nothing should move when they
    // join; with 1,000 VIPs it did (n1 stalled past its guard): the check below reports it.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    monitor = await AddressMonitor.start(lab, [...NODES]);
    prober = lab.spawnNode('client', path.join(__dirname, 'lib', 'mass-prober.js'), [JSON.stringify({ ips: sample, port: PORT, connectTimeoutMs: 50, bannerTimeoutMs: 2000 })]);
    let recent: MassAttempt[] = [];
    await waitFor(async () => {
      recent = await attemptsSince(prober as LabProcess, Date.now() - 500);
      return sample.every((ip) => recent.some((a) => a.ip === ip && a.ok)) || null;
    }, { timeoutMs: 30_000, what: 'every sampled VIP answering' }).catch(async (error: Error) => {
      const failing = recent.filter((a) => !a.ok).slice(0, 3);
      const neigh = (await lab.exec('client', ['ip', 'neigh', 'show'], { allowFailure: true })).stdout.split('\n').filter((l) => failing.some((a) => l.startsWith(`${a.ip} `)));
      const all = await holders(lab, ips);
      const where = failing.map((a) => [a.ip, all.get(a.ip)]);
      const counts: Record<string, number> = {};
      for (const hs of all.values()) counts[hs.join('+') || 'nobody'] = (counts[hs.join('+') || 'nobody'] ?? 0) + 1;
      const events = [...procs].map(([n, p]) => `${n}: ${JSON.stringify(p.messages.filter((m: any) => m.type === 'event').map((m: any) => `${m.name} ${JSON.stringify(m.data).slice(0, 80)}`).slice(0, 8))}`);
      process.stderr.write(`holders by node: ${JSON.stringify(counts)}\nevents:\n${events.join('\n')}\n`);
      throw new Error(`${error.message}: ${JSON.stringify(failing)} (${recent.length} attempts, ${recent.filter((a) => a.ok).length} ok); client neighbours ${JSON.stringify(neigh)}; holders ${JSON.stringify(where)}; n1: ${(procs.get('n1') as LabProcess).stderr.slice(-500)}`);
    });

    for (let trial = 1; trial <= options.trials; trial++) {
      const n1 = procs.get('n1') as LabProcess;
      for (const node of NODES) await loopDelay(procs.get(node) as LabProcess);
      const killAt = Date.now();
      marks.push([killAt, `bench SIGKILL n1 (trial ${trial})`]);
      n1.kill('SIGKILL');
      await n1.exited;
      procs.delete('n1');
      const crashSettled = await everyVipOn(lab, ips, (h) => h.length === 1 && h[0] !== 'n1', 60_000, 'every VIP on one survivor');
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const crashEnd = Date.now();
      const crashStall = Object.fromEntries(await Promise.all(['n2', 'n3'].map(async (n) => [n, await loopDelay(procs.get(n) as LabProcess)] as const)));
      const takeover = ips.map((ip) => monitor?.events.find((e) => e.ip === ip && e.added && e.host !== 'n1' && e.atMs >= killAt)?.atMs).filter((t): t is number => t !== undefined).map((t) => t - killAt);
      const crashAttempts = await attemptsSince(prober, killAt);
      const connect = sample.map((ip) => crashAttempts.find((a) => a.ip === ip && a.ok && a.node !== 'n1' && a.start >= killAt)?.connected).map((t) => (t == null ? null : t - killAt));
      const crashDuals = dualsAmong(monitor, ips, ['n2', 'n3'], killAt, crashEnd);

      const restartAt = Date.now();
      marks.push([restartAt, `bench start n1 (trial ${trial})`]);
      await start('n1');
      const failbackSettled = await everyVipOn(lab, ips, (h) => h.join() === 'n1', 120_000, 'n1 holding every VIP again');
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const failbackEnd = Date.now();
      const failbackStall = Object.fromEntries(await Promise.all(NODES.map(async (n) => [n, await loopDelay(procs.get(n) as LabProcess)] as const)));
      const failbackAttempts = await attemptsSince(prober, restartAt);
      const failbackDuals = dualsAmong(monitor, ips, NODES, restartAt, failbackEnd);
      const additions = monitor.events.filter((e) => e.added && e.atMs >= restartAt && e.atMs <= failbackEnd).length;
      trials.push({
        trial,
        crash: {
          takeoverMs: percentiles(takeover),
          connectMs: percentiles(connect.filter((t): t is number => t !== null)),
          unreachable: connect.filter((t) => t === null).length,
          stallMs: crashStall,
          // A survivor declaring n1 dead is the failover itself; one declaring the other is false.
          peerDowns: peerDownsSince(procs.values(), killAt, 'n1'),
          dualsOverBound: crashDuals.over,
          longestDualMs: crashDuals.longest,
          settledMs: crashSettled,
        },
        failback: {
          settledMs: failbackSettled,
          outageMs: percentiles(outages(failbackAttempts, sample, restartAt, failbackEnd)),
          stallMs: failbackStall,
          peerDowns: peerDownsSince(procs.values(), restartAt),
          dualsOverBound: failbackDuals.over,
          longestDualMs: failbackDuals.longest,
          extraAdditions: additions - ips.length,
        },
      });
      process.stderr.write(`trial ${trial}: ${JSON.stringify(trials[trials.length - 1])}\n`);
    }
    if (options.verify) errors.push(...(await options.verify(lab, ips)));
  } catch (error) {
    errors.push((error as Error).message);
  } finally {
    if (process.env.MTA_VIP_BENCH_TRACE) await writeTrace(process.env.MTA_VIP_BENCH_TRACE, marks, procs, monitor, prober);
    monitor?.stop();
    await prober?.stop().catch(() => undefined);
    await Promise.all([...procs.values()].map((p) => p.stop(5000).catch(() => undefined)));
    await lab.destroy();
  }
  return { trials, errors };
}

/**
 * The whole run as one time-ordered list (node events, kernel address events, the prober's
 * attempts on the first sampled VIPs), for finding where a trial's time went.
 */
async function writeTrace(file: string, marks: Array<[number, string]>, procs: Map<string, LabProcess>, monitor: AddressMonitor | null, prober: LabProcess | null): Promise<void> {
  const lines: Array<[number, string]> = [...marks];
  for (const [node, p] of procs) for (const m of p.messages as any[]) if (m.type === 'event') lines.push([m.at, `${node} ${m.name} ${JSON.stringify(m.data)}`]);
  for (const e of monitor?.events ?? []) lines.push([e.atMs, `kernel ${e.host} ${e.added ? 'added' : 'removed'} ${e.ip}`]);
  const attempts = prober ? await attemptsSince(prober, 0).catch(() => []) : [];
  const traced = new Set([...new Set(attempts.map((a) => a.ip))].slice(0, 3));
  for (const a of attempts) if (traced.has(a.ip)) lines.push([a.start, `client ${a.ip} ${JSON.stringify(a)}`]);
  lines.sort((a, b) => a[0] - b[0]);
  fs.writeFileSync(file, lines.map(([t, l]) => `${new Date(t).toISOString().slice(11, 23)} ${l}`).join('\n') + '\n');
}

function pooled(trials: MassTrial[], pick: (t: MassTrial) => Percentiles): string {
  const all = trials.map(pick);
  const worst = (k: keyof Percentiles): number => Math.max(...all.map((p) => p[k]));
  return `${worst('p50')}/${worst('p99')}/${worst('max')}`;
}

export function massTable(vips: number, trials: MassTrial[]): string {
  const max = (f: (t: MassTrial) => number): number => Math.max(0, ...trials.map(f));
  const stall = (r: Record<string, number>): number => Math.max(0, ...Object.values(r));
  const rows = [
    ['crash: on a survivor (kernel), p50/p99/max ms', pooled(trials, (t) => t.crash.takeoverMs)],
    ['crash: connect on a survivor, p50/p99/max ms', pooled(trials, (t) => t.crash.connectMs)],
    ['crash: sampled VIPs never reachable', String(max((t) => t.crash.unreachable))],
    ['crash: longest survivor loop stall, ms', String(max((t) => stall(t.crash.stallMs)))],
    ['crash: false peer-downs / duals > 150 ms', `${max((t) => t.crash.peerDowns)} / ${max((t) => t.crash.dualsOverBound)}`],
    ['failback: settled after n1 started, ms', String(max((t) => t.failback.settledMs ?? Infinity))],
    ['failback: a VIP\'s outage, p50/p99/max ms', pooled(trials, (t) => t.failback.outageMs)],
    ['failback: longest loop stall, ms', String(max((t) => stall(t.failback.stallMs)))],
    ['failback: peer-downs / duals > 150 ms / extra additions', `${max((t) => t.failback.peerDowns)} / ${max((t) => t.failback.dualsOverBound)} / ${max((t) => t.failback.extraAdditions)}`],
  ];
  return formatTable([`${vips} VIPs, 3 nodes, ${trials.length} trials (worst trial)`, 'value'], rows);
}

async function main(): Promise<void> {
  const args = benchArgs();
  const vips = Number(args.value('--vips') ?? 1000);
  const trials = Number(args.value('--trials') ?? (args.quick ? 1 : 3));
  const sample = Number(args.value('--sample') ?? 50);
  const started = Date.now();
  const result = await runMassFailover({ vips, trials, sample });
  const out = { bench: 'mass-failover', date: new Date().toISOString(), source: gitSource(), vips, sample, seconds: Math.round((Date.now() - started) / 1000), ...result };
  console.log(JSON.stringify(out));
  console.log(massTable(vips, result.trials));
  if (result.errors.length) console.log(`errors: ${result.errors.join('; ')}`);
  const file = args.value('--out') ?? path.join(RESULTS_DIR, 'mass-failover.json');
  fs.writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  if (result.errors.length || result.trials.length < trials) process.exitCode = 1;
}

if (require.main === module) void main();
