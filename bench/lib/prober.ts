/**
 * Fixture run in the lab's client namespace by bench/failover: the SMTP client
 * that sees a failover the way a sending MTA would.
 *   node prober.js '{"ip":"198.18.1.1","port":2525,"intervalMs":5,"timeoutMs":1000}'
 *
 * Every `intervalMs` it opens a new TCP connection to ip:port, waits for the
 * first line, and records when the 220 banner arrived and which node sent it
 * (the banner's last word). It also performs the kill on command, so the kill
 * time and every banner time come from one monotonic clock
 * (performance.now() of this process); namespaces here are network-only, so a
 * pid of a process in another namespace is valid here.
 *
 * IPC commands (replies carry the same `id`):
 *   { cmd: 'steady', id, windowMs }  -> { type: 'steady', id, counts: {node: n}, failures, last }
 *   { cmd: 'changes', id, sinceMs }  -> { type: 'changes', id, changes: [{ at, from, to }] }  (banner node changes)
 *   { cmd: 'kill', id, pid, group, signal, fromNode, timeoutMs, timelineMs }
 *        -> { type: 'trial', id, ...TrialReport }
 *   { cmd: 'attempts', id, sinceWallMs }  -> { type: 'attempts', id, attempts: Attempt[] }
 *        (attempts ended since then, times on the wall clock, Date.now() scale, for
 *        benchmarks whose event of interest happens in another process)
 */
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';

interface Options {
  ip: string;
  port: number;
  intervalMs: number;
  timeoutMs: number;
}

/** One connection attempt, on the monotonic clock of this process (ms). */
export interface Attempt {
  /** When the connection was opened. */
  start: number;
  /** When it ended: banner received, refused, reset or timed out. */
  end: number;
  outcome: 'banner' | 'refused' | 'timeout' | 'error';
  /** TCP handshake done (absent when it never connected). */
  connected?: number;
  /** Node named in the banner. */
  node?: string;
  /** errno code for 'error' / 'refused'. */
  code?: string;
}

/** What one kill produced, times in ms relative to the kill. */
export interface TrialReport {
  signal: string;
  fromNode: string;
  /** Date.now() at the kill, to place the nodes' own (wall-clock) events on this clock. */
  killWallMs: number;
  /** null when no banner from another node came within timeoutMs. */
  firstNew: { node: string; bannerMs: number; connectStartMs: number; connectedMs: number | null } | null;
  /** The last banner from the killed node (relative; negative when before the kill). */
  lastOldMs: number | null;
  /** Longest time between two consecutive banners (any node) from the last one before the kill to firstNew. */
  maxGapMs: number | null;
  /** Attempts that ended between the kill and firstNew, by outcome. */
  outcomes: Record<string, number>;
  /** Every attempt ending within [-timelineMs, firstNew + timelineMs], relative to the kill. */
  timeline: Attempt[];
}

const options = JSON.parse(process.argv[2] ?? '{}') as Options;
const HISTORY_MS = 120_000;
const MAX_IN_FLIGHT = 400;

const attempts: Attempt[] = [];
let inFlight = 0;
let skipped = 0;
const changes: Array<{ at: number; from: string; to: string }> = [];
let lastNode: string | null = null;
/** While a kill is being measured the history is not trimmed, so indices into it stay valid. */
let measuring = false;

function send(message: unknown): void {
  if (process.connected) process.send?.(message);
}

function record(attempt: Attempt): void {
  attempts.push(attempt);
  if (attempt.outcome === 'banner' && attempt.node) {
    if (lastNode !== null && attempt.node !== lastNode) changes.push({ at: attempt.end, from: lastNode, to: attempt.node });
    lastNode = attempt.node;
  }
  // Bounded history: drop what is older than HISTORY_MS (checked cheaply from the front).
  const horizon = attempt.end - HISTORY_MS;
  let drop = 0;
  while (drop < attempts.length && (attempts[drop] as Attempt).end < horizon) drop++;
  if (drop > 1000 && !measuring) attempts.splice(0, drop);
  while (changes.length > 10_000) changes.shift();
}

function attempt(): void {
  if (inFlight >= MAX_IN_FLIGHT) {
    skipped++;
    return;
  }
  inFlight++;
  const start = performance.now();
  const current: Attempt = { start, end: start, outcome: 'error' };
  let buffered = '';
  let done = false;
  const socket = net.connect({ host: options.ip, port: options.port });
  const finish = (outcome: Attempt['outcome'], extra: Partial<Attempt> = {}): void => {
    if (done) return;
    done = true;
    inFlight--;
    Object.assign(current, extra, { outcome, end: performance.now() });
    socket.destroy();
    record(current);
  };
  socket.setTimeout(options.timeoutMs, () => finish('timeout'));
  socket.on('connect', () => {
    current.connected = performance.now();
  });
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    const eol = buffered.indexOf('\n');
    if (eol < 0) {
      if (buffered.length > 4096) finish('error', { code: 'LONG_LINE' });
      return;
    }
    const line = buffered.slice(0, eol).trim();
    if (!line.startsWith('220')) return finish('error', { code: `REPLY_${line.slice(0, 3)}` });
    finish('banner', { node: line.split(/\s+/).pop() ?? '?' });
  });
  socket.on('error', (error: NodeJS.ErrnoException) => finish(error.code === 'ECONNREFUSED' ? 'refused' : 'error', { code: error.code ?? 'ERROR' }));
  socket.on('close', () => finish('error', { code: 'CLOSED_BEFORE_BANNER' }));
}

const ticker = setInterval(attempt, options.intervalMs);

function steady(windowMs: number): { counts: Record<string, number>; failures: number; last: string | null; attempts: number; skipped: number } {
  const from = performance.now() - windowMs;
  const counts: Record<string, number> = {};
  let failures = 0;
  let total = 0;
  for (let i = attempts.length - 1; i >= 0; i--) {
    const a = attempts[i] as Attempt;
    if (a.end < from) break;
    total++;
    if (a.outcome === 'banner' && a.node) counts[a.node] = (counts[a.node] ?? 0) + 1;
    else failures++;
  }
  return { counts, failures, last: lastNode, attempts: total, skipped };
}

interface KillCommand {
  id: number;
  pid: number;
  group: boolean;
  signal: NodeJS.Signals;
  fromNode: string;
  timeoutMs: number;
  timelineMs: number;
}

async function kill(command: KillCommand): Promise<TrialReport> {
  measuring = true;
  try {
    return await measureKill(command);
  } finally {
    measuring = false;
  }
}

async function measureKill(command: KillCommand): Promise<TrialReport> {
  const firstIndex = attempts.length;
  const killAt = performance.now();
  const killWallMs = Date.now();
  process.kill(command.group ? -command.pid : command.pid, command.signal);
  let found: Attempt | null = null;
  // Poll our own history: bounded by timeoutMs.
  while (!found && performance.now() - killAt < command.timeoutMs) {
    await new Promise((resolve) => setTimeout(resolve, 2));
    for (let i = firstIndex; i < attempts.length; i++) {
      const a = attempts[i] as Attempt;
      if (a.outcome === 'banner' && a.node !== command.fromNode && a.end >= killAt) {
        found = a;
        break;
      }
    }
  }
  // Keep recording a little after, for the timeline.
  await new Promise((resolve) => setTimeout(resolve, command.timelineMs));
  const endAt = found ? found.end : killAt + command.timeoutMs;
  const rel = (t: number): number => Math.round((t - killAt) * 100) / 100;
  let lastOld: number | null = null;
  let previousBanner: number | null = null;
  let maxGap: number | null = null;
  const outcomes: Record<string, number> = {};
  const timeline: Attempt[] = [];
  for (const a of attempts) {
    if (a.end >= killAt - command.timelineMs && a.end <= endAt + command.timelineMs) {
      timeline.push({ ...a, start: rel(a.start), end: rel(a.end), ...(a.connected !== undefined ? { connected: rel(a.connected) } : {}) });
    }
    if (a.end > endAt) continue;
    if (a.outcome === 'banner' && a.node === command.fromNode) lastOld = a.end;
    if (a.end >= killAt) outcomes[a.outcome] = (outcomes[a.outcome] ?? 0) + 1;
    if (a.outcome === 'banner') {
      if (previousBanner !== null && a.end >= killAt) maxGap = Math.max(maxGap ?? 0, a.end - previousBanner);
      previousBanner = a.end;
    }
  }
  return {
    signal: command.signal,
    fromNode: command.fromNode,
    killWallMs,
    firstNew: found
      ? { node: found.node as string, bannerMs: rel(found.end), connectStartMs: rel(found.start), connectedMs: found.connected !== undefined ? rel(found.connected) : null }
      : null,
    lastOldMs: lastOld === null ? null : rel(lastOld),
    maxGapMs: maxGap === null ? null : Math.round(maxGap * 100) / 100,
    outcomes,
    timeline,
  };
}

process.on('message', (message: { cmd?: string; id?: number; windowMs?: number; sinceMs?: number; sinceWallMs?: number } & Partial<KillCommand>) => {
  if (message.cmd === 'steady') send({ type: 'steady', id: message.id, ...steady(message.windowMs ?? 1000) });
  if (message.cmd === 'changes') {
    const from = performance.now() - (message.sinceMs ?? 0);
    send({ type: 'changes', id: message.id, changes: changes.filter((c) => c.at >= from).map((c) => ({ ...c, at: Math.round(c.at) })) });
  }
  if (message.cmd === 'attempts') {
    // performance.timeOrigin + performance.now() is this process's wall clock.
    const from = (message.sinceWallMs ?? 0) - performance.timeOrigin;
    const wall = (t: number): number => Math.round((performance.timeOrigin + t) * 100) / 100;
    const since = attempts.filter((a) => a.end >= from).map((a) => ({ ...a, start: wall(a.start), end: wall(a.end), ...(a.connected !== undefined ? { connected: wall(a.connected) } : {}) }));
    send({ type: 'attempts', id: message.id, attempts: since });
  }
  if (message.cmd === 'kill') {
    kill(message as KillCommand).then(
      (report) => send({ type: 'trial', id: message.id, ...report }),
      (error: Error) => send({ type: 'trial-error', id: message.id, message: error.message }),
    );
  }
});

process.on('disconnect', () => {
  clearInterval(ticker);
  process.exit(0);
});
send({ type: 'ready' });
