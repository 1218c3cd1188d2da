// The standalone MTA example end to end: three nodes running the real
// examples/standalone-mta.js, a client namespace (nodemailer and swaks, with a
// retrying client that keeps its copy until 250) and a sink namespace that
// records every message with the source IP of its connection. What is checked
// is what the wire shows: the sink's record of where each Message-ID came
// from, the client's SMTP replies, and the kernel's addresses.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, afterEach, before, describe, test } from 'node:test';
import { fixturePath, Lab, labSkipReason, vip4, waitFor } from './harness';
import { acceptedBy, MailClient, MtaNode, type LogLine, startMta, tempDir, type ClientResult, type OutgoingMessage, type SinkRecord } from './lib/mta-lab';

const SECRET = 'mta lab secret, sixteen bytes or more';
const NODES = ['n1', 'n2', 'n3'] as const;
const PORT = 2525;
const LISTENER = vip4(25);
const ACME = vip4(31);
const BETA = vip4(32);
const BROKEN_IP = vip4(33);
// The next hop answers MAIL FROM this much later, so messages are in the middle of being
// handed on when a node is killed (and an MTA that said 250 too early would lose them).
const SINK_DELAY_MS = 50;
const ROUTES = { 'acme.test': 'acme', 'beta.test': 'beta', 'gamma.test': 'gamma', 'delta.test': 'delta' };

/** The example's config file for `node`: one listener VIP, acme (preferred n2), beta, and gamma/delta disagreeing on one IP. */
function configFor(lab: Lab, node: string): unknown {
  const own = lab.host(node).ipv4;
  const bindings = [
    { name: 'acme', address: ACME },
    { name: 'beta', address: BETA },
  ];
  // BROKEN on purpose: n1 calls BROKEN_IP "gamma", n2 calls it "delta".
  if (node === 'n1') bindings.push({ name: 'gamma', address: BROKEN_IP });
  if (node === 'n2') bindings.push({ name: 'delta', address: BROKEN_IP });
  return {
    cluster: {
      node,
      cluster: { id: 'mta-lab', secret: SECRET, bind: own, peers: NODES.map((n) => lab.host(n).ipv4) },
      listeners: [`${LISTENER}:${PORT}`],
      bindings,
      vips: { [ACME]: { preferred: 'n2' } },
      topology: [{ cidr: '198.18.0.0/16', interface: 'eth0' }],
      timers: { holdDownMs: 500 },
    },
    mta: {
      // The listener VIP, and the node's own address so a test can hand mail to one node.
      listen: [`${LISTENER}:${PORT}`, `${own}:${PORT}`],
      smarthost: { host: lab.host('sink').ipv4, port: PORT },
      routes: ROUTES,
      drainMs: 3000,
    },
  };
}

/** The nodes (among `hosts`) whose eth0 carries `ip`, read from the kernel. */
async function holdersOf(lab: Lab, ip: string, hosts: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const h of hosts) if ((await lab.addresses(h)).some((a) => a.address === ip)) out.push(h);
  return out;
}

/** Waits until `ip` has exactly one holder among `hosts` (satisfying `accept`), and returns it. */
function holderOf(lab: Lab, ip: string, hosts: readonly string[], accept: (holder: string) => boolean = () => true, timeoutMs = 10_000): Promise<string> {
  return waitFor(
    async () => {
      const h = await holdersOf(lab, ip, hosts);
      return h.length === 1 && accept(h[0] as string) ? (h[0] as string) : null;
    },
    { timeoutMs, what: `exactly one holder of ${ip} among ${hosts.join(', ')}` },
  );
}

function messages(prefix: string, count: number, to: (i: number) => string, server: (i: number) => OutgoingMessage['server'], tool: (i: number) => OutgoingMessage['tool'] = () => 'nodemailer'): OutgoingMessage[] {
  return Array.from({ length: count }, (_, i) => ({ id: `${prefix}-${i}@client.test`, server: server(i), port: PORT, to: to(i), tool: tool(i) }));
}

function failed(results: ClientResult[]): string {
  return JSON.stringify(results.filter((r) => !r.ok).slice(0, 5));
}

describe('standalone MTA example on three nodes', { skip: labSkipReason() }, () => {
  let lab: Lab;
  let dir: string;
  let client: MailClient;
  const sunk: SinkRecord[] = [];
  let nodes = new Map<string, MtaNode>();

  /** Sink records per Message-ID. */
  const sinkById = (): Map<string, SinkRecord[]> => {
    const map = new Map<string, SinkRecord[]>();
    for (const r of sunk) if (r.messageId) map.set(r.messageId, [...(map.get(r.messageId) ?? []), r]);
    return map;
  };

  /** Waits until the sink has every one of `ids` (by Message-ID). */
  const sinkHas = (ids: string[], timeoutMs = 10_000): Promise<Map<string, SinkRecord[]>> =>
    waitFor(
      () => {
        const map = sinkById();
        const missing = ids.filter((id) => !map.has(`<${id}>`));
        // Thrown, so the timeout error shows what was still missing at the end.
        if (missing.length) throw new Error(`${missing.length} missing: ${missing.slice(0, 5).join(' ')}`);
        return map;
      },
      { timeoutMs, what: `the sink to receive all ${ids.length} messages` },
    );

  async function startNodes(): Promise<void> {
    nodes = new Map(NODES.map((n) => [n, startMta(lab, dir, n, configFor(lab, n))]));
    await Promise.all([...nodes.values()].map((n) => n.waitLog((l) => l.event === 'started', 10_000, 'started')));
  }

  /** Runs a test body; on failure adds what each node logged last and its stderr to the error. */
  const withDump = (body: () => Promise<void>) => async (): Promise<void> => {
    try {
      await body();
    } catch (error) {
      const dump = [...nodes.values()].map((n) => `--- ${n.name} ${JSON.stringify(n.proc.exit)} stderr: ${n.proc.stderr.slice(-800)}\n${n.logs.filter((l) => l.event !== 'accepted').slice(-25).map((l) => JSON.stringify(l)).join('\n')}`);
      (error as Error).message += `\n${dump.join('\n')}`;
      throw error;
    }
  };

  /**
   * The 'accepted' log line of `node` for message `id`. Waited for: the client hears the 250
   * over SMTP, the test reads the log over a pipe, and either may come first.
   */
  const acceptedLog = (name: string, id: string): Promise<LogLine> =>
    node(name).waitLog((l) => l.event === 'accepted' && l.messageId === `<${id}>`, 5000, `accepted ${id}`);

  function node(name: string): MtaNode {
    const n = nodes.get(name);
    if (!n) throw new Error(`${name} was not started`);
    return n;
  }

  before(async () => {
    lab = await Lab.create({ hosts: [...NODES, 'client', 'sink'], ipv6: false });
    dir = tempDir();
    const sink = lab.spawnNode('sink', fixturePath('sink'), [JSON.stringify({ host: lab.host('sink').ipv4, port: PORT, delayMs: SINK_DELAY_MS })]);
    sink.onMessage((m) => {
      if ((m as { type?: string }).type !== 'received') return false;
      sunk.push(m as SinkRecord);
      return true;
    });
    await sink.nextMessage((m) => m.type === 'listening', 10_000);
    const proc = lab.spawnNode('client', fixturePath('mta-client'));
    await proc.nextMessage((m) => m.type === 'ready', 10_000);
    client = new MailClient(proc);
  });

  afterEach(async () => {
    await Promise.all([...nodes.values()].map((n) => n.proc.stop(5000)));
    nodes.clear();
    // A SIGKILLed node leaves its aliases behind (its kernel lives on); the next test starts clean.
    for (const h of NODES) {
      for (const a of await lab.addresses(h)) {
        if (a.address.startsWith('198.18.1.')) await lab.exec(h, ['ip', 'addr', 'del', `${a.address}/${a.prefix}`, 'dev', 'eth0'], { allowFailure: true });
      }
    }
  });

  after(async () => {
    await lab?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('inbound: 300 messages to the listener VIP while its holder is SIGKILLed; none lost, each at the sink from its binding IP', withDump(async () => {
    await startNodes();
    const holder = await holderOf(lab, LISTENER, NODES);
    await holderOf(lab, ACME, NODES, (h) => h === 'n2');
    await holderOf(lab, BETA, NODES);
    // Half acme, half beta: depending on where they are, some leave locally and some are relayed.
    // Every tenth goes with swaks, the rest with nodemailer.
    const batch = messages(`in-${lab.id}`, 300, (i) => `user${i}@${i % 2 ? 'acme' : 'beta'}.test`, () => LISTENER, (i) => (i % 10 === 0 ? 'swaks' : 'nodemailer'));
    const started = Date.now();
    const done = client.batch('inbound', batch, { concurrency: 8, maxAttempts: 80, deadlineMs: 45_000 });

    await waitFor(() => client.acceptedCount('inbound') >= 100, { timeoutMs: 30_000, what: '100 messages accepted before the kill' });
    const killedAt = Date.now();
    node(holder).proc.kill('SIGKILL');
    await node(holder).proc.exited;
    const results = await done;
    const finished = Date.now();

    assert.equal(results.length, 300);
    assert.deepEqual(results.filter((r) => !r.ok).map((r) => r.id), [], `every message accepted in the end: ${failed(results)}`);
    const survivors = NODES.filter((n) => n !== holder);
    const newHolder = await holderOf(lab, LISTENER, survivors);

    // Acceptances in the client's time order: the killed holder's, then only the new holder's.
    const accepted = client.attempts.filter((a) => a.batch === 'inbound' && a.ok).sort((a, b) => a.at - b.at);
    const by = accepted.map((a) => acceptedBy(a.response));
    const firstNew = by.indexOf(newHolder);
    assert.ok(firstNew >= 100, `the new holder ${newHolder} accepted only after the kill (first at #${firstNew})`);
    assert.deepEqual([...new Set(by.slice(0, firstNew))], [holder], 'before the failover only the old holder answered');
    assert.deepEqual([...new Set(by.slice(firstNew))], [newHolder], `after the failover only ${newHolder} answered`);

    // The sink has every message, from its binding's IP; a copy twice only if the client
    // saw a connection drop for it (the process died between the next hop's 250 and ours).
    const byId = await sinkHas(batch.map((m) => m.id));
    const ambiguous = new Set(client.attempts.filter((a) => a.batch === 'inbound' && a.kind === 'connection').map((a) => a.id));
    const duplicates: string[] = [];
    for (const [i, m] of batch.entries()) {
      const copies = byId.get(`<${m.id}>`) ?? [];
      const expected = i % 2 ? ACME : BETA;
      assert.deepEqual([...new Set(copies.map((c) => c.remoteAddress))], [expected], `${m.id} left from ${expected} only`);
      if (copies.length > 1) duplicates.push(m.id);
    }
    assert.deepEqual(duplicates.filter((id) => !ambiguous.has(id)), [], 'no duplicate without a dropped connection');
    assert.ok(duplicates.length <= 8, `at most one duplicate per concurrent session cut by the kill (got ${duplicates.length})`);

    // Retries of messages a surviving node had already sent for the dead one, acknowledged without a copy.
    const retriesRecognised = survivors.flatMap((n) => node(n).logs).filter((l) => (l.event === 'accepted' && l.via === 'duplicate') || (l.event === 'relayed-in' && l.duplicate === true)).length;
    const failedAttempts = client.attempts.filter((a) => a.batch === 'inbound' && !a.ok);
    const outageMs = (accepted[firstNew]?.at ?? 0) - killedAt;
    const lastOld = accepted[firstNew - 1]?.at ?? 0;
    console.log(
      `# inbound: 300 accepted in ${finished - started} ms (swaks ${batch.filter((m) => m.tool === 'swaks').length}); killed ${holder}, new holder ${newHolder}; ` +
        `first acceptance by ${newHolder} ${outageMs} ms after the kill (gap between acceptances ${(accepted[firstNew]?.at ?? 0) - lastOld} ms); ` +
        `failed attempts ${failedAttempts.length} (${['connection', 'temporary', 'permanent'].map((k) => `${k} ${failedAttempts.filter((a) => a.kind === k).length}`).join(', ')}); ` +
        `max attempts for one message ${Math.max(...results.map((r) => r.attempts))}; duplicates at the sink ${duplicates.length}, retries recognised as already handed on ${retriesRecognised}`,
    );
  }));

  test('outbound: acme leaves only from its IP, held here, relayed, during a planned move and after a crash', withDump(async () => {
    await startNodes();
    await holderOf(lab, ACME, NODES, (h) => h === 'n2');
    const acmeMail = (prefix: string, count: number, server: (i: number) => OutgoingMessage['server']): OutgoingMessage[] =>
      messages(`${prefix}-${lab.id}`, count, (i) => `user${i}@acme.test`, server);
    const options = { concurrency: 4, maxAttempts: 60, deadlineMs: 30_000 };
    const at = (name: string): string => lab.host(name).ipv4;

    // Held by the node that got the message: sent from there.
    const local = acmeMail('local', 10, () => at('n2'));
    let results = await client.batch('local', local, options);
    assert.deepEqual(results.filter((r) => !r.ok), []);
    for (const m of local) assert.equal((await acceptedLog('n2', m.id)).via, 'local', `${m.id} sent by n2 itself`);

    // Held by another node: relayed to n2, sent from there.
    const relayed = acmeMail('relay', 10, () => at('n1'));
    results = await client.batch('relay', relayed, options);
    assert.deepEqual(results.filter((r) => !r.ok), []);
    for (const m of relayed) {
      const line = await acceptedLog('n1', m.id);
      assert.equal(line.via, 'relay', `${m.id} relayed by n1`);
      assert.equal(line.holder, 'n2');
    }

    // Planned move: SIGTERM n2 while mail for acme flows in through n1 and n3 (relayed to n2, then
    // to the new holder) and through n2 itself (sent there; a send cut by the move follows acme to
    // its new holder; once n2 is gone the client falls back to n1).
    const planned = acmeMail('planned', 60, (i) => (i % 3 === 0 ? [at('n2'), at('n1')] : at(i % 2 ? 'n1' : 'n3')));
    const plannedDone = client.batch('planned', planned, options);
    await waitFor(() => client.acceptedCount('planned') >= 10, { timeoutMs: 20_000, what: '10 planned-phase messages accepted before the SIGTERM' });
    node('n2').proc.kill('SIGTERM');
    assert.deepEqual(await node('n2').proc.exited, { code: 0, signal: null }, 'n2 shut down cleanly');
    results = await plannedDone;
    assert.deepEqual(results.filter((r) => !r.ok).map((r) => r.id), [], `planned phase: all accepted ${failed(results)}`);
    const moved = await holderOf(lab, ACME, ['n1', 'n3']);
    const remaining = moved === 'n1' ? 'n3' : 'n1';

    // Crash: SIGKILL acme's new holder while the remaining node relays acme's mail to it.
    const crash = acmeMail('crash', 60, () => at(remaining));
    const crashDone = client.batch('crash', crash, options);
    await waitFor(() => client.acceptedCount('crash') >= 10, { timeoutMs: 20_000, what: '10 crash-phase messages accepted before the SIGKILL' });
    node(moved).proc.kill('SIGKILL');
    await node(moved).proc.exited;
    results = await crashDone;
    assert.deepEqual(results.filter((r) => !r.ok).map((r) => r.id), [], `crash phase: all accepted ${failed(results)}`);
    await holderOf(lab, ACME, [remaining]);
    const vias = new Set(await Promise.all(crash.map(async (m) => (await acceptedLog(remaining, m.id)).via)));
    assert.deepEqual([...vias].sort(), ['local', 'relay'], `${remaining} relayed to ${moved} before the crash and sent itself after`);

    // The sink: every message, only ever from acme's IP; copies twice only in the crash phase.
    const all = [...local, ...relayed, ...planned, ...crash];
    const byId = await sinkHas(all.map((m) => m.id));
    const sources = new Set(all.flatMap((m) => (byId.get(`<${m.id}>`) ?? []).map((r) => r.remoteAddress)));
    assert.deepEqual([...sources], [ACME], 'acme mail left from acme IP only');
    const copies = (list: OutgoingMessage[]): number => list.filter((m) => (byId.get(`<${m.id}>`)?.length ?? 0) > 1).length;
    assert.equal(copies(local) + copies(relayed) + copies(planned), 0, 'exactly once without a crash');
    // How the planned phase went out: which node sent it, locally or by relay to whom.
    await waitFor(() => planned.every((m) => NODES.some((n) => node(n).accepted(`<${m.id}>`).length > 0)), { timeoutMs: 5000, what: 'an accepted log line for every planned-phase message' });
    const plannedPaths = new Map<string, number>();
    for (const m of planned) {
      for (const n of NODES) {
        for (const l of node(n).accepted(`<${m.id}>`)) {
          const path = `${n} ${String(l.via)}${l.via === 'relay' ? `->${String(l.holder)}` : ''}`;
          plannedPaths.set(path, (plannedPaths.get(path) ?? 0) + 1);
        }
      }
    }
    const retried = (batch: string): string => {
      const failures = client.attempts.filter((a) => a.batch === batch && !a.ok);
      const kinds = new Map<string, number>();
      const names = new Map(lab.hosts().map((h) => [h.ipv4, h.name]));
      for (const a of failures) {
        const key = `${a.kind} at ${names.get(a.server) ?? a.server}`;
        kinds.set(key, (kinds.get(key) ?? 0) + 1);
      }
      return `${failures.length} ${JSON.stringify(Object.fromEntries(kinds))}`;
    };
    console.log(
      `# outbound: acme n2 -> ${moved} (SIGTERM) -> ${remaining} (SIGKILL); ${all.length} messages, all from ${ACME}; ` +
        `client retries planned ${retried('planned')}, crash ${retried('crash')}; duplicates in the crash phase ${copies(crash)}; planned phase paths ${JSON.stringify(Object.fromEntries(plannedPaths))}`,
    );
  }));

  test('BROKEN binding: gamma and delta name one IP differently; mail for them is refused and nothing leaves from it', withDump(async () => {
    await startNodes();
    await holderOf(lab, LISTENER, NODES);
    // n1 and n2 declare the IP, so they report it (n3 knows the bindings from their declarations).
    for (const n of ['n1', 'n2']) await node(n).waitLog((l) => l.event === 'conflict' && l.kind === 'broken' && l.ip === BROKEN_IP, 5000, `BROKEN ${BROKEN_IP}`);
    // Through the listener VIP and through every node (n1 says gamma, n2 says delta, n3 neither).
    const servers = [LISTENER, ...NODES.map((n) => lab.host(n).ipv4)];
    const refused = servers.flatMap((server, s) =>
      ['gamma', 'delta'].map((name, k) => ({ id: `broken-${s}-${name}-${lab.id}@client.test`, server, port: PORT, to: `user@${name}.test`, tool: (s + k) % 2 ? 'swaks' : 'nodemailer' }) as OutgoingMessage),
    );
    const results = await client.batch('broken', refused, { concurrency: 4, maxAttempts: 1, deadlineMs: 20_000 });
    for (const r of results) {
      assert.equal(r.kind, 'temporary', `${r.id}: deferred (4xx), got ${r.response}`);
      assert.match(r.response, /^451 .*BindingBrokenError/, r.id);
    }
    // Nobody holds the address, and the sink never heard from it.
    assert.deepEqual(await holdersOf(lab, BROKEN_IP, NODES), []);
    assert.deepEqual(sunk.filter((r) => r.remoteAddress === BROKEN_IP || refused.some((m) => r.messageId === `<${m.id}>`)), []);
    // The other bindings still work at the same time.
    const ok = await client.batch('not-broken', messages(`fine-${lab.id}`, 2, (i) => `x@${i ? 'acme' : 'beta'}.test`, () => LISTENER), { concurrency: 2, maxAttempts: 20, deadlineMs: 10_000 });
    assert.deepEqual(ok.filter((r) => !r.ok), []);
  }));
});
