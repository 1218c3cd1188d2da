/**
 * SMTP overhead (issue 8): messages per second through smtp-server on the VIP
 * with the cluster running, against the same smtp-server on the same address
 * with no cluster process anywhere, measured in one run.
 *
 * A Lab with n1, n2, n3 and a client. Both cases use one fixture
 * (bench/lib/smtp-node) with identical smtp-server options:
 *   (a) cluster: n1, n2, n3 run the runtime (default timers: heartbeats,
 *       address watch, ARP sniffer), all declaring the VIP with n1 preferred;
 *       the VIP's listener runs on n1;
 *   (b) plain: no cluster process; the VIP is added to n1 by hand and the
 *       fixture listens on it.
 * The client (bench/lib/smtp-load) keeps a few sessions open and sends
 * messages one command at a time, as fast as the server answers. Rounds
 * alternate a/b and b/a (to cancel drift on a shared machine); every phase
 * sends a warm-up batch first. n1's CPU time per message is read from /proc
 * in both cases too.
 *
 *   node dist/bench/smtp-overhead.js [--quick] [--rounds R] [--messages N]
 * --quick: 2 rounds of 2,000 messages (default 8 rounds of 20,000). Needs root.
 * Prints one JSON line and a table; writes bench/results/smtp-overhead.json.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, vip4, waitFor, type LabProcess } from '../test/netns/harness';
import { sampleProcess } from './lib/proc-usage';
import { benchArgs, formatTable, gitSource, median, RESULTS_DIR } from './lib/bench-common';

const NODES = ['n1', 'n2', 'n3'];
const VIP = vip4(1);
const PORT = 2525;
const CONNECTIONS = 4;
const BODY_BYTES = 1000;
const WARMUP_MESSAGES = 300;
const PHASE_TIMEOUT_MS = 120_000;

type Mode = 'cluster' | 'plain';

interface Phase {
  round: number;
  mode: Mode;
  messages: number;
  ms: number;
  perSecond: number;
  /** n1's server process CPU per message (user+system), microseconds. */
  serverCpuUsPerMessage: number;
  errors: string[];
}

interface LoadResult {
  messages: number;
  ms: number;
  perSecond: number;
  errors: string[];
  banner: string;
}

class Load {
  private nextId = 1;
  constructor(private readonly proc: LabProcess) {}

  async run(messages: number): Promise<LoadResult> {
    const id = this.nextId++;
    this.proc.send({ cmd: 'run', id, connections: CONNECTIONS, messages, bodyBytes: BODY_BYTES, timeoutMs: PHASE_TIMEOUT_MS });
    const reply = await this.proc.nextMessage<LoadResult & { type: string; message?: string }>((m: any) => m.id === id, PHASE_TIMEOUT_MS + 10_000);
    if (reply.type !== 'result') throw new Error(`load client: ${reply.message}`);
    return reply;
  }
}

function clusterConfig(lab: Lab, node: string): Record<string, unknown> {
  return {
    node,
    cluster: { id: 'bench-smtp', secret: 'bench smtp overhead secret', bind: lab.host(node).ipv4, peers: NODES.map((n) => lab.host(n).ipv4) },
    listeners: [`${VIP}:${PORT}`],
    vips: { [VIP]: { preferred: 'n1' } },
    topology: [{ cidr: '198.18.0.0/16', interface: 'eth0' }],
  };
}

async function holders(lab: Lab): Promise<string[]> {
  const out: string[] = [];
  for (const node of NODES) if ((await lab.addresses(node)).some((a) => a.address === VIP)) out.push(node);
  return out;
}

/** Starts the servers of one mode; resolves with n1's process once n1 serves the VIP. */
async function startMode(lab: Lab, mode: Mode, load: Load): Promise<LabProcess[]> {
  const script = path.join(__dirname, 'lib', 'smtp-node.js');
  const procs: LabProcess[] = [];
  if (mode === 'plain') {
    await lab.exec('n1', ['ip', 'addr', 'add', `${VIP}/32`, 'dev', 'eth0']);
    procs.push(lab.spawnNode('n1', script, [JSON.stringify({ mode, node: 'n1', ip: VIP, port: PORT })]));
  } else {
    for (const node of NODES) procs.push(lab.spawnNode(node, script, [JSON.stringify({ mode, node, ip: VIP, port: PORT, config: clusterConfig(lab, node) })]));
  }
  await Promise.all(procs.map((p) => p.nextMessage((m: any) => m.type === 'started', 20_000)));
  // Serving: n1 alone has the VIP and a session gets n1's banner.
  await waitFor(async () => {
    const h = await holders(lab);
    if (h.length !== 1 || h[0] !== 'n1') return false;
    const probe = await load.run(5);
    return probe.messages === 5 && probe.banner.endsWith('n1');
  }, { timeoutMs: 30_000, intervalMs: 200, what: `n1 serving ${VIP} (${mode})` });
  return procs;
}

async function stopMode(lab: Lab, mode: Mode, procs: LabProcess[]): Promise<void> {
  await Promise.all(procs.map((p) => p.stop(10_000)));
  if (mode === 'plain') await lab.exec('n1', ['ip', 'addr', 'del', `${VIP}/32`, 'dev', 'eth0'], { allowFailure: true });
  await waitFor(async () => (await holders(lab)).length === 0, { timeoutMs: 10_000, intervalMs: 100, what: `${VIP} gone from every node` });
}

async function phase(lab: Lab, load: Load, round: number, mode: Mode, messages: number): Promise<Phase> {
  const procs = await startMode(lab, mode, load);
  try {
    await load.run(WARMUP_MESSAGES);
    const pid = procs[0]?.pid as number;
    const before = sampleProcess(pid);
    const result = await load.run(messages);
    const after = sampleProcess(pid);
    return {
      round,
      mode,
      messages: result.messages,
      ms: result.ms,
      perSecond: result.perSecond,
      serverCpuUsPerMessage: Math.round(((after.cpuMs - before.cpuMs) * 1000) / Math.max(1, result.messages)),
      errors: result.errors,
    };
  } finally {
    await stopMode(lab, mode, procs);
  }
}

function table(output: { phases: Phase[]; summary: Record<Mode, { medianPerSecond: number; medianCpuUsPerMessage: number }>; ratio: number }): string {
  const head = ['round', 'mode', 'messages', 'ms', 'msg/s', 'server CPU µs/msg', 'errors'];
  const rows = output.phases.map((p) => [String(p.round), p.mode, String(p.messages), String(p.ms), String(p.perSecond), String(p.serverCpuUsPerMessage), String(p.errors.length)]);
  return [
    'smtp-overhead: messages/s through smtp-server on the VIP, cluster running vs no cluster (target: ratio ≥ 0.98)',
    formatTable(head, rows),
    `median msg/s: cluster ${output.summary.cluster.medianPerSecond}, plain ${output.summary.plain.medianPerSecond}; ratio cluster/plain ${output.ratio}`,
    `median server CPU µs/msg: cluster ${output.summary.cluster.medianCpuUsPerMessage}, plain ${output.summary.plain.medianCpuUsPerMessage}`,
  ].join('\n');
}

/** Runs the comparison; returns the JSON result (also written to bench/results/smtp-overhead.json). */
export async function run(): Promise<object> {
  const args = benchArgs();
  const rounds = Number(args.value('--rounds') ?? process.env.SMTP_OVERHEAD_ROUNDS ?? (args.quick ? 2 : 8));
  const messages = Number(args.value('--messages') ?? process.env.SMTP_OVERHEAD_MESSAGES ?? (args.quick ? 2000 : 20_000));
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new RangeError('--rounds must be 1..50');
  if (!Number.isInteger(messages) || messages < 10 || messages > 1_000_000) throw new RangeError('--messages must be 10..1000000');
  const started = Date.now();
  const phases: Phase[] = [];
  const lab = await Lab.create({ hosts: [...NODES, 'client'], ipv6: false });
  try {
    const loadProc = lab.spawnNode('client', path.join(__dirname, 'lib', 'smtp-load.js'), [JSON.stringify({ ip: VIP, port: PORT })]);
    await loadProc.nextMessage((m: any) => m.type === 'ready', 10_000);
    const load = new Load(loadProc);
    for (let round = 1; round <= rounds; round++) {
      const order: Mode[] = round % 2 ? ['cluster', 'plain'] : ['plain', 'cluster'];
      for (const mode of order) {
        const p = await phase(lab, load, round, mode, messages);
        console.error(`smtp-overhead: round ${round} ${mode}: ${p.perSecond} msg/s, ${p.serverCpuUsPerMessage} µs CPU/msg`);
        phases.push(p);
      }
    }
  } finally {
    await lab.destroy();
  }
  const of = (mode: Mode): Phase[] => phases.filter((p) => p.mode === mode);
  const summary = {
    cluster: { medianPerSecond: median(of('cluster').map((p) => p.perSecond)), medianCpuUsPerMessage: median(of('cluster').map((p) => p.serverCpuUsPerMessage)) },
    plain: { medianPerSecond: median(of('plain').map((p) => p.perSecond)), medianCpuUsPerMessage: median(of('plain').map((p) => p.serverCpuUsPerMessage)) },
  };
  const ratio = Math.round((summary.cluster.medianPerSecond / summary.plain.medianPerSecond) * 1000) / 1000;
  // Per-round ratios show how much of the difference is noise.
  const roundRatios = Array.from({ length: rounds }, (_, i) => {
    const c = phases.find((p) => p.round === i + 1 && p.mode === 'cluster');
    const b = phases.find((p) => p.round === i + 1 && p.mode === 'plain');
    return c && b ? Math.round((c.perSecond / b.perSecond) * 1000) / 1000 : null;
  });
  const output = {
    bench: 'smtp-overhead',
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, kernel: os.release(), node: process.version, loadavg1: Math.round((os.loadavg()[0] as number) * 100) / 100 },
    source: gitSource(),
    vip: VIP,
    load: { connections: CONNECTIONS, messagesPerPhase: messages, warmupMessages: WARMUP_MESSAGES, bodyBytes: BODY_BYTES, rounds, style: 'one command at a time per session, no pipelining' },
    cases: {
      cluster: 'n1, n2, n3 run the runtime at default timers, n1 preferred; the VIP listener runs on n1',
      plain: 'no cluster process; VIP added to n1 by hand; the same smtp-server options',
    },
    target: 'cluster msg/s ≥ 98 % of plain',
    summary,
    ratio,
    roundRatios,
    targetMet: ratio >= 0.98,
    runSeconds: Math.round((Date.now() - started) / 100) / 10,
    phases,
  };
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  fs.writeFileSync(path.join(RESULTS_DIR, 'smtp-overhead.json'), `${JSON.stringify(output, null, 1)}\n`);
  return output;
}

if (require.main === module) {
  run().then(
    (output) => {
      console.log(JSON.stringify(output));
      console.log(table(output as Parameters<typeof table>[0]));
    },
    (error: Error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
