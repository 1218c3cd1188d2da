import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { BindingTransports, compileMessage } from '../../lib/mta/bindings';
import { RelayError } from '../../lib/mta/errors';
import { RelayClient } from '../../lib/mta/relay-client';
import { RelayServer } from '../../lib/mta/relay-server';
import { relayPassword, deriveRelayKey } from '../../lib/mta/relay-auth';
import { FakeDirectory, startSink, type Sink } from './helpers/fake-directory';

const SECRET = 'cluster secret for tests';
const ACME = '127.0.0.21';
const NODE_IPS = { A: '127.0.0.31', B: '127.0.0.32', C: '127.0.0.33' } as const;
type NodeName = keyof typeof NODE_IPS;

interface Node {
  name: NodeName;
  directory: FakeDirectory;
  transports: BindingTransports;
  relay: RelayServer;
}

let sink: Sink;
before(async () => {
  sink = await startSink('127.0.0.30');
});
after(async () => {
  await sink.close();
});

/** Three nodes in one process; each directory says `holders[node]` holds acme as that node sees it. */
async function cluster(holders: Record<NodeName, NodeName | null>): Promise<{ nodes: Record<NodeName, Node>; close(): Promise<void> }> {
  const nodes = {} as Record<NodeName, Node>;
  for (const name of Object.keys(NODE_IPS) as NodeName[]) {
    const directory = new FakeDirectory(name);
    directory.set('acme', { address: ACME, holder: holders[name] });
    const transports = new BindingTransports(directory, {
      transport: { host: sink.host, port: sink.port, ignoreTLS: true, connectionTimeout: 5000, greetingTimeout: 5000, socketTimeout: 5000 },
      relay: new RelayClient({ node: name, secret: SECRET, timeoutMs: 5000 }),
      sendDeadlineMs: 10000,
      retryDelayMs: 50,
    });
    const relay = new RelayServer({ directory, secret: SECRET, transports, host: NODE_IPS[name], port: 0, drainMs: 2000 });
    await relay.start();
    nodes[name] = { name, directory, transports, relay };
  }
  for (const node of Object.values(nodes)) {
    for (const peer of Object.values(nodes)) node.directory.setClusterAddress(peer.name, NODE_IPS[peer.name], peer.relay.port);
  }
  return {
    nodes,
    async close() {
      for (const node of Object.values(nodes)) {
        node.transports.close();
        await node.relay.stop();
      }
    },
  };
}

const mail = (subject: string) => ({ from: 'news@acme.example', to: ['r1@example.test', 'r2@example.test'], subject, text: 'hello' });

test('send on a node without the binding relays to the holder, which sends from the binding IP', async () => {
  const { nodes, close } = await cluster({ A: 'B', B: 'B', C: 'B' });
  try {
    const before = sink.messages.length;
    const relayed: string[] = [];
    nodes.B.relay.on('relayed', (m) => relayed.push(`${m.from}->${m.binding}`));
    const message = await compileMessage(mail('relayed'));
    const result = await nodes.A.transports.send('acme', message);
    assert.equal(result.via, 'relay');
    assert.equal(result.holder, 'B');
    assert.match(result.response, /^250 /);
    assert.deepEqual(relayed, ['A->acme']);
    const got = sink.messages.slice(before);
    assert.equal(got.length, 1);
    assert.equal(got[0]?.remoteAddress, ACME);
    assert.deepEqual(got[0]?.to, ['r1@example.test', 'r2@example.test']);
    // The binding line is gone: the sink gets exactly the bytes A submitted.
    assert.ok(got[0]?.raw.equals(message.raw));
  } finally {
    await close();
  }
});

test('wrong relay credentials are refused with 535 and nothing is delivered', async () => {
  const { nodes, close } = await cluster({ A: 'B', B: 'B', C: 'B' });
  try {
    const before = sink.messages.length;
    // A node configured with another cluster secret.
    const stranger = new BindingTransports(nodes.A.directory, {
      relay: new RelayClient({ node: 'A', secret: 'not the cluster secret', timeoutMs: 5000 }),
      sendDeadlineMs: 5000,
    });
    try {
      await assert.rejects(stranger.send('acme', mail('intruder')), (err: unknown) => {
        assert.ok(err instanceof RelayError);
        assert.equal(err.retryable, false);
        assert.equal(err.responseCode, 535);
        return true;
      });
    } finally {
      stranger.close();
    }
    // A valid user name with another node's password is refused as well.
    const key = deriveRelayKey(SECRET);
    const impostor = nodemailer.createTransport({
      host: NODE_IPS.B,
      port: nodes.B.relay.port,
      ignoreTLS: true,
      auth: { user: 'A', pass: relayPassword(key, 'C') },
    });
    await assert.rejects(impostor.sendMail(mail('impostor')), (err: { responseCode?: number }) => err.responseCode === 535);
    assert.equal(sink.messages.length, before);
  } finally {
    await close();
  }
});

test('a retried relay with the same Message-ID and envelope is delivered once', async () => {
  const { nodes, close } = await cluster({ A: 'B', B: 'B', C: 'B' });
  const client = new RelayClient({ node: 'A', secret: SECRET, timeoutMs: 5000 });
  try {
    const before = sink.messages.length;
    let duplicates = 0;
    nodes.B.relay.on('duplicate', () => duplicates++);
    const message = await compileMessage(mail('retried'));
    const peer = { node: 'B', host: NODE_IPS.B, port: nodes.B.relay.port };
    const first = await client.relay(peer, 'acme', message);
    const second = await client.relay(peer, 'acme', message);
    assert.match(first.response, /^250 /);
    assert.match(second.response, /^250 .*Already accepted/);
    assert.equal(duplicates, 1);
    assert.equal(sink.messages.length - before, 1);
    // Same Message-ID to other recipients is another message.
    await client.relay(peer, 'acme', { ...message, envelope: { from: message.envelope.from, to: ['r3@example.test'] } });
    assert.equal(sink.messages.length - before, 2);
  } finally {
    client.close();
    await close();
  }
});

test('when the holder moves mid-relay the message follows it and is sent once, from the binding IP', async () => {
  // A still thinks B holds acme; B has already handed it to C.
  const { nodes, close } = await cluster({ A: 'B', B: 'C', C: 'C' });
  try {
    const before = sink.messages.length;
    const refusals: string[] = [];
    nodes.B.relay.on('not-held', (info) => {
      refusals.push(`${info.binding} held by ${info.holder}`);
      // A learns of the move only after B refused (the worst case for the sender).
      nodes.A.directory.move('acme', 'C');
    });
    const delivered: string[] = [];
    nodes.C.relay.on('relayed', (m) => delivered.push(m.from));
    const result = await nodes.A.transports.send('acme', mail('moved'));
    assert.equal(result.via, 'relay');
    assert.equal(result.holder, 'C');
    assert.deepEqual(refusals, ['acme held by C']);
    assert.deepEqual(delivered, ['A']);
    const got = sink.messages.slice(before);
    assert.equal(got.length, 1);
    assert.equal(got[0]?.remoteAddress, ACME);
  } finally {
    await close();
  }
});

test('a relay for a binding nobody here holds is refused 451 4.4.0 naming the holder', async () => {
  const { nodes, close } = await cluster({ A: 'B', B: 'C', C: 'C' });
  const client = new RelayClient({ node: 'A', secret: SECRET, timeoutMs: 5000 });
  try {
    const before = sink.messages.length;
    const message = await compileMessage(mail('wrong holder'));
    await assert.rejects(client.relay({ node: 'B', host: NODE_IPS.B, port: nodes.B.relay.port }, 'acme', message), (err: { responseCode?: number; response?: string }) => {
      assert.equal(err.responseCode, 451);
      assert.match(err.response ?? '', /4\.4\.0 .*not held here.*holder is C/);
      return true;
    });
    assert.equal(sink.messages.length, before);
  } finally {
    client.close();
    await close();
  }
});

test('relay over STARTTLS with a pinned self-signed certificate; plaintext AUTH is refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mta-relay-tls-'));
  try {
    try {
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
        '-subj', '/CN=mta-vip relay', '-addext', `subjectAltName=IP:${NODE_IPS.B}`,
        '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
      ], { stdio: 'ignore' });
    } catch {
      t.skip('openssl CLI not available to make a test certificate');
      return;
    }
    const key = readFileSync(join(dir, 'key.pem'));
    const cert = readFileSync(join(dir, 'cert.pem'));
    const directory = new FakeDirectory('B');
    directory.set('acme', { address: ACME, holder: 'B' });
    const transportsB = new BindingTransports(directory, {
      transport: { host: sink.host, port: sink.port, ignoreTLS: true },
    });
    const server = new RelayServer({ directory, secret: SECRET, transports: transportsB, host: NODE_IPS.B, port: 0, tls: { key, cert }, drainMs: 2000 });
    await server.start();
    const client = new RelayClient({ node: 'A', secret: SECRET, tls: { ca: cert }, timeoutMs: 5000 });
    try {
      const before = sink.messages.length;
      const peer = { node: 'B', host: NODE_IPS.B, port: server.port };
      const reply = await client.relay(peer, 'acme', await compileMessage(mail('over tls')));
      assert.match(reply.response, /^250 /);
      assert.equal(sink.messages.length - before, 1);
      assert.equal(sink.messages.at(-1)?.remoteAddress, ACME);
      // The right password, but in the clear: refused before AUTH.
      const plain = nodemailer.createTransport({ host: NODE_IPS.B, port: server.port, ignoreTLS: true, auth: { user: 'A', pass: relayPassword(deriveRelayKey(SECRET), 'A') } });
      await assert.rejects(plain.sendMail(mail('cleartext')), (err: { responseCode?: number }) => err.responseCode === 538);
      assert.equal(sink.messages.length - before, 1);
    } finally {
      client.close();
      transportsB.close();
      await server.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
