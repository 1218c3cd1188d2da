/**
 * Mail flowing through an MTA cluster while a test moves VIPs, and the counts
 * that say whether anything went wrong: the client fixture (a queueing client
 * that retries until it gets 250) sends every message to the listener VIP,
 * the sink reports what arrived from which IP, and the counts compare the two.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fixturePath, type Lab, type LabProcess } from '../harness';
import { MailClient, type ClientAttempt, type OutgoingMessage } from './mta-lab';
import type { Received } from './mta-servers';
import { waitFor } from './wait';
import { holderOf } from './mta-servers';
import type { SessionReport } from '../../../bench/lib/slow-sessions';
import assert from 'node:assert/strict';
import { test } from 'node:test';

export interface FlowCounts {
  /** Messages the client started (each retried until accepted, up to 400 attempts). */
  attempted: number;
  accepted: number;
  delivered: number;
  /** Messages the sink got more than once, not counting those in flight when a process was SIGKILLed. */
  duplicated: number;
  /**
   * Messages in flight at a SIGKILL (an attempt or a copy within 2 s before the
   * kill and the takeover after it) that the sink got twice: a sender killed
   * between its peer's 250 and recording it sends again, SMTP's at-least-once
   * (RFC 5321 section 6.1). Reported, not a failure.
   */
  duplicatedAtKill: number;
  wrongIp: number;
  /** Accepted but at the sink more than 60 s later, or never. */
  stranded: number;
  /** Attempts that ended in the client's own timeout: no banner, no reply, no reset. */
  silent: number;
  /** Sessions cut after their banner, outside the moments a process was killed. */
  cut: number;
  refused421: number;
  resetBeforeBanner: number;
  /** Message ids accepted and never at the sink. */
  undeliveredIds: string[];
  /** Everything above plus the failed attempts, for an assertion message. */
  report: string;
}

/**
 * Up to `total` messages (the flow stops taking new ones once the script is
 * done), their binding chosen round robin by sender domain (`<binding>.test`).
 */
export function flowMessages<B extends string>(total: number, bindings: Record<B, string>, server: string, port: number, tag: string): { outgoing: OutgoingMessage[]; bindingOf: Map<string, B> } {
  const names = Object.keys(bindings) as B[];
  const bindingOf = new Map<string, B>();
  const outgoing = Array.from({ length: total }, (_, i) => {
    const binding = names[i % names.length] as B;
    const id = `flow-${i}@${tag}.test`;
    bindingOf.set(id, binding);
    return { id, server, port, from: `user@${binding}.test`, to: `rcpt${i}@${binding}.test`, tool: 'nodemailer' as const };
  });
  return { outgoing, bindingOf };
}

/** POST /move through `node`'s admin endpoint (run inside its namespace). */
export async function moveVia(lab: Lab, node: string, port: number, ip: string, to: string | null): Promise<void> {
  const body = JSON.stringify({ ip, node: to });
  const script = `fetch('http://127.0.0.1:${port}/move',{method:'POST',body:${JSON.stringify(body)}}).then(async r=>{const t=await r.text();if(r.status!==202){console.error(r.status,t);process.exit(1)}},e=>{console.error(e.message);process.exit(1)})`;
  await lab.exec(node, [process.execPath, '-e', script]);
}

export interface FlowControl {
  /** Resolves once `n` more messages have been accepted by the cluster (normal operation between faults). */
  more(n: number): Promise<void>;
  /** Runs a step that kills a process: sessions cut meanwhile (and 3 s after) are not counted as cut. */
  killed(step: () => Promise<void>): Promise<void>;
}

/** How the client sends: the defaults suit a test of a few minutes; a long campaign counts its deadline per message. */
export interface FlowOptions {
  concurrency?: number;
  maxAttempts?: number;
  deadlineMs?: number;
  perMessageDeadline?: boolean;
}

/**
 * Sends `outgoing` (4 at a time, retrying like a queueing client) while
 * `script` moves things, then starts no new message, waits for the sink to have every accepted message
 * (up to 90 s after the last acceptance), and counts.
 */
export async function runFlow<B extends string>(
  lab: Lab,
  sink: LabProcess,
  mtas: ReadonlyMap<string, LabProcess>,
  outgoing: OutgoingMessage[],
  bindingOf: ReadonlyMap<string, B>,
  bindings: Record<B, string>,
  script: (control: FlowControl) => Promise<void>,
  options: FlowOptions = {},
): Promise<FlowCounts> {
  const clientProc = lab.spawnNode('client', fixturePath('mta-client'));
  try {
    await clientProc.nextMessage((m: { type?: string }) => m.type === 'ready', 10_000);
    const client = new MailClient(clientProc);
    const received: Array<Received & { at: number }> = [];
    const take = (): void => {
      for (const message of sink.messages.splice(0)) if ((message as Received).type === 'received') received.push(message as Received & { at: number });
    };
    const batch = `flow-${Date.now()}`;
    const done = client.batch(batch, outgoing, {
      concurrency: options.concurrency ?? 4,
      maxAttempts: options.maxAttempts ?? 400,
      deadlineMs: options.deadlineMs ?? 180_000,
      ...(options.perMessageDeadline ? { perMessageDeadline: true, resultTimeoutMs: 24 * 3600_000 } : {}),
    });
    const killWindows: Array<[number, number]> = [];
    await script({
      more: async (more) => {
        const n = client.acceptedCount(batch) + more;
        await waitFor(() => client.acceptedCount(batch) >= n || null, { timeoutMs: 90_000, intervalMs: 50, what: `${n} messages accepted (have ${client.acceptedCount(batch)}); output:\n${[...mtas].map(([node, p]) => `--- ${node}\n${(p.stdout + p.stderr).slice(-2500)}`).join('\n')}` });
      },
      killed: async (step) => {
        const from = Date.now();
        await step();
        killWindows.push([from, Date.now() + 3000]);
      },
    });
    // Mail flowed through every step; now let the messages under way finish.
    client.stop(batch);
    const results = await done;
    const ids = new Set(outgoing.map((m) => m.id));
    const ofFlow = (r: Received): string | null => {
      const id = r.subject.replace(/^test /, '');
      return ids.has(id) ? id : null;
    };
    const acceptedIds = new Set(results.filter((r) => r.ok).map((r) => r.id));
    await waitFor(() => {
      take();
      return new Set(received.map(ofFlow).filter((id) => id && acceptedIds.has(id))).size >= acceptedIds.size || null;
    }, { timeoutMs: 90_000, intervalMs: 200, what: 'every accepted message at the sink' }).catch(() => undefined);
    take();

    const byId = new Map<string, Array<Received & { at: number }>>();
    for (const r of received) {
      const id = ofFlow(r);
      if (id) byId.set(id, [...(byId.get(id) ?? []), r]);
    }
    const attempts = client.attempts.filter((a) => a.batch === batch);
    const acceptedAt = new Map(attempts.filter((a) => a.ok).map((a) => [a.id, a.at]));
    const inKill = (a: ClientAttempt): boolean => killWindows.some(([from, to]) => a.at >= from && a.at <= to);
    const nearKill = (t: number): boolean => killWindows.some(([from, to]) => t >= from - 2000 && t <= to);
    const atKill = (id: string, copies: Array<{ at: number }>): boolean => copies.some((c) => nearKill(c.at)) || attempts.some((a) => a.id === id && nearKill(a.at));
    const wrong = [...byId].flatMap(([id, list]) => list.filter((r) => r.remoteAddress !== bindings[bindingOf.get(id) as B]).map((r) => `${id} (${bindingOf.get(id)}) from ${r.remoteAddress}`));
    const failed = attempts.filter((a) => !a.ok);
    const counts = {
      attempted: results.length,
      accepted: acceptedIds.size,
      delivered: [...byId.keys()].filter((id) => acceptedIds.has(id)).length,
      duplicated: [...byId].filter(([id, list]) => list.length > 1 && !atKill(id, list)).length,
      duplicatedAtKill: [...byId].filter(([id, list]) => list.length > 1 && atKill(id, list)).length,
      wrongIp: wrong.length,
      stranded: [...acceptedAt].filter(([id, at]) => !byId.has(id) || (byId.get(id)?.[0]?.at ?? Infinity) - at > 60_000).length,
      silent: failed.filter((a) => /ETIMEDOUT|ETIMEOUT|Greeting never received|timeout/i.test(a.response)).length,
      cut: failed.filter((a) => a.kind === 'connection' && / after banner:/.test(a.response) && !inKill(a)).length,
      refused421: failed.filter((a) => /^421/.test(a.response)).length,
      resetBeforeBanner: failed.filter((a) => / before banner:/.test(a.response)).length,
    };
    const report = [
      `counts ${JSON.stringify(counts)}`,
      ...(wrong.length ? [`wrong IP:\n${wrong.slice(0, 20).join('\n')}`] : []),
      `kill windows: ${killWindows.map(([from, to]) => `${new Date(from).toISOString()}..${new Date(to).toISOString()}`).join(' ')}`,
      `failed attempts (${failed.length}):\n${failed.slice(0, 40).map((a) => `${a.id}#${a.attempt} ${a.kind} ${a.response} (ended ${new Date(a.at).toISOString()})`).join('\n')}`,
      `undelivered: ${[...acceptedIds].filter((id) => !byId.has(id)).join(' ')}`,
      `late: ${[...acceptedAt].filter(([id, at]) => byId.has(id) && (byId.get(id)?.[0]?.at ?? 0) - at > 60_000).map(([id, at]) => `${id} +${Math.round(((byId.get(id)?.[0]?.at ?? 0) - at) / 1000)}s`).join(' ')}`,
      `duplicates: ${[...byId].filter(([, l]) => l.length > 1).map(([id]) => id).slice(0, 20).join(' ')}`,
      // What each node's guardian did, for a session left silent or cut (CI shows only the report).
      ...[...mtas].map(([node, p]) => `guardian of ${node}:\n${(p.stdout + p.stderr).split('\n').filter((line) => /alias reaper/.test(line)).slice(-12).join('\n')}`),
    ].join('\n');
    process.stdout.write(`# mail flow ${JSON.stringify(counts)}\n`);
    const undelivered = [...acceptedIds].filter((id) => !byId.has(id));
    if (undelivered.length || counts.duplicated || counts.stranded || counts.silent || counts.cut) {
      // For the post-mortem: every MTA's output, next to the report.
      for (const [node, p] of mtas) fs.writeFileSync(path.join(os.tmpdir(), `mta-vip-flow-${node}.log`), p.stdout + p.stderr);
    }
    return { ...counts, undeliveredIds: undelivered, report };
  } finally {
    await clientProc.stop().catch(() => undefined);
  }
}

const SLOW_SESSIONS = path.join(__dirname, '..', '..', '..', 'bench', 'lib', 'slow-sessions.js');

/**
 * Sessions in the middle of DATA on `ip:port` while `release` moves the VIP,
 * and new sessions opened all through the release: the first must all get
 * their final 250 (nothing cut after its banner), the second each a banner, a
 * 421 or a reset (none left waiting for its timeout).
 */
export async function slowSessionsThroughRelease(lab: Lab, ip: string, port: number, release: () => Promise<void>): Promise<{ slow: SessionReport[]; fresh: SessionReport[] }> {
  const proc = lab.spawnNode('client', SLOW_SESSIONS, [JSON.stringify({ ip, port })]);
  try {
    await proc.nextMessage((m: { type?: string }) => m.type === 'ready', 10_000);
    proc.send({ cmd: 'sessions', id: 1, count: 8, dataMs: 3000, chunks: 6, timeoutMs: 40_000 });
    await proc.nextMessage((m: { type?: string; id?: number }) => m.type === 'in-data' && m.id === 1, 15_000);
    const slow = proc.nextMessage<{ sessions: SessionReport[] }>((m: { type?: string; id?: number }) => m.type === 'sessions' && m.id === 1, 60_000);
    const fresh: Array<Promise<{ sessions: SessionReport[] }>> = [];
    let releasing = true;
    const released = release().finally(() => {
      releasing = false;
    });
    // A new short session every 100 ms while the release runs (and one after).
    for (let id = 2; releasing || id < 4; id++) {
      proc.send({ cmd: 'sessions', id, count: 1, dataMs: 50, chunks: 1, timeoutMs: 20_000 });
      fresh.push(proc.nextMessage<{ sessions: SessionReport[] }>((m: { type?: string; id?: number }) => m.type === 'sessions' && m.id === id, 40_000));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await released;
    return { slow: (await slow).sessions, fresh: (await Promise.all(fresh)).flatMap((r) => r.sessions) };
  } finally {
    await proc.stop().catch(() => undefined);
  }
}

/** Two MTA nodes in a lab, as the failover scenarios drive them. */
export interface TwoNodeCluster {
  lab: Lab;
  sink: LabProcess;
  mtas: Map<string, LabProcess>;
  /** [listener's and first binding's preferred node, the other]. */
  nodes: readonly [string, string];
  /** Where every VIP lives when both nodes are up. */
  home: Record<string, string>;
  listener: string;
  adminPort: number;
  /** Kills whatever is left of a node's processes and starts its MTA again, resolving once it is up. */
  restart(node: string): Promise<unknown>;
  /** For a failure's report: what the MTAs' queue holds for the given message ids (ZoneMTA's shared queue). */
  describeQueue?(messageIds: string[]): Promise<string>;
}

/** Waits until each VIP of `expected` is on its node, and only there. */
async function settled(cluster: TwoNodeCluster, expected: Record<string, string>, timeoutMs: number): Promise<void> {
  await waitFor(async () => {
    for (const [ip, node] of Object.entries(expected)) if ((await holderOf(cluster.lab, cluster.nodes, ip)) !== node) return null;
    return true;
  }, { timeoutMs, intervalMs: 100, what: `holders ${JSON.stringify(expected)}` });
}

/**
 * Mail flowing through every kind of move, each fault after the cluster is
 * back home and has taken 10 messages more: a planned move of `moved` (a
 * binding of the second node) to the first and back, SIGKILL of the first node
 * (the listener's holder) and its return, SIGTERM of the second and its
 * return. Asserts at least 200 messages, each accepted, delivered once, from
 * its own binding's IP, none stranded, no client session silent or cut.
 */
export async function assertMailSurvivesFailover<B extends string>(cluster: TwoNodeCluster, bindings: Record<B, string>, moved: B, tag: string): Promise<FlowCounts> {
  const [first, second] = cluster.nodes;
  const { lab, home, adminPort } = cluster;
  const onFirst = Object.fromEntries(Object.entries(home).filter(([, node]) => node === first).map(([ip]) => [ip, second]));
  const onSecond = Object.fromEntries(Object.entries(home).filter(([, node]) => node === second).map(([ip]) => [ip, first]));
  const { outgoing, bindingOf } = flowMessages(5000, bindings, cluster.listener, 2525, tag);
  const counts = await runFlow(lab, cluster.sink, cluster.mtas, outgoing, bindingOf, bindings, async ({ more, killed }) => {
    await more(10);
    await moveVia(lab, second, adminPort, bindings[moved], first);
    await settled(cluster, { ...home, [bindings[moved]]: first }, 15_000);
    await more(10);
    await moveVia(lab, second, adminPort, bindings[moved], null);
    await moveVia(lab, first, adminPort, bindings[moved], null);
    await settled(cluster, home, 15_000);
    await more(10);
    await killed(async () => {
      (cluster.mtas.get(first) as LabProcess).kill('SIGKILL');
      await settled(cluster, onFirst, 10_000);
    });
    await more(10);
    await cluster.restart(first);
    await settled(cluster, home, 30_000);
    await more(10);
    const other = cluster.mtas.get(second) as LabProcess;
    other.kill('SIGTERM');
    await other.exited;
    await settled(cluster, onSecond, 15_000);
    await more(10);
    await cluster.restart(second);
    await settled(cluster, home, 30_000);
  });
  if (cluster.describeQueue && (counts.stranded || counts.delivered < counts.accepted)) {
    counts.report += `\nqueue: ${await cluster.describeQueue(counts.undeliveredIds).catch((error: Error) => `(could not read: ${error.message})`)}`;
  }
  assert.ok(counts.accepted >= 200, `at least 200 messages flowed (${counts.accepted}): ${counts.report}`);
  assert.deepEqual(
    { accepted: counts.accepted, delivered: counts.delivered, duplicated: counts.duplicated, wrongIp: counts.wrongIp, stranded: counts.stranded, silent: counts.silent, cut: counts.cut },
    { accepted: counts.attempted, delivered: counts.accepted, duplicated: 0, wrongIp: 0, stranded: 0, silent: 0, cut: 0 },
    counts.report,
  );
  return counts;
}

/** Slow sessions through a planned move of the listener VIP to the second node, and back home after. */
export async function assertSessionsSurviveRelease(cluster: TwoNodeCluster): Promise<void> {
  const [first, second] = cluster.nodes;
  const { slow, fresh } = await slowSessionsThroughRelease(cluster.lab, cluster.listener, 2525, async () => {
    await moveVia(cluster.lab, first, cluster.adminPort, cluster.listener, second);
    await settled(cluster, { [cluster.listener]: second }, 30_000);
  });
  assert.deepEqual(slow.map((r) => r.finalReply?.slice(0, 3) ?? r.error), slow.map(() => '250'), `every slow session finished with 250: ${JSON.stringify(slow)}`);
  assert.deepEqual(fresh.filter((r) => /timeout/i.test(r.error ?? '')), [], `sessions left without an answer (of ${fresh.length})`);
  assert.ok(fresh.length >= 3, 'new sessions were tried during the release');
  await moveVia(cluster.lab, first, cluster.adminPort, cluster.listener, null);
  await moveVia(cluster.lab, second, cluster.adminPort, cluster.listener, null);
  await settled(cluster, cluster.home, 30_000);
}

/**
 * The failover scenarios every MTA integration runs, as tests of the calling describe(): mail
 * through every kind of move (assertMailSurvivesFailover) and sessions through a release
 * (assertSessionsSurviveRelease). `cluster` is called when each test runs (the lab exists then).
 */
export function failoverScenarios<B extends string>(cluster: () => TwoNodeCluster, bindings: Record<B, string>, moved: B, tag: string): void {
  test('mail flows while a binding moves there and back, the listener holder is SIGKILLed and the other node SIGTERMed: every message once, from its IP, no session left silent', async () => {
    await assertMailSurvivesFailover(cluster(), bindings, moved, tag);
  });

  test('sessions in the middle of DATA when the listener VIP moves all finish; clients arriving during the release get a banner, a 421 or a reset, never silence', async () => {
    await assertSessionsSurviveRelease(cluster());
  });
}
