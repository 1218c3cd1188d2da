/**
 * The headline failover benchmark (issue 8): mta-vip against keepalived and
 * ucarp, in one run, on one namespace topology.
 *
 * A Lab with three server namespaces (n1, n2, n3) and a client namespace. Every
 * server answers SMTP on the VIP 198.18.1.1:2525 while it holds it: for mta-vip
 * the runtime starts the listener on acquisition (cluster-node fixture); for
 * keepalived and ucarp a plain smtp-server bound to 0.0.0.0 runs all the time
 * (bench/lib/smtp-peer). The client (bench/lib/prober) opens a connection to
 * the VIP every 5 ms and records each 220 banner and the node it names.
 *
 * A trial: wait until the cluster is stable (one namespace has the VIP, the
 * last second of banners all came from it, every daemon ran its settle time),
 * let the prober SIGKILL the holder's daemon (so the kill and the banners share
 * one monotonic clock), and measure from the kill to the first banner from
 * another node. Then restart the killed daemon as it is: the VIP alias a killed
 * daemon leaves behind stays in its namespace, as a real restart on the same
 * host would find it, and the daemon's own start-up must deal with it; only if
 * it never does is the alias removed by hand, and that is counted
 * (`leftoverRemovedByBench`).
 *
 *   node dist/bench/failover.js [--trials N] [--quick] [--systems id,id]
 *   FAILOVER_TRIALS=N FAILOVER_SYSTEMS=mtavip,keepalived node dist/bench/failover.js
 * System ids: mtavip, mtavip-fast, keepalived, keepalived-fast, ucarp, mtavip-term.
 * --quick: 5 trials and a 2 s idle window (FAILOVER_IDLE_MS sets it; default 10 s). Needs root (namespaces).
 *
 * Prints one JSON line and a table; writes bench/results/failover.json and
 * bench/results/failover.svg.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, vip4, waitFor, type LabProcess } from '../test/netns/harness';
import { writeFailoverChart } from './lib/chart';
import { failoverMarkdown, updateReadme } from './lib/readme-table';
import type { Attempt, TrialReport } from './lib/prober';
import { KeepalivedSystem, killAllDaemonsSync, MtaVipSystem, UcarpSystem, type FailoverSystem, type NodeEvent } from './lib/systems';

const NODES = ['n1', 'n2', 'n3'];
const VIP = vip4(1);
const PROBE_INTERVAL_MS = 5;
const CONNECT_TIMEOUT_MS = 1000;
/** A trial fails when no banner from another node arrives within this. */
const TRIAL_TIMEOUT_MS = 10_000;
const TIMELINE_MS = 300;
const STABLE_WINDOW_MS = 1000;
const STABLE_TIMEOUT_MS = 30_000;
const RUN_BUDGET_MS = 25 * 60_000;
/** FAILOVER_RESULTS_DIR: where failover.json and failover.svg go (default bench/results of this tree). */
const RESULTS_DIR = process.env.FAILOVER_RESULTS_DIR ?? path.resolve(__dirname, '..', '..', 'bench', 'results');
const SYSTEM_IDS = ['mtavip', 'mtavip-fast', 'keepalived', 'keepalived-fast', 'ucarp', 'mtavip-term'] as const;
type SystemId = (typeof SYSTEM_IDS)[number];
/** mta-vip's fast timers; FAILOVER_FAST_TIMERS=10/40 tries others (heartbeat/dead-after ms). */
const FAST_TIMERS = (() => {
  const [heartbeatMs, deadAfterMs] = (process.env.FAILOVER_FAST_TIMERS ?? '20/80').split('/').map(Number);
  if (!Number.isInteger(heartbeatMs) || !Number.isInteger(deadAfterMs)) throw new TypeError('FAILOVER_FAST_TIMERS must look like 20/80');
  return { heartbeatMs: heartbeatMs as number, deadAfterMs: deadAfterMs as number };
})();

interface Settings {
  trials: number;
  idleMs: number;
  systems: SystemId[];
}

export interface Stats {
  n: number;
  min: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

export interface TrialResult {
  trial: number;
  from: string;
  to: string | null;
  /** Kill → first banner from another node (ms); null: failed. */
  failoverMs: number | null;
  /** Kill → TCP handshake of the connection that brought that banner. */
  connectedMs: number | null;
  /** Longest time without any banner around the kill. */
  maxGapMs: number | null;
  lastOldMs: number | null;
  outcomes: Record<string, number>;
  /** The daemons' own view, ms after the kill (wall clock): detection, MASTER/acquired… */
  breakdown: Record<string, number | null>;
  /** Banner node changes seen between the previous trial and this one: flaps. */
  flapsBefore: number;
  leftoverRemovedByBench: boolean;
}

export interface SystemResult {
  id: SystemId;
  name: string;
  skipped?: string;
  setup: Record<string, unknown>;
  idle?: { ms: number; holderChanges: number; daemonEvents: number };
  failover?: Stats | null;
  connected?: Stats | null;
  gap?: Stats | null;
  breakdown?: Record<string, Stats | null>;
  failed?: number;
  flaps?: number;
  leftoverRemovedByBench?: number;
  trials?: TrialResult[];
  /** The timeline of the trial nearest the median. */
  timeline?: { trial: number; from: string; to: string | null; failoverMs: number | null; attempts: Attempt[] };
  seconds?: number;
  error?: string;
}

function settings(): Settings {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick') || process.env.FAILOVER_QUICK === '1';
  const arg = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const trials = Number(arg('--trials') ?? process.env.FAILOVER_TRIALS ?? (quick ? 5 : 30));
  if (!Number.isInteger(trials) || trials < 1 || trials > 1000) throw new RangeError(`trials must be an integer 1..1000, got ${trials}`);
  const list = (arg('--systems') ?? process.env.FAILOVER_SYSTEMS ?? SYSTEM_IDS.join(',')).split(',').map((s) => s.trim()).filter(Boolean);
  for (const id of list) if (!(SYSTEM_IDS as readonly string[]).includes(id)) throw new TypeError(`unknown system ${id}; known: ${SYSTEM_IDS.join(', ')}`);
  const idleMs = Number(process.env.FAILOVER_IDLE_MS ?? (quick ? 2000 : 10_000));
  if (!Number.isInteger(idleMs) || idleMs < 0 || idleMs > 600_000) throw new RangeError(`FAILOVER_IDLE_MS must be 0..600000, got ${idleMs}`);
  return { trials, idleMs, systems: list as SystemId[] };
}

export function stats(values: number[]): Stats | null {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  // Nearest rank: the smallest value with at least p % of the samples at or below it.
  const rank = (p: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
  const round = (v: number): number => Math.round(v * 10) / 10;
  return {
    n: sorted.length,
    min: round(sorted[0] as number),
    p50: round(rank(50)),
    p95: round(rank(95)),
    p99: round(rank(99)),
    max: round(sorted[sorted.length - 1] as number),
    mean: round(sorted.reduce((a, b) => a + b, 0) / sorted.length),
  };
}

/** Installs keepalived and ucarp when absent; returns why a tool is unavailable, per tool. */
function ensureTools(): Record<string, string | undefined> {
  const has = (command: string): boolean => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
  const wanted = ['keepalived', 'ucarp'];
  const missing = wanted.filter((tool) => !has(tool));
  if (missing.length) {
    console.error(`failover: installing ${missing.join(' ')} with apt-get`);
    let result = spawnSync('apt-get', ['install', '-y', ...missing], { stdio: 'ignore', timeout: 300_000 });
    if (result.status !== 0) {
      spawnSync('apt-get', ['update'], { stdio: 'ignore', timeout: 300_000 });
      result = spawnSync('apt-get', ['install', '-y', ...missing], { stdio: 'ignore', timeout: 300_000 });
    }
  }
  const why: Record<string, string | undefined> = {};
  for (const tool of wanted) why[tool] = has(tool) ? undefined : `${tool} is not installed and apt-get install ${tool} failed`;
  return why;
}

/** The prober in the client namespace, with request/reply over IPC. */
class Prober {
  private nextId = 1;
  constructor(readonly proc: LabProcess) {}

  async request<T>(message: Record<string, unknown>, type: string, timeoutMs = 5000): Promise<T> {
    const id = this.nextId++;
    this.proc.send({ ...message, id });
    return this.proc.nextMessage<T>((m: any) => m.id === id && (m.type === type || m.type === `${type}-error`), timeoutMs);
  }

  steady(windowMs: number): Promise<{ counts: Record<string, number>; failures: number; attempts: number }> {
    return this.request({ cmd: 'steady', windowMs }, 'steady');
  }

  async changes(sinceMs: number): Promise<number> {
    const reply = await this.request<{ changes: unknown[] }>({ cmd: 'changes', sinceMs }, 'changes');
    return reply.changes.length;
  }

  async kill(pid: number, group: boolean, signal: string, fromNode: string): Promise<TrialReport> {
    const reply = await this.request<TrialReport & { type: string; message?: string }>(
      { cmd: 'kill', pid, group, signal, fromNode, timeoutMs: TRIAL_TIMEOUT_MS, timelineMs: TIMELINE_MS },
      'trial',
      TRIAL_TIMEOUT_MS + TIMELINE_MS + 5000,
    );
    if (reply.type !== 'trial') throw new Error(`prober could not kill ${pid}: ${reply.message}`);
    return reply;
  }
}

async function holdersOf(lab: Lab): Promise<string[]> {
  const out: string[] = [];
  for (const node of NODES) if ((await lab.addresses(node)).some((a) => a.address === VIP)) out.push(node);
  return out;
}

/**
 * Waits until exactly one namespace has the VIP, the last second of banners all
 * came from it (and no failed attempt), and every daemon has run its settle time.
 * A killed daemon's alias that outlives its restart (and settle) by 2 s while the
 * banners are steady elsewhere is removed by hand, and reported.
 */
async function waitStable(lab: Lab, system: FailoverSystem, prober: Prober): Promise<{ holder: string; leftoverRemoved: boolean }> {
  let leftoverRemoved = false;
  const holder = await waitFor(
    async () => {
      const running = NODES.map((n) => system.runningForMs(n));
      if (running.some((ms) => ms === null || ms < system.settleMs)) return null;
      const steady = await prober.steady(STABLE_WINDOW_MS);
      const bannerNodes = Object.keys(steady.counts);
      if (bannerNodes.length !== 1 || steady.failures > 0) return null;
      const banner = bannerNodes[0] as string;
      if ((steady.counts[banner] ?? 0) < STABLE_WINDOW_MS / PROBE_INTERVAL_MS / 4) return null;
      const holders = await holdersOf(lab);
      if (holders.length === 1 && holders[0] === banner) return banner;
      const settledLongAgo = running.every((ms) => (ms as number) >= system.settleMs + 2000);
      if (holders.includes(banner) && settledLongAgo) {
        for (const stale of holders.filter((h) => h !== banner)) {
          await lab.exec(stale, ['ip', 'addr', 'del', `${VIP}/32`, 'dev', 'eth0'], { allowFailure: true });
          leftoverRemoved = true;
        }
      }
      return null;
    },
    { timeoutMs: STABLE_TIMEOUT_MS, intervalMs: 100, what: `${system.name}: one holder of ${VIP} and steady banners from it` },
  );
  return { holder, leftoverRemoved };
}

/** The daemons' own events after the kill, as ms after it (wall clock). */
function breakdownOf(system: FailoverSystem, report: TrialReport, events: NodeEvent[]): Record<string, number | null> {
  const to = report.firstNew?.node;
  const after = (e: NodeEvent): number => Math.round((e.wallMs - report.killWallMs) * 10) / 10;
  if (system.kind === 'mta-vip') {
    const down = events.find((e) => e.name === 'peer-down' && e.node === to && (e.data as { node?: string })?.node === report.fromNode);
    const acquired = events.find((e) => e.name === 'acquired' && e.node === to);
    const data = acquired?.data as { tookMs?: number; probeMs?: number } | undefined;
    return {
      peerDownMs: down ? after(down) : null,
      acquireStartMs: acquired && data?.tookMs !== undefined ? Math.round((after(acquired) - data.tookMs) * 10) / 10 : null,
      acquiredMs: acquired ? after(acquired) : null,
      acquireTookMs: data?.tookMs ?? null,
      probeMs: data?.probeMs ?? null,
    };
  }
  const master = events.find((e) => e.name === 'MASTER' && e.node === to);
  return { masterMs: master ? after(master) : null };
}

function makeSystem(id: SystemId, lab: Lab, tmp: string): FailoverSystem {
  const dir = fs.mkdtempSync(path.join(tmp, `${id}-`));
  switch (id) {
    case 'mtavip':
      return new MtaVipSystem(lab, 'mta-vip 50/200 (defaults)', NODES, VIP, undefined);
    case 'mtavip-fast':
      return new MtaVipSystem(lab, `mta-vip ${FAST_TIMERS.heartbeatMs}/${FAST_TIMERS.deadAfterMs}`, NODES, VIP, FAST_TIMERS);
    case 'mtavip-term':
      return new MtaVipSystem(lab, 'mta-vip 50/200 SIGTERM', NODES, VIP, undefined, 'SIGTERM');
    case 'keepalived':
      return new KeepalivedSystem(lab, 'keepalived advert_int 1 (VRRPv2)', NODES, VIP, dir, { version: 2, advertInt: '1' });
    case 'keepalived-fast':
      return new KeepalivedSystem(lab, 'keepalived advert_int 0.01 (VRRPv3)', NODES, VIP, dir, { version: 3, advertInt: '0.01' });
    case 'ucarp':
      return new UcarpSystem(lab, 'ucarp advbase 1', NODES, VIP, dir, 1);
  }
}

async function measureSystem(id: SystemId, lab: Lab, prober: Prober, tmp: string, config: Settings, deadline: number): Promise<SystemResult> {
  const started = Date.now();
  const system = makeSystem(id, lab, tmp);
  const result: SystemResult = { id, name: system.name, setup: system.describe() };
  try {
    await Promise.all(NODES.map((node) => system.start(node)));
    await waitStable(lab, system, prober);

    // Idle: nothing is killed; any holder change or daemon event is a false failover.
    const idleStart = Date.now();
    await new Promise((resolve) => setTimeout(resolve, config.idleMs));
    result.idle = {
      ms: config.idleMs,
      holderChanges: await prober.changes(Date.now() - idleStart),
      daemonEvents: system.eventsSince(idleStart).length,
    };

    const trials: TrialResult[] = [];
    const timelines = new Map<number, TrialReport>();
    let checkpoint = Date.now();
    for (let trial = 1; trial <= config.trials && Date.now() < deadline; trial++) {
      const { holder, leftoverRemoved } = await waitStable(lab, system, prober);
      const flapsBefore = await prober.changes(Date.now() - checkpoint);
      const victim = system.victim(holder);
      const report = await prober.kill(victim.pid, victim.group, system.signal, holder);
      checkpoint = Date.now();
      await system.exited(holder, 10_000);
      // Scripts and IPC events may trail the banner a little.
      await new Promise((resolve) => setTimeout(resolve, 50));
      const events = system.eventsSince(report.killWallMs - 5);
      trials.push({
        trial,
        from: holder,
        to: report.firstNew?.node ?? null,
        failoverMs: report.firstNew?.bannerMs ?? null,
        connectedMs: report.firstNew?.connectedMs ?? null,
        maxGapMs: report.maxGapMs,
        lastOldMs: report.lastOldMs,
        outcomes: report.outcomes,
        breakdown: breakdownOf(system, report, events),
        flapsBefore,
        leftoverRemovedByBench: leftoverRemoved,
      });
      timelines.set(trial, report);
      await system.start(holder);
    }
    const ok = trials.filter((t) => t.failoverMs !== null);
    result.trials = trials;
    result.failed = trials.length - ok.length;
    result.failover = stats(ok.map((t) => t.failoverMs as number));
    result.connected = stats(ok.flatMap((t) => (t.connectedMs === null ? [] : [t.connectedMs])));
    result.gap = stats(ok.flatMap((t) => (t.maxGapMs === null ? [] : [t.maxGapMs])));
    result.breakdown = {};
    for (const key of Object.keys(ok[0]?.breakdown ?? {})) {
      result.breakdown[key] = stats(ok.flatMap((t) => (typeof t.breakdown[key] === 'number' ? [t.breakdown[key] as number] : [])));
    }
    result.flaps = trials.reduce((sum, t) => sum + t.flapsBefore, 0);
    result.leftoverRemovedByBench = trials.filter((t) => t.leftoverRemovedByBench).length;
    const median = result.failover?.p50;
    const nearest = [...ok].sort((a, b) => Math.abs((a.failoverMs as number) - (median ?? 0)) - Math.abs((b.failoverMs as number) - (median ?? 0)))[0] ?? trials[0];
    if (nearest) {
      const report = timelines.get(nearest.trial) as TrialReport;
      result.timeline = { trial: nearest.trial, from: nearest.from, to: nearest.to, failoverMs: nearest.failoverMs, attempts: report.timeline };
    }
  } catch (error) {
    result.error = (error as Error).message.slice(0, 4000);
  } finally {
    await system.stop();
    // What a killed daemon left behind must not leak into the next system.
    for (const node of NODES) await lab.exec(node, ['ip', 'addr', 'del', `${VIP}/32`, 'dev', 'eth0'], { allowFailure: true });
    result.seconds = Math.round((Date.now() - started) / 100) / 10;
  }
  return result;
}

function git(args: string[]): string {
  const result = spawnSync('git', args, { cwd: path.resolve(__dirname, '..', '..'), encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : `unknown (${result.stderr.trim()})`;
}

function fmt(v: number | null | undefined): string {
  return v === null || v === undefined ? '-' : String(Math.round(v));
}

function table(results: SystemResult[]): string {
  const head = ['system', 'n', 'p50', 'p95', 'p99', 'max', 'failed', 'gap p50', 'idle flips', 'flaps'];
  const rows = results.map((r) =>
    r.skipped || r.error
      ? [r.name, r.skipped ? `skipped: ${r.skipped}` : `error: ${r.error?.split('\n')[0]?.slice(0, 100)}`]
      : [r.name, String(r.trials?.length ?? 0), fmt(r.failover?.p50), fmt(r.failover?.p95), fmt(r.failover?.p99), fmt(r.failover?.max), String(r.failed), fmt(r.gap?.p50), String(r.idle?.holderChanges ?? '-'), String(r.flaps ?? '-')],
  );
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r.length === head.length ? (r[i] ?? '').length : 0))));
  const line = (cells: string[]): string => (cells.length === head.length ? cells.map((c, i) => c.padEnd(widths[i] as number)).join('  ') : cells.join('  '));
  return ['failover: kill of the holder → first 220 banner from another node (ms)', line(head), ...rows.map(line)].join('\n');
}

/** Runs the whole comparison; returns the JSON result (also written to bench/results/). */
export async function run(): Promise<object> {
  const config = settings();
  const started = Date.now();
  const deadline = started + RUN_BUDGET_MS;
  const unavailable = ensureTools();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mta-vip-failover-'));
  const onExit = (): void => killAllDaemonsSync();
  process.on('exit', onExit);
  const onSignal = (signal: NodeJS.Signals): void => {
    killAllDaemonsSync();
    process.removeListener(signal, onSignal);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);

  const lab = await Lab.create({ hosts: [...NODES, 'client'], ipv6: false });
  const results: SystemResult[] = [];
  try {
    const proberProc = lab.spawnNode('client', path.join(__dirname, 'lib', 'prober.js'), [
      JSON.stringify({ ip: VIP, port: 2525, intervalMs: PROBE_INTERVAL_MS, timeoutMs: CONNECT_TIMEOUT_MS }),
    ]);
    await proberProc.nextMessage((m: any) => m.type === 'ready', 10_000);
    const prober = new Prober(proberProc);
    for (const id of config.systems) {
      const tool = id.startsWith('keepalived') ? 'keepalived' : id === 'ucarp' ? 'ucarp' : undefined;
      const why = tool ? unavailable[tool] : undefined;
      if (why) {
        results.push({ id, name: id, skipped: why, setup: {} });
        continue;
      }
      if (Date.now() >= deadline) {
        results.push({ id, name: id, skipped: 'run budget exhausted', setup: {} });
        continue;
      }
      console.error(`failover: ${id} …`);
      const result = await measureSystem(id, lab, prober, tmp, config, deadline);
      console.error(`failover: ${id} done in ${result.seconds} s: p50 ${fmt(result.failover?.p50)} ms, failed ${result.failed ?? '-'}${result.error ? `, error ${result.error.slice(0, 300)}` : ''}`);
      results.push(result);
    }
  } finally {
    await lab.destroy();
    killAllDaemonsSync();
    process.removeListener('exit', onExit);
    // FAILOVER_KEEP_TMP=1 keeps the filled configs and daemon logs for a look.
    if (process.env.FAILOVER_KEEP_TMP === '1') console.error(`failover: configs and logs kept in ${tmp}`);
    else fs.rmSync(tmp, { recursive: true, force: true });
  }

  const output = {
    bench: 'failover',
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, kernel: os.release(), node: process.version },
    // What was measured: the runtime in dist/ built from this commit, plus any uncommitted lib/ changes.
    // FAILOVER_SOURCE names a snapshot built elsewhere (a clean `git archive` of a commit).
    source: process.env.FAILOVER_SOURCE ?? { commit: git(['rev-parse', '--short', 'HEAD']), libDirty: git(['status', '--porcelain', '--', 'lib', 'native']) !== '' },
    vip: VIP,
    trialsPerSystem: config.trials,
    probe: { intervalMs: PROBE_INTERVAL_MS, connectTimeoutMs: CONNECT_TIMEOUT_MS, trialTimeoutMs: TRIAL_TIMEOUT_MS },
    peerSmtpBinding: 'smtp-server listening on 0.0.0.0:2525 in every server namespace all the time (no ip_nonlocal_bind); it answers on the VIP wherever the kernel has the VIP',
    leftoverAliases: 'a killed daemon\'s VIP alias is left in place; the restarted daemon\'s own start-up must remove it (mta-vip: boot removes leftovers; ucarp: downscript at start; keepalived: its own start-up). The bench removes one by hand only if it outlives the restart by settle + 2 s, counted in leftoverRemovedByBench',
    runSeconds: Math.round((Date.now() - started) / 100) / 10,
    systems: results,
  };
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  fs.writeFileSync(path.join(RESULTS_DIR, 'failover.json'), `${JSON.stringify(output, null, 1)}\n`);
  writeFailoverChart(output, path.join(RESULTS_DIR, 'failover.svg'));
  // A full run (every system, 30+ trials) is what the README claims; quick runs leave it alone.
  if (config.trials >= 30 && results.every((r) => !r.skipped && !r.error)) {
    updateReadme(path.join(__dirname, '..', '..', 'README.md'), failoverMarkdown(output as Parameters<typeof failoverMarkdown>[0]));
  }
  return output;
}

if (require.main === module) {
  run().then(
    (output) => {
      const slim = { ...(output as Record<string, unknown>), systems: (output as { systems: SystemResult[] }).systems.map(({ trials: _t, timeline: _l, ...rest }) => rest) };
      console.log(JSON.stringify(slim));
      console.log(table((output as { systems: SystemResult[] }).systems));
    },
    (error: Error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
