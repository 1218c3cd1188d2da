/**
 * Planned move (issue 8): `mta-vip move <vip> <node>`, the window in which new
 * connections to the VIP fail, and whether any SMTP session in flight is cut.
 *
 * A Lab with n1, n2, n3 (the real runtime, cluster-node fixture, default
 * timers, admin endpoint on 127.0.0.1:7980 in each namespace) and a client.
 * In the client the prober (bench/lib/prober) opens a connection to the VIP
 * every 5 ms and records each banner or failure; bench/lib/slow-sessions keeps
 * sessions in the middle of DATA. A trial: wait until one node holds the VIP
 * and serves every probe; then the third node (neither holder nor target) runs
 * the CLI `mta-vip move <vip> <next node>`. Two kinds of trial alternate:
 *   - idle: nothing in flight but the prober;
 *   - busy: K sessions are mid-DATA (their body is written over dataMs) when
 *     the move is issued; each must still get its 250.
 * Measured, relative to the move (the issuing node's Date.now(), which the
 * CLI's reply carries as `seq`): first failed connection, first banner from
 * the new holder, the window between them (0 when nothing failed), failures
 * by kind, the old holder's 'released' and the new holder's 'acquired'
 * events; and for busy trials the sessions cut (anything but 250 after DATA).
 *
 *   node dist/bench/planned-move.js [--quick] [--trials N] [--sessions K] [--data-ms MS]
 * --quick: 2 trials of each kind (default 10). Needs root. Prints one JSON line
 * and a table; writes bench/results/planned-move.json.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, vip4, waitFor, type LabProcess } from '../test/netns/harness';
import { stats, type Stats } from './failover';
import type { Attempt } from './lib/prober';
import type { SessionReport } from './lib/slow-sessions';
import { MtaVipSystem } from './lib/systems';
import { benchArgs, formatTable, gitSource, RESULTS_DIR } from './lib/bench-common';

const NODES = ['n1', 'n2', 'n3'];
const VIP = vip4(1);
const PORT = 2525;
const ADMIN_PORT = 7980;
const PROBE_INTERVAL_MS = 5;
const CONNECT_TIMEOUT_MS = 1000;
const STABLE_WINDOW_MS = 1000;
/** A move that brings no banner from the target within this fails the trial. */
const MOVE_TIMEOUT_MS = 40_000;
const TIMELINE_MS = 300;
const CLI = path.resolve(__dirname, '..', 'lib', 'ops', 'cli.js');

type Kind = 'idle' | 'busy';

interface TrialResult {
  trial: number;
  kind: Kind;
  from: string;
  to: string;
  issuedOn: string;
  /** How long the CLI took (process start to exit). */
  cliMs: number;
  /** ms after the move; null: none. */
  firstFailureMs: number | null;
  firstNewBannerMs: number | null;
  lastOldBannerMs: number | null;
  /** First failed connection → first banner from the new holder; 0 when no connection failed. */
  windowMs: number | null;
  /** When the connection that brought the first banner from the new holder was opened. */
  firstNewConnectStartMs: number | null;
  /**
   * The same window by when connections were opened: from the opening of the first one that
   * failed to the opening of the first one the new holder greeted. Both ends move by about the
   * greeting delay: the first failures are connections opened up to ~100 ms before the move,
   * still waiting for the old holder's banner when it closed (421).
   */
  windowByOpenMs: number | null;
  failures: number;
  failuresByKind: Record<string, number>;
  releasedMs: number | null;
  acquiredMs: number | null;
  /** Busy trials: sessions mid-DATA at the move, and how many of them did not get 250. */
  sessions?: { inFlightAtMove: number; cut: number; finishedMsAfterMove: number | null; details: SessionReport[] };
  error?: string;
}

/** mta-vip nodes with the admin endpoint on, from the failover benchmark's system. */
class MoveSystem extends MtaVipSystem {
  override config(node: string): Record<string, unknown> {
    return { ...super.config(node), listeners: [`${VIP}:${PORT}`], fixture: { adminPort: ADMIN_PORT } };
  }
}

/** A client-namespace fixture spoken to over IPC, requests and replies matched by id. */
class Client {
  private nextId = 1;
  constructor(private readonly proc: LabProcess) {}

  /** Sends a command; returns its id. */
  send(message: Record<string, unknown>): number {
    const id = this.nextId++;
    this.proc.send({ ...message, id });
    return id;
  }

  /** The reply of `type` (or `${type}-error`) to command `id`. */
  reply<T>(id: number, type: string, timeoutMs = 5000): Promise<T & { type: string; message?: string }> {
    return this.proc.nextMessage<T & { type: string; message?: string }>((m: any) => m.id === id && (m.type === type || m.type === `${type}-error`), timeoutMs);
  }

  request<T>(message: Record<string, unknown>, type: string, timeoutMs = 5000): Promise<T & { type: string; message?: string }> {
    return this.reply<T>(this.send(message), type, timeoutMs);
  }
}

async function holders(lab: Lab): Promise<string[]> {
  const out: string[] = [];
  for (const node of NODES) if ((await lab.addresses(node)).some((a) => a.address === VIP)) out.push(node);
  return out;
}

/** One holder, and every probe of the last second got its banner. */
async function waitStable(lab: Lab, prober: Client): Promise<string> {
  return waitFor(
    async () => {
      const since = Date.now() - STABLE_WINDOW_MS;
      const { attempts } = await prober.request<{ attempts: Attempt[] }>({ cmd: 'attempts', sinceWallMs: since }, 'attempts');
      const nodes = new Set(attempts.map((a) => (a.outcome === 'banner' ? a.node : 'failed')));
      if (nodes.size !== 1 || nodes.has('failed') || attempts.length < STABLE_WINDOW_MS / PROBE_INTERVAL_MS / 4) return null;
      const h = await holders(lab);
      const node = [...nodes][0] as string;
      return h.length === 1 && h[0] === node ? node : null;
    },
    { timeoutMs: 30_000, intervalMs: 200, what: `one holder of ${VIP} and steady banners from it` },
  );
}

async function trial(lab: Lab, system: MoveSystem, prober: Client, sessions: Client, n: number, kind: Kind, options: { sessions: number; dataMs: number }): Promise<TrialResult> {
  const from = await waitStable(lab, prober);
  const to = NODES[(NODES.indexOf(from) + 1) % NODES.length] as string;
  const issuedOn = NODES.find((node) => node !== from && node !== to) as string;
  const result: TrialResult = {
    trial: n, kind, from, to, issuedOn, cliMs: 0,
    firstFailureMs: null, firstNewBannerMs: null, lastOldBannerMs: null, windowMs: null, firstNewConnectStartMs: null, windowByOpenMs: null, failures: 0, failuresByKind: {}, releasedMs: null, acquiredMs: null,
  };

  let sessionsDone: Promise<{ sessions: SessionReport[]; type: string; message?: string }> | null = null;
  if (kind === 'busy') {
    const id = sessions.send({ cmd: 'sessions', count: options.sessions, dataMs: options.dataMs, chunks: 20, timeoutMs: options.dataMs + 30_000 });
    sessionsDone = sessions.reply<{ sessions: SessionReport[] }>(id, 'sessions', options.dataMs + 40_000);
    // Move once every session is well inside DATA.
    await sessions.reply(id, 'in-data', 10_000);
    await new Promise((resolve) => setTimeout(resolve, options.dataMs / 4));
  }

  const cliStart = Date.now();
  const cli = await lab.exec(issuedOn, [process.execPath, CLI, 'move', VIP, to, '--url', `http://127.0.0.1:${ADMIN_PORT}`], { timeoutMs: 10_000 });
  const cliEnd = Date.now();
  result.cliMs = cliEnd - cliStart;
  const reply = JSON.parse(cli.stdout) as { seq: number; from: string | null };
  // seq is the issuing node's Date.now() at the move (the same clock as ours).
  const moveAt = reply.seq >= cliStart && reply.seq <= cliEnd ? reply.seq : cliStart;

  // Bounded wait for the first banner from the new holder.
  const deadline = moveAt + MOVE_TIMEOUT_MS;
  let attempts: Attempt[] = [];
  for (;;) {
    ({ attempts } = await prober.request<{ attempts: Attempt[] }>({ cmd: 'attempts', sinceWallMs: moveAt - TIMELINE_MS }, 'attempts'));
    if (attempts.some((a) => a.outcome === 'banner' && a.node === to && a.end >= moveAt)) break;
    if (Date.now() > deadline) {
      result.error = `no banner from ${to} within ${MOVE_TIMEOUT_MS} ms of the move`;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await new Promise((resolve) => setTimeout(resolve, TIMELINE_MS));
  ({ attempts } = await prober.request<{ attempts: Attempt[] }>({ cmd: 'attempts', sinceWallMs: moveAt - TIMELINE_MS }, 'attempts'));

  const rel = (t: number): number => Math.round((t - moveAt) * 10) / 10;
  const after = attempts.filter((a) => a.end >= moveAt).sort((a, b) => a.end - b.end);
  const firstNew = after.find((a) => a.outcome === 'banner' && a.node === to);
  const until = firstNew?.end ?? Infinity;
  const failed = after.filter((a) => a.outcome !== 'banner' && a.end <= until);
  result.failures = failed.length;
  for (const a of failed) {
    const key = a.outcome === 'error' ? (a.code ?? 'error') : a.outcome;
    result.failuresByKind[key] = (result.failuresByKind[key] ?? 0) + 1;
  }
  const oldBanners = attempts.filter((a) => a.outcome === 'banner' && a.node === from);
  result.lastOldBannerMs = oldBanners.length ? rel(Math.max(...oldBanners.map((a) => a.end))) : null;
  result.firstFailureMs = failed[0] ? rel(failed[0].end) : null;
  result.firstNewBannerMs = firstNew ? rel(firstNew.end) : null;
  if (firstNew) {
    result.windowMs = failed[0] ? Math.round((firstNew.end - failed[0].end) * 10) / 10 : 0;
    result.firstNewConnectStartMs = rel(firstNew.start);
    const firstFailedOpen = failed.length ? Math.min(...failed.map((a) => a.start)) : null;
    result.windowByOpenMs = firstFailedOpen === null ? 0 : Math.round(Math.max(0, firstNew.start - firstFailedOpen) * 10) / 10;
  }

  const events = system.eventsSince(moveAt - 5);
  const released = events.find((e) => e.name === 'released' && e.node === from);
  const acquired = events.find((e) => e.name === 'acquired' && e.node === to);
  result.releasedMs = released ? rel(released.wallMs) : null;
  result.acquiredMs = acquired ? rel(acquired.wallMs) : null;

  if (sessionsDone) {
    const done = await sessionsDone;
    if (done.type !== 'sessions') throw new Error(`slow sessions: ${done.message}`);
    const inFlight = done.sessions.filter((s) => s.dataAt !== null && s.dataAt <= moveAt && (s.finalReply === null || s.endAt >= moveAt));
    result.sessions = {
      inFlightAtMove: inFlight.length,
      cut: done.sessions.filter((s) => !s.finalReply?.startsWith('250')).length,
      finishedMsAfterMove: done.sessions.length ? rel(Math.max(...done.sessions.map((s) => s.endAt))) : null,
      details: done.sessions,
    };
  }
  return result;
}

function summarize(trials: TrialResult[], kind: Kind): Record<string, unknown> {
  const ok = trials.filter((t) => t.kind === kind && !t.error);
  const pick = (f: (t: TrialResult) => number | null): Stats | null => stats(ok.flatMap((t) => (f(t) === null ? [] : [f(t) as number])));
  return {
    trials: trials.filter((t) => t.kind === kind).length,
    failed: trials.filter((t) => t.kind === kind && t.error).length,
    windowMs: pick((t) => t.windowMs),
    windowByOpenMs: pick((t) => t.windowByOpenMs),
    firstNewBannerMs: pick((t) => t.firstNewBannerMs),
    releasedMs: pick((t) => t.releasedMs),
    acquiredMs: pick((t) => t.acquiredMs),
    failedConnections: pick((t) => t.failures),
    trialsWithoutFailedConnection: ok.filter((t) => t.failures === 0).length,
    ...(kind === 'busy'
      ? {
          sessionsInFlight: ok.reduce((sum, t) => sum + (t.sessions?.inFlightAtMove ?? 0), 0),
          sessionsCut: ok.reduce((sum, t) => sum + (t.sessions?.cut ?? 0), 0),
          lastSessionDoneMs: pick((t) => t.sessions?.finishedMsAfterMove ?? null),
        }
      : {}),
  };
}

function fmt(v: number | null | undefined): string {
  return v === null || v === undefined ? '-' : String(Math.round(v));
}

function table(trials: TrialResult[]): string {
  const head = ['trial', 'kind', 'move', 'first fail', 'new banner', 'window', 'by open', 'failed conns', 'released', 'acquired', 'in flight', 'cut'];
  const rows = trials.map((t) =>
    t.error
      ? [String(t.trial), t.kind, `error: ${t.error}`]
      : [String(t.trial), t.kind, `${t.from}→${t.to}`, fmt(t.firstFailureMs), fmt(t.firstNewBannerMs), fmt(t.windowMs), fmt(t.windowByOpenMs), String(t.failures), fmt(t.releasedMs), fmt(t.acquiredMs), t.sessions ? String(t.sessions.inFlightAtMove) : '-', t.sessions ? String(t.sessions.cut) : '-'],
  );
  return ['planned-move: mta-vip move <vip> <node>, ms after the move (window: first failed connection → first banner from the new holder)', formatTable(head, rows)].join('\n');
}

/** The SIGTERM (graceful shutdown of the holder) numbers from the last failover run, if any. */
function gracefulShutdownFromFailover(): unknown {
  try {
    const failover = JSON.parse(fs.readFileSync(path.join(RESULTS_DIR, 'failover.json'), 'utf8')) as { date: string; systems: Array<{ id: string; failover?: unknown; failed?: number; gap?: unknown }> };
    const term = failover.systems.find((s) => s.id === 'mtavip-term');
    return term ? { from: 'bench/results/failover.json', date: failover.date, killToFirstBannerMs: term.failover, failed: term.failed, gapMs: term.gap } : null;
  } catch {
    return null;
  }
}

/** Runs the trials; returns the JSON result (also written to bench/results/planned-move.json). */
export async function run(): Promise<object> {
  const args = benchArgs();
  const perKind = Number(args.value('--trials') ?? process.env.PLANNED_MOVE_TRIALS ?? (args.quick ? 2 : 10));
  const sessionCount = Number(args.value('--sessions') ?? 5);
  const dataMs = Number(args.value('--data-ms') ?? 2000);
  if (!Number.isInteger(perKind) || perKind < 1 || perKind > 200) throw new RangeError('--trials must be 1..200');
  if (!Number.isInteger(sessionCount) || sessionCount < 1 || sessionCount > 100) throw new RangeError('--sessions must be 1..100');
  if (!Number.isInteger(dataMs) || dataMs < 100 || dataMs > 20_000) throw new RangeError('--data-ms must be 100..20000');
  const started = Date.now();
  const trials: TrialResult[] = [];
  const lab = await Lab.create({ hosts: [...NODES, 'client'], ipv6: false });
  const system = new MoveSystem(lab, 'mta-vip planned move', NODES, VIP, undefined);
  try {
    const proberProc = lab.spawnNode('client', path.join(__dirname, 'lib', 'prober.js'), [
      JSON.stringify({ ip: VIP, port: PORT, intervalMs: PROBE_INTERVAL_MS, timeoutMs: CONNECT_TIMEOUT_MS }),
    ]);
    const sessionsProc = lab.spawnNode('client', path.join(__dirname, 'lib', 'slow-sessions.js'), [JSON.stringify({ ip: VIP, port: PORT })]);
    await Promise.all([proberProc, sessionsProc].map((p) => p.nextMessage((m: any) => m.type === 'ready', 10_000)));
    const prober = new Client(proberProc);
    const sessions = new Client(sessionsProc);
    await Promise.all(NODES.map((node) => system.start(node)));
    for (let n = 1; n <= perKind * 2; n++) {
      const kind: Kind = n % 2 ? 'idle' : 'busy';
      let result: TrialResult;
      try {
        result = await trial(lab, system, prober, sessions, n, kind, { sessions: sessionCount, dataMs });
      } catch (error) {
        result = { trial: n, kind, from: '?', to: '?', issuedOn: '?', cliMs: 0, firstFailureMs: null, firstNewBannerMs: null, lastOldBannerMs: null, windowMs: null, firstNewConnectStartMs: null, windowByOpenMs: null, failures: 0, failuresByKind: {}, releasedMs: null, acquiredMs: null, error: (error as Error).message.slice(0, 2000) };
      }
      console.error(`planned-move: trial ${n} ${kind} ${result.from}→${result.to}: window ${fmt(result.windowMs)} ms, new banner at ${fmt(result.firstNewBannerMs)} ms, ${result.failures} failed connections${result.sessions ? `, ${result.sessions.cut}/${result.sessions.inFlightAtMove} sessions cut` : ''}${result.error ? `, error ${result.error}` : ''}`);
      trials.push(result);
    }
  } finally {
    await system.stop();
    await lab.destroy();
  }
  const output = {
    bench: 'planned-move',
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, kernel: os.release(), node: process.version, loadavg1: Math.round((os.loadavg()[0] as number) * 100) / 100 },
    source: gitSource(),
    vip: VIP,
    setup: {
      nodes: NODES,
      timers: 'defaults',
      listenerDrain: 'SmtpListener defaults: drainMs 30000, idle sessions closed with 421 at once',
      probe: { intervalMs: PROBE_INTERVAL_MS, connectTimeoutMs: CONNECT_TIMEOUT_MS },
      busy: { sessions: sessionCount, dataMs, moveIssuedAfter: 'every session got 354, plus dataMs / 4' },
      trigger: 'mta-vip move <vip> <next node> (dist/lib/ops/cli.js) against the admin endpoint of the third node',
    },
    target: 'a planned move without a single cut session',
    summary: { idle: summarize(trials, 'idle'), busy: summarize(trials, 'busy') },
    targetMet: trials.every((t) => !t.error) && trials.every((t) => (t.sessions?.cut ?? 0) === 0),
    gracefulShutdown: gracefulShutdownFromFailover(),
    runSeconds: Math.round((Date.now() - started) / 100) / 10,
    trials,
  };
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  fs.writeFileSync(path.join(RESULTS_DIR, 'planned-move.json'), `${JSON.stringify(output, null, 1)}\n`);
  return output;
}

if (require.main === module) {
  run().then(
    (output) => {
      const { trials, ...rest } = output as { trials: TrialResult[] };
      console.log(JSON.stringify({ ...rest, trials: trials.map(({ sessions, ...t }) => ({ ...t, ...(sessions ? { sessions: { inFlightAtMove: sessions.inFlightAtMove, cut: sessions.cut, finishedMsAfterMove: sessions.finishedMsAfterMove } } : {}) })) }));
      console.log(table(trials));
    },
    (error: Error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
