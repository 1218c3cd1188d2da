/**
 * How much document traffic the membership makes: after peers join, each document should be
 * fetched about once, a burst of local changes should be pushed about once, and a transfer
 * still arriving should not be asked for again. Real Membership instances on 127.0.0.x.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { PacketAuthenticator } from '../../lib/transport/auth';
import {
  DocumentKind,
  PacketType,
  chunkCount,
  decodeRequest,
  encodeChunk,
  encodeHeartbeat,
  encodePacket,
  readEnvelope,
} from '../../lib/transport/codec';
import { OutgoingDocument } from '../../lib/transport/document-sync';
import { encodeHoldings } from '../../lib/transport/documents';
import type { Membership, PeerState } from '../../lib/transport/membership';
import { MembershipPool, SECRET, vipsOf, waitFor } from './helpers/membership-pool';
import { VipList } from '../../lib/transport/vip-list';

/** A declaration of these VIPs; `node` makes each node's differ, as the runtime's do. */
const declare = (vips: string[], node: string): Buffer => Buffer.from(JSON.stringify({ vips, node }));
const THOUSAND = Array.from({ length: 1000 }, (_, i) => `198.18.${10 + (i >> 8)}.${i & 255}`);

let nextPort = 20000 + Math.floor(Math.random() * 20000);
const pool = new MembershipPool();
after(() => pool.closeAll());

const node = pool.node.bind(pool);

const peerOf = (m: Membership, name: string): PeerState | undefined => m.peers().find((p) => p.node === name);
const counter = (m: Membership, name: string): number => m.counters()[name] ?? 0;
const sum = (nodes: Membership[], name: string): number => nodes.reduce((total, m) => total + counter(m, name), 0);
const holdingsChunks = (holdings: Map<string, number>): number => chunkCount(encodeHoldings(holdings).length);

test('after two peers join a holder of 1,000 VIPs, each document crosses the wire about once', async () => {
  const port = nextPort++;
  const addresses = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
  const peers = addresses.map((a) => `${a}:${port}`);
  const nodes = addresses.map((address, i) => node(`n${i + 1}`, address, port, peers));
  const [holder] = nodes as [Membership];
  const held = new Map(THOUSAND.map((ip) => [ip, 7]));
  nodes.forEach((m, i) => m.setLocal({ declaration: declare(THOUSAND, m.node), holdings: i === 0 ? held : new Map(), unhealthy: new Set() }));
  await holder.start();
  await Promise.all(nodes.slice(1).map((m) => m.start()));
  const names = nodes.map((m) => m.node);
  await waitFor('complete views everywhere', () => nodes.every((m) => names.every((n) => n === m.node || peerOf(m, n)?.complete)));
  assert.equal(peerOf(nodes[1] as Membership, 'n1')?.holdings.get('198.18.13.231'), 7);

  // Every node needs every other node's declaration and holdings (neighbours and moves are empty).
  const declarationChunks = chunkCount(declare(THOUSAND, 'n1').length);
  const needed = nodes.length * (nodes.length - 1) * declarationChunks + 2 * holdingsChunks(held) + 4 * holdingsChunks(new Map());
  const sent = sum(nodes, 'chunks_sent');
  assert.ok(sent >= needed, `${sent} chunks sent, at least ${needed} needed`);
  assert.ok(sent <= 2 * needed, `${sent} chunks sent for ${needed} needed: documents are sent again and again`);
  assert.equal(sum(nodes, 'ignored_own'), 0, 'nobody sends to itself');
  assert.equal(sum(nodes, 'documents_rejected'), 0);
  await Promise.all(nodes.map((m) => m.close()));
});

test('1,000 VIPs acquired one by one in one turn of the event loop are pushed once or twice, not once per VIP', async () => {
  const port = nextPort++;
  const addresses = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
  const peers = addresses.map((a) => `${a}:${port}`);
  const nodes = addresses.map((address, i) => node(`n${i + 1}`, address, port, peers));
  const [holder, ...others] = nodes as [Membership, Membership, Membership];
  for (const m of nodes) m.setLocal({ declaration: declare(THOUSAND, m.node), holdings: new Map(), unhealthy: new Set() });
  await Promise.all(nodes.map((m) => m.start()));
  const names = nodes.map((m) => m.node);
  await waitFor('complete views everywhere', () => nodes.every((m) => names.every((n) => n === m.node || peerOf(m, n)?.complete)));

  const before = counter(holder, 'chunks_sent');
  const held = new Map<string, number>();
  for (const ip of THOUSAND) {
    held.set(ip, 3);
    holder.setLocal({ declaration: declare(THOUSAND, holder.node), holdings: new Map(held), unhealthy: new Set() });
  }
  await waitFor('every VIP with its epoch on both peers', () =>
    others.every((m) => {
      const view = peerOf(m, 'n1');
      return !!view?.complete && view.holdings.size === 1000 && [...view.holdings.values()].every((epoch) => epoch === 3);
    }),
  );
  const pushed = counter(holder, 'chunks_sent') - before;
  // One push now (the first VIP) and one at the next heartbeat with everything else. A heartbeat
  // that announced the new document before pushing it would make each peer ask for all of it.
  const bound = 1 + holdingsChunks(held);
  assert.ok(pushed <= bound, `${pushed} chunks pushed for a ${holdingsChunks(held)}-chunk document (bound ${bound}): one push per VIP`);
  await Promise.all(nodes.map((m) => m.close()));
});

/** A peer played by the test: a plain UDP socket sending signed packets and recording requests. */
class ScriptedPeer {
  private sequence = 0;
  private readonly auth = new PacketAuthenticator(SECRET);
  readonly requests: Array<{ kind: DocumentKind; from: number }> = [];

  private constructor(
    readonly socket: Socket,
    readonly target: { address: string; port: number },
  ) {
    socket.on('message', (packet) => {
      const envelope = readEnvelope(packet);
      if (typeof envelope === 'string' || envelope.type !== PacketType.Request) return;
      const request = decodeRequest(envelope.body);
      if (typeof request !== 'string') this.requests.push({ kind: request.kind, from: request.from });
    });
  }

  static async open(address: string, target: { address: string; port: number }): Promise<ScriptedPeer> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, address, resolve));
    return new ScriptedPeer(socket, target);
  }

  send(type: PacketType, body: Buffer): void {
    const packet = encodePacket(type, Buffer.from('mail'), Buffer.from('slow'), 5000n, ++this.sequence, body);
    this.auth.sign(packet);
    this.socket.send(packet, this.target.port, this.target.address);
  }

  heartbeat(declaration: OutgoingDocument, vips: VipList): void {
    const empty = new OutgoingDocument(DocumentKind.Holdings, Buffer.alloc(0)).digest;
    this.send(
      PacketType.Heartbeat,
      encodeHeartbeat({ allUnhealthy: false, declarationDigest: declaration.digest, holdingsDigest: empty, neighboursDigest: empty, movesDigest: empty, vipCount: vips.size, held: vips.toBitmap([]).bitmap, unhealthy: null }),
    );
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

test('a transfer still arriving is not asked for again; one that stops is asked for from its first missing chunk', async (t) => {
  // The receiver's clock is the test's: each chunk arrives 30 ms (of its time) after the one
  // before, slower than the retry period (50 ms) for the whole window, never silent for that long.
  let clock = 1_000_000;
  const port = nextPort++;
  const receiver = node('receiver', '127.0.0.2', port, [], { now: () => clock });
  receiver.setLocal({ declaration: declare(['198.18.0.1'], 'receiver'), holdings: new Map(), unhealthy: new Set() });
  await receiver.start();
  const peer = await ScriptedPeer.open('127.0.0.1', { address: '127.0.0.2', port });
  t.after(() => peer.close());
  const declaration = new OutgoingDocument(DocumentKind.Declaration, declare(THOUSAND, 'slow'));
  const vips = new VipList(THOUSAND);
  const declarationRequests = (): Array<{ kind: DocumentKind; from: number }> => peer.requests.filter((r) => r.kind === DocumentKind.Declaration);

  peer.heartbeat(declaration, vips);
  await waitFor('the first request', () => declarationRequests().length === 1);
  assert.equal(declarationRequests()[0]?.from, 0);
  const firstWindow = declaration.window(0).slice(0, 10);
  for (const index of firstWindow) {
    clock += 30;
    const ticks = counter(receiver, 'heartbeats_sent');
    peer.heartbeat(declaration, vips);
    peer.send(PacketType.Chunk, encodeChunk(declaration.chunk(index)));
    await waitFor(`chunk ${index}`, () => counter(receiver, 'chunks_received') === index + 1);
    // Let the receiver's failure detector and request retries run (they follow each tick).
    await waitFor('two ticks', () => counter(receiver, 'heartbeats_sent') >= ticks + 2);
  }
  assert.deepEqual(declarationRequests(), [{ kind: DocumentKind.Declaration, from: 0 }], 'asked again while chunks kept arriving');

  // Silence longer than the retry period: the rest is asked for, from the first chunk missing.
  clock += 60;
  peer.heartbeat(declaration, vips);
  await waitFor('a retry', () => declarationRequests().length === 2);
  assert.equal(declarationRequests()[1]?.from, firstWindow.length);
  assert.equal(peerOf(receiver, 'slow')?.live, true);
  await receiver.close();
});
