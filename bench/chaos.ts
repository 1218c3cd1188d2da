/**
 * `npm run chaos -- [--faults N] [--seed S] [--nodes K] [--max-hold-ms MS] [--max-calm-ms MS] [--out FILE]`
 *
 * A fault campaign on a real cluster: K (3–5) nodes running the standalone MTA
 * example in namespaces, with overlapping VIP sets (two listener VIPs, one
 * IPv4 and one IPv6, and one binding per node that every other node declares),
 * a client sending mail through the listener VIPs all along (a queueing client
 * that retries until 250) and a sink recording each message's source IP. The
 * faults come from the seed (bench/lib/chaos-plan.ts): SIGKILL and restart,
 * SIGTERM to the node's whole process group and restart, SIGSTOP/SIGCONT,
 * link down/up, random loss up to 30 %, one-way loss of the cluster's UDP,
 * partitions of any split and their merge, and restarts with a config that
 * makes a binding BROKEN and back.
 *
 * Who holds an address is read from the kernels (`ip -ts monitor address` in
 * every node's namespace), never from the nodes; bench/lib/chaos-analysis.ts
 * turns that and the fault times into the report. It ends with one JSON line
 * and writes bench/results/chaos.json (or --out), and exits 1 when a
 * violation was found: a dual holder between nodes that could hear each other
 * longer than one heartbeat + announcement, an orphan longer than dead-after +
 * acquisition while a healthy declarer was up, an accepted message lost, or a
 * message from a wrong IP.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Lab, vip4, vip6, waitFor } from '../test/netns/harness';
import { AddressMonitor } from '../test/netns/lib/address-monitor';
import { flowMessages, runFlow, type FlowCounts } from '../test/netns/lib/mail-flow';
import { MtaProcesses } from '../test/netns/lib/mta-servers';
import { startMta, tempDir, type MtaNode } from '../test/netns/lib/mta-lab';
import { DEFAULT_HEARTBEAT_MS, DEFAULT_PORT } from '../lib/core/config';
import { analyseChaos, type AppliedFault, type ChaosReport } from './lib/chaos-analysis';
import { FAULT_KINDS, planFaults, type Fault, type FaultKind } from './lib/chaos-plan';
import { formatTable, gitSource, RESULTS_DIR } from './lib/bench-common';

const SECRET = 'chaos campaign secret, long enough';
const PORT = 2525;
const DEAD_AFTER_MS = 4 * DEFAULT_HEARTBEAT_MS;
/** One announcement round (the default announce.intervalMs). */
const ANNOUNCE_MS = 100;
/** Probe (10 ms), adding the address and the first announcement, with room for a loaded machine. */
const ACQUISITION_MS = 100;

export interface ChaosOptions {
  faults: number;
  seed: number;
  nodes: number;
  maxHoldMs?: number;
  maxCalmMs?: number;
  /** Draw only these kinds of fault (default every kind). */
  kinds?: readonly FaultKind[];
  /** Progress lines on stderr. */
  progress?: (line: string) => void;
}

export interface ChaosSummary {
  bench: 'chaos';
  date: string;
  source: { commit: string; libDirty: boolean };
  seed: number;
  nodes: number;
  faults: number;
  byKind: Record<string, number>;
  seconds: number;
  report: ChaosReport;
  mail: Omit<FlowCounts, 'report'>;
  /** Each a reason the campaign failed; empty when it passed. */
  violations: string[];
}

interface Topology {
  nodes: string[];
  listeners: Array<{ ip: string; declarers: string[] }>;
  bindings: Array<{ name: string; ip: string; declarers: string[]; preferred?: string }>;
}

/** Two listener VIPs (IPv4 on every node, IPv6 on all but the last), one binding per node declared by every other node. */
export function chaosTopology(count: number): Topology {
  const nodes = Array.from({ length: count }, (_, i) => `n${i + 1}`);
  return {
    nodes,
    listeners: [
      { ip: vip4(60), declarers: nodes },
      { ip: vip6(61), declarers: nodes.slice(0, -1) },
    ],
    bindings: nodes.map((owner, i) => ({
      name: `b${i + 1}`,
      ip: vip4(70 + i),
      declarers: nodes.filter((n) => n !== owner),
      // One binding with a preferred node, so failback after its return is exercised too.
      ...(i === 0 ? { preferred: nodes[1] as string } : {}),
    })),
  };
}

function listenAddress(ip: string): string {
  return ip.includes(':') ? `[${ip}]:${PORT}` : `${ip}:${PORT}`;
}

/** The example's config for `node`; with `broken`, that binding's IP under another name (BROKEN cluster-wide). */
function configFor(lab: Lab, topology: Topology, node: string, broken?: string): unknown {
  const listeners = topology.listeners.filter((l) => l.declarers.includes(node)).map((l) => listenAddress(l.ip));
  const declared = topology.bindings.filter((b) => b.declarers.includes(node) && b.name !== broken).map((b) => ({ name: b.name, address: b.ip }));
  const renamed = topology.bindings.filter((b) => b.name === broken).map((b) => ({ name: `${b.name}x`, address: b.ip }));
  const bindings = [...declared, ...renamed];
  const vips = Object.fromEntries(topology.bindings.filter((b) => b.preferred && b.declarers.includes(node)).map((b) => [b.ip, { preferred: b.preferred }]));
  return {
    cluster: {
      node,
      cluster: { id: 'chaos', secret: SECRET, bind: lab.host(node).ipv4, peers: topology.nodes.map((n) => lab.host(n).ipv4) },
      listeners,
      bindings,
      vips,
      topology: [
        { cidr: '198.18.0.0/16', interface: 'eth0' },
        { cidr: '2001:db8::/64', interface: 'eth0' },
      ],
    },
    mta: {
      listen: listeners,
      smarthost: { host: lab.host('sink').ipv4, port: PORT },
      routes: Object.fromEntries(topology.bindings.map((b) => [`${b.name}.test`, b.name])),
      drainMs: 2000,
    },
  };
}

/** Every IP of the topology has exactly one holder among the nodes (read from the kernels). */
async function allHeldOnce(lab: Lab, topology: Topology): Promise<boolean> {
  const held = new Map<string, number>();
  for (const node of topology.nodes) for (const a of await lab.addresses(node)) held.set(a.address, (held.get(a.address) ?? 0) + 1);
  return [...topology.listeners.map((l) => l.ip), ...topology.bindings.map((b) => b.ip)].every((ip) => held.get(ip) === 1);
}

export async function runChaos(options: ChaosOptions): Promise<ChaosSummary> {
  const started = Date.now();
  const say = options.progress ?? (() => undefined);
  const topology = chaosTopology(options.nodes);
  const plan = planFaults({ seed: options.seed, faults: options.faults, nodes: topology.nodes, bindings: topology.bindings.map((b) => b.name), ...(options.maxHoldMs ? { maxHoldMs: options.maxHoldMs } : {}), ...(options.maxCalmMs !== undefined ? { maxCalmMs: options.maxCalmMs } : {}), ...(options.kinds ? { kinds: options.kinds } : {}) });
  const lab = await Lab.create({ hosts: [...topology.nodes, 'client', 'sink'] });
  const dir = tempDir();
  const helpers = new MtaProcesses(lab);
  let monitor: AddressMonitor | null = null;
  try {
    const sink = await helpers.sink('sink', PORT);
    monitor = await AddressMonitor.start(lab, topology.nodes);
    const mtas = new Map<string, MtaNode>();
    const procs = new Map<string, MtaNode['proc']>();
    /** The output of every earlier process of each node, for the post-mortem. */
    const earlier = new Map<string, string>();
    const start = async (node: string, broken?: string): Promise<void> => {
      const old = mtas.get(node);
      if (old) earlier.set(node, `${earlier.get(node) ?? ''}${old.proc.stdout}${old.proc.stderr}--- restarted${broken ? ` with ${broken} BROKEN` : ''}\n`);
      const mta = startMta(lab, dir, node, configFor(lab, topology, node, broken));
      mtas.set(node, mta);
      procs.set(node, mta.proc);
      await mta.waitLog((l) => l.event === 'started', 20_000, 'started');
    };
    await Promise.all(topology.nodes.map((n) => start(n)));
    await waitFor(() => allHeldOnce(lab, topology), { timeoutMs: 30_000, intervalMs: 100, what: 'every VIP held by exactly one node' });
    const fromMs = Date.now();
    const applied: AppliedFault[] = [];
    const byKind: Record<string, number> = {};

    /** The pids of everything running in the node's namespace (the MTA and its guardian). */
    const pidsOf = async (node: string): Promise<number[]> => {
      const spare = new Set(monitor?.pids() ?? []);
      return (await lab.pids(node)).filter((pid) => !spare.has(pid));
    };
    const signalAll = async (node: string, signal: NodeJS.Signals): Promise<void> => {
      for (const pid of await pidsOf(node)) {
        try {
          process.kill(pid, signal);
        } catch {
          // gone already
        }
      }
    };
    /** Stops the node gracefully (SIGTERM to its whole group) and waits; SIGKILL after 30 s. */
    const stopGroup = async (node: string): Promise<void> => {
      const proc = procs.get(node) as MtaNode['proc'];
      await signalAll(node, 'SIGTERM');
      const timer = setTimeout(() => void signalAll(node, 'SIGKILL'), 30_000);
      await proc.exited;
      clearTimeout(timer);
    };
    const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

    const inject = async (fault: Fault): Promise<void> => {
      const { node } = fault;
      const proc = procs.get(node) as MtaNode['proc'];
      const record: AppliedFault = { index: fault.index, kind: fault.kind, node, fromMs: Date.now(), toMs: 0, ...(fault.side ? { side: fault.side } : {}), ...(fault.binding ? { binding: fault.binding } : {}) };
      applied.push(record);
      switch (fault.kind) {
        case 'kill':
          proc.kill('SIGKILL');
          await proc.exited;
          await sleep(fault.holdMs);
          await start(node);
          break;
        case 'term':
          await stopGroup(node);
          await sleep(fault.holdMs);
          await start(node);
          break;
        case 'broken':
          await stopGroup(node);
          await start(node, fault.binding);
          await sleep(fault.holdMs);
          await stopGroup(node);
          await start(node);
          break;
        case 'stop':
          proc.kill('SIGSTOP');
          await sleep(fault.holdMs);
          proc.kill('SIGCONT');
          break;
        case 'link': {
          await lab.linkDown(node);
          await sleep(fault.holdMs);
          await lab.linkUp(node);
          // Link down flushed the host's own IPv6 address (keep_addr_on_down=0): put it back.
          const host = lab.host(node);
          await lab.exec(node, ['ip', 'addr', 'replace', `${host.ipv6}/64`, 'dev', 'eth0', 'nodad']);
          break;
        }
        case 'loss':
          await lab.loss(node, fault.percent ?? 30);
          await sleep(fault.holdMs);
          await lab.clearFaults(node);
          break;
        case 'deaf':
        case 'mute':
          await lab.loss(node, 100, `udp dport ${DEFAULT_PORT}`, fault.kind === 'deaf' ? 'in' : 'out');
          await sleep(fault.holdMs);
          await lab.clearFaults(node);
          break;
        case 'partition':
          await lab.split(fault.side ?? [node], topology.nodes.filter((n) => !(fault.side ?? [node]).includes(n)));
          await sleep(fault.holdMs);
          await lab.healAll();
          break;
      }
      record.toMs = Date.now();
      byKind[fault.kind] = (byKind[fault.kind] ?? 0) + 1;
    };

    const bindingIps = Object.fromEntries(topology.bindings.map((b) => [b.name, b.ip])) as Record<string, string>;
    const { outgoing, bindingOf } = flowMessages(Math.max(2000, options.faults * 40), bindingIps, topology.listeners[0]?.ip as string, PORT, `chaos${options.seed}`);
    // Round robin over both listener VIPs (IPv4 first, the retry on IPv6), like MX fallbacks.
    for (const m of outgoing) m.server = topology.listeners.map((l) => l.ip);
    const counts = await runFlow(
      lab,
      sink,
      procs,
      outgoing,
      bindingOf,
      bindingIps,
      async ({ killed }) => {
        for (const fault of plan) {
          const processFault = fault.kind === 'kill' || fault.kind === 'term' || fault.kind === 'stop' || fault.kind === 'broken';
          if (processFault) await killed(() => inject(fault));
          else await inject(fault);
          if (fault.index % 25 === 24) say(`chaos: ${fault.index + 1}/${plan.length} faults, ${Math.round((Date.now() - started) / 1000)} s`);
          if (fault.calmMs) await sleep(fault.calmMs);
        }
        // The end: everything healed, each VIP back to one holder.
        await waitFor(() => allHeldOnce(lab, topology), { timeoutMs: 30_000, intervalMs: 100, what: 'every VIP held by exactly one node after the last fault' }).catch(() => undefined);
      },
      { concurrency: 2, maxAttempts: 10_000, deadlineMs: 600_000, perMessageDeadline: true },
    );
    const toMs = Date.now();
    const vips = [...topology.listeners.map((l) => ({ ip: l.ip, declarers: l.declarers })), ...topology.bindings.map((b) => ({ ip: b.ip, declarers: b.declarers, binding: b.name }))];
    const report = analyseChaos({
      vips,
      nodes: topology.nodes,
      events: monitor.events,
      faults: applied,
      fromMs,
      toMs,
      heartbeatMs: DEFAULT_HEARTBEAT_MS,
      deadAfterMs: DEAD_AFTER_MS,
      announceMs: ANNOUNCE_MS,
      acquisitionMs: ACQUISITION_MS,
    });
    const { report: _text, ...mail } = counts;
    const violations: string[] = [];
    const describe = (i: { ip: string; fromMs: number; ms: number; hosts: string[]; faults: number[] }): string =>
      `${i.ip} ${i.ms} ms from +${i.fromMs - fromMs} ms on ${i.hosts.join('+') || 'nobody'} (faults ${i.faults.map((n) => `#${n} ${applied[n]?.kind}`).join(', ') || 'none'})`;
    for (const d of report.dualConnected.overBound) violations.push(`dual holder between connected nodes: ${describe(d)}`);
    for (const o of report.orphan.overBound) violations.push(`orphan: ${describe(o)}`);
    for (const o of report.orphanUnderLoss.overBound) violations.push(`orphan under loss: ${describe(o)}`);
    const lost = mail.accepted - mail.delivered;
    if (lost) violations.push(`${lost} accepted messages never reached the sink`);
    if (mail.wrongIp) violations.push(`${mail.wrongIp} messages left from a wrong IP`);
    if (!monitor.alive()) violations.push('an address monitor died: the kernel measurement is incomplete');
    if (violations.length) {
      for (const [node, mta] of mtas) fs.writeFileSync(path.join(dir, `${node}.log`), (earlier.get(node) ?? '') + mta.proc.stdout + mta.proc.stderr);
      // The kernels' address changes and the faults as applied, times relative to the start, for the post-mortem.
      const rel = (ms: number): number => ms - fromMs;
      const ips = new Set(vips.map((v) => v.ip));
      fs.writeFileSync(
        path.join(dir, 'timeline.txt'),
        [
          ...applied.map((f) => ({ at: rel(f.fromMs), line: `fault #${f.index} ${f.kind} ${f.node}${f.side ? ` side=${f.side.join(',')}` : ''}${f.binding ? ` binding=${f.binding}` : ''} until +${rel(f.toMs)}` })),
          ...monitor.events.filter((e) => ips.has(e.ip)).map((e) => ({ at: rel(e.atMs), line: `${e.added ? 'add' : 'del'} ${e.ip} ${e.host}` })),
        ]
          .sort((a, b) => a.at - b.at)
          .map((x) => `+${x.at} ${x.line}`)
          .join('\n'),
      );
      violations.push(`node logs in ${dir}`);
    }
    return {
      bench: 'chaos',
      date: new Date().toISOString(),
      source: gitSource(),
      seed: options.seed,
      nodes: options.nodes,
      faults: applied.length,
      byKind,
      seconds: Math.round((Date.now() - started) / 1000),
      report,
      mail,
      violations,
    };
  } finally {
    monitor?.stop();
    await helpers.sweep([...topology.nodes, 'sink']).catch(() => undefined);
    await lab.destroy();
  }
}

/** The short table the README shows. */
export function chaosTable(s: ChaosSummary): string {
  const r = s.report;
  return formatTable(
    ['measure', 'value'],
    [
      ['faults (seed, nodes)', `${s.faults} (${s.seed}, ${s.nodes})`],
      ['dual holders while connected: count / longest / total', `${r.dualConnected.count} / ${r.dualConnected.longestMs} ms / ${r.dualConnected.totalMs} ms (bound ${r.bounds.dualMs} ms)`],
      ['dual holders across a cut: count / longest / total', `${r.dualPartitioned.count} / ${r.dualPartitioned.longestMs} ms / ${r.dualPartitioned.totalMs} ms`],
      ['  longest dual after the merge', `${r.dualPartitioned.longestAfterMergeMs} ms`],
      ['orphans with a healthy declarer: count / longest / total', `${r.orphan.count} / ${r.orphan.longestMs} ms / ${r.orphan.totalMs} ms (bound ${r.bounds.orphanMs} ms)`],
      ['  begun under loss (or < its fade after): count / longest / total', `${r.orphanUnderLoss.count} / ${r.orphanUnderLoss.longestMs} ms / ${r.orphanUnderLoss.totalMs} ms (bound ${r.bounds.orphanUnderLossMs} ms)`],
      ['holder changes / false failovers', `${r.holderChanges} / ${r.falseFailovers}`],
      ['mail accepted / delivered / lost', `${s.mail.accepted} / ${s.mail.delivered} / ${s.mail.accepted - s.mail.delivered}`],
      ['mail duplicated (at a kill / otherwise)', `${s.mail.duplicatedAtKill} / ${s.mail.duplicated}`],
      ['mail from a wrong IP', `${s.mail.wrongIp}`],
      ['violations', `${s.violations.length}`],
    ],
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      faults: { type: 'string', default: '1000' },
      seed: { type: 'string' },
      nodes: { type: 'string' },
      'max-hold-ms': { type: 'string' },
      'max-calm-ms': { type: 'string' },
      out: { type: 'string' },
      kinds: { type: 'string' },
    },
  });
  const kinds = values.kinds?.split(',').map((k) => k.trim()) as FaultKind[] | undefined;
  const unknownKind = kinds?.find((k) => !FAULT_KINDS.includes(k));
  if (kinds && (unknownKind !== undefined || !kinds.length)) {
    process.stderr.write(`chaos: --kinds takes a comma-separated list of ${FAULT_KINDS.join(', ')}; ${JSON.stringify(unknownKind ?? values.kinds)} is not one\n`);
    process.exit(64);
  }
  const integer = (name: string, value: string | undefined, min: number, max: number): number | undefined => {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) {
      process.stderr.write(`chaos: --${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}\n`);
      process.exit(64);
    }
    return n;
  };
  const seed = integer('seed', values.seed, 0, 2 ** 32 - 1) ?? (Date.now() >>> 0) % 1_000_000;
  const summary = await runChaos({
    faults: integer('faults', values.faults, 1, 100_000) as number,
    seed,
    nodes: integer('nodes', values.nodes, 3, 5) ?? 3 + (seed % 3),
    ...(values['max-hold-ms'] ? { maxHoldMs: integer('max-hold-ms', values['max-hold-ms'], 100, 60_000) as number } : {}),
    ...(values['max-calm-ms'] ? { maxCalmMs: integer('max-calm-ms', values['max-calm-ms'], 0, 60_000) as number } : {}),
    ...(kinds ? { kinds } : {}),
    progress: (line) => process.stderr.write(`${line}\n`),
  });
  const out = values.out ?? path.join(RESULTS_DIR, 'chaos.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(summary, null, 2)}\n`);
  console.log(chaosTable(summary));
  for (const v of summary.violations) console.log(`VIOLATION ${v}`);
  console.log(JSON.stringify(summary));
  process.exit(summary.violations.length ? 1 : 0);
}

if (require.main === module) {
  main().catch((error: Error) => {
    process.stderr.write(`chaos: ${error.stack ?? error.message}\n`);
    process.exit(2);
  });
}
