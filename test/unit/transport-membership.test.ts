import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { networkInterfaces } from 'node:os';
import { PacketAuthenticator } from '../../lib/transport/auth';
import { DocumentKind, PacketType, encodeHeartbeat, encodePacket } from '../../lib/transport/codec';
import { OutgoingDocument } from '../../lib/transport/document-sync';
import { Membership, type MembershipOptions, type PeerState } from '../../lib/transport/membership';
import { MembershipPool, SECRET, vipsOf, waitFor } from './helpers/membership-pool';

const declare = (vips: string[]): Buffer => Buffer.from(JSON.stringify({ vips }));
const VIPS = ['198.18.0.1', '198.18.0.2', '198.18.0.3', '198.18.0.4'];

/** A port per test, away from common services. */
let nextPort = 20000 + Math.floor(Math.random() * 20000);
const pool = new MembershipPool();
after(() => pool.closeAll());

const node = pool.node.bind(pool);

function peerOf(membership: Membership, name: string): PeerState | undefined {
  return membership.peers().find((p) => p.node === name);
}

async function trio(extra: Partial<MembershipOptions> = {}): Promise<{ port: number; nodes: Membership[]; addresses: string[] }> {
  const port = nextPort++;
  const addresses = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
  const peers = addresses.map((a) => `${a}:${port}`);
  const nodes = addresses.map((address, i) => node(`n${i + 1}`, address, port, peers, extra));
  nodes.forEach((m, i) =>
    m.setLocal({
      declaration: declare(VIPS),
      holdings: new Map([[VIPS[i] as string, 10 + i]]),
      unhealthy: i === 2 ? new Set([VIPS[3] as string]) : new Set(),
      neighbours: [{ address: `198.18.1.${i + 1}`, mac: `02:00:00:00:00:0${i + 1}` }],
    }),
  );
  await Promise.all(nodes.map((m) => m.start()));
  return { port, nodes, addresses };
}

const complete = (m: Membership, names: string[]): boolean => names.every((n) => peerOf(m, n)?.live && peerOf(m, n)?.complete);

test('three nodes on loopback see each other and learn declarations, holdings with epochs, health and neighbours', async () => {
  const { nodes } = await trio();
  const [n1, n2, n3] = nodes as [Membership, Membership, Membership];
  await waitFor('complete views', () => complete(n1, ['n2', 'n3']) && complete(n2, ['n1', 'n3']) && complete(n3, ['n1', 'n2']));
  const seen = peerOf(n1, 'n3');
  assert.ok(seen);
  assert.ok(seen.declaration?.equals(declare(VIPS)));
  assert.deepEqual([...seen.holdings], [['198.18.0.3', 12]]);
  assert.deepEqual(seen.unhealthy, new Set(['198.18.0.4']));
  assert.equal(peerOf(n1, 'n1'), undefined, 'no peer record for this node');
  // Its own address is in the shared peer list, but it never sends to itself.
  assert.equal(n1.counters().ignored_own, 0);
  assert.ok((n1.counters().heartbeats_sent ?? 0) > 0);
  await waitFor('neighbours', () => peerOf(n1, 'n2')?.neighbours.length === 1);
  assert.deepEqual(peerOf(n1, 'n2')?.neighbours, [{ address: '198.18.1.2', mac: '02:00:00:00:00:02' }]);

  // A change of holder travels at once with its epoch.
  const changes: PeerState[] = [];
  n2.on('change', (p: PeerState) => changes.push(p));
  n1.setLocal({ declaration: declare(VIPS), holdings: new Map([['198.18.0.1', 10], ['198.18.0.4', 99]]), unhealthy: 'all' });
  await waitFor('new holdings on n2', () => {
    const p = peerOf(n2, 'n1');
    return !!p && p.complete && p.holdings.get('198.18.0.4') === 99 && p.unhealthy === 'all';
  });
  assert.ok(changes.length > 0);
  const counters = n2.counters();
  assert.equal(counters.dropped_bad_mac, 0);
  assert.equal(counters.dropped_replay, 0);
  await Promise.all(nodes.map((m) => m.close()));
});

test('operator moves travel to every node: pulled by digest after start, pushed on change, cleared', async () => {
  const port = nextPort++;
  const addresses = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
  const peers = addresses.map((a) => `${a}:${port}`);
  const nodes = addresses.map((address, i) => node(`n${i + 1}`, address, port, peers));
  const [a, b, c] = nodes as [Membership, Membership, Membership];
  const local = (moves: Map<string, { node: string; seq: number }>) => ({ declaration: declare(VIPS), holdings: new Map(), unhealthy: new Set<string>(), moves });
  // Set before start: nothing is pushed, so B and C must ask for the document the heartbeat names.
  a.setLocal(local(new Map([['198.18.0.2', { node: 'n3', seq: 1 }]])));
  b.setLocal(local(new Map()));
  c.setLocal(local(new Map()));
  const changes = new Map<Membership, PeerState[]>([[b, []], [c, []]]);
  for (const [m, list] of changes) m.on('change', (p: PeerState) => list.push(p));
  await Promise.all(nodes.map((m) => m.start()));
  const movesOf = (m: Membership) => peerOf(m, 'n1')?.moves;
  await waitFor('moves pulled by B and C', () => [b, c].every((m) => movesOf(m)?.get('198.18.0.2')?.seq === 1));
  assert.deepEqual(movesOf(b), new Map([['198.18.0.2', { node: 'n3', seq: 1 }]]));
  assert.ok((b.counters().requests_sent ?? 0) > 0);
  assert.equal(peerOf(a, 'n2')?.moves.size, 0, 'B announces no moves');

  // A newer move of the same VIP and a move of another: pushed at once, 'change' on both.
  const moved = new Map([
    ['198.18.0.2', { node: 'n2', seq: 2 }],
    ['198.18.0.4', { node: 'n1', seq: 3 }],
  ]);
  a.setLocal(local(moved));
  const sawChange = (m: Membership, test: (p: PeerState) => boolean): boolean => (changes.get(m) ?? []).some((p) => p.node === 'n1' && test(p));
  await waitFor('new moves on B and C', () => [b, c].every((m) => sawChange(m, (p) => p.moves.get('198.18.0.4')?.seq === 3)));
  for (const m of [b, c]) assert.deepEqual(movesOf(m), moved);

  // Clearing travels too.
  a.setLocal(local(new Map()));
  await waitFor('moves cleared on B and C', () => [b, c].every((m) => movesOf(m)?.size === 0 && sawChange(m, (p) => p.moves.size === 0)));
  for (const m of [a, b, c]) {
    assert.equal(m.counters().documents_rejected, 0);
    assert.equal(m.counters().dropped_malformed, 0);
  }
  assert.throws(() => a.setLocal(local(new Map([['198.18.0.1', { node: '', seq: 1 }]]))), /node name/);
  await Promise.all(nodes.map((m) => m.close()));
});

test('goodbye takes a peer down at once; with fastCrashDetection off, silence takes it down after dead-after; a restart is recognised', async () => {
  const { port, nodes, addresses } = await trio({ deadAfterMs: 200, fastCrashDetection: false });
  const [n1, n2, n3] = nodes as [Membership, Membership, Membership];
  await waitFor('all live', () => complete(n1, ['n2', 'n3']) && complete(n2, ['n1', 'n3']));

  const downs: Array<[string, string]> = [];
  n1.on('peer-down', (p: PeerState, reason: string) => downs.push([p.node, reason]));
  await n3.close();
  await waitFor('goodbye from n3', () => downs.some(([n, r]) => n === 'n3' && r === 'goodbye'));
  assert.equal(peerOf(n1, 'n3')?.leaving, true);

  await n2.close({ goodbye: false });
  await waitFor('timeout of n2', () => downs.some(([n, r]) => n === 'n2' && r === 'timeout'), 2000);
  assert.equal(n1.counters().send_refused, 0, 'no connected sockets, so no refusal is ever seen');

  const restarts: PeerState[] = [];
  n1.on('peer-restart', (p: PeerState) => restarts.push(p));
  const again = node('n2', addresses[1] as string, port, addresses.map((a) => `${a}:${port}`), { incarnation: n2.incarnation + 1n });
  again.setLocal({ declaration: declare(VIPS), holdings: new Map(), unhealthy: new Set() });
  await again.start();
  await waitFor('restart of n2', () => restarts.length === 1 && !!peerOf(n1, 'n2')?.live);
  assert.equal(peerOf(n1, 'n2')?.incarnation, n2.incarnation + 1n);
  assert.equal(peerOf(n1, 'n2')?.holdings.size, 0);
  await Promise.all([n1.close(), again.close()]);
});

/** Records every peer-down a node emits, with the ms since `since` (for diagnostics only). */
function recordDowns(membership: Membership, since: () => number): Array<{ node: string; reason: string; afterMs: number }> {
  const downs: Array<{ node: string; reason: string; afterMs: number }> = [];
  membership.on('peer-down', (p: PeerState, reason: string) => downs.push({ node: p.node, reason, afterMs: Math.round(performance.now() - since()) }));
  return downs;
}

test('a crashed process on a living host is declared unreachable by ICMP; its restart is seen; a goodbye still wins', async (t) => {
  // dead-after far beyond a heartbeat: 'unreachable' can only come from the port-unreachable path.
  const { port, nodes, addresses } = await trio({ deadAfterMs: 1500 });
  const [n1, n2, n3] = nodes as [Membership, Membership, Membership];
  await waitFor('all live', () => complete(n1, ['n2', 'n3']) && complete(n2, ['n1', 'n3']));
  let crashedAt = 0;
  const downs1 = recordDowns(n1, () => crashedAt);
  const downs2 = recordDowns(n2, () => crashedAt);
  crashedAt = performance.now();
  await n3.close({ goodbye: false });
  await waitFor('n3 down on n1 and n2', () => downs1.length > 0 && downs2.length > 0);
  t.diagnostic(`crash detected after ${downs1[0]?.afterMs} ms (n1) and ${downs2[0]?.afterMs} ms (n2), heartbeat 50 ms, dead-after 1500 ms`);
  assert.deepEqual(downs1.map((d) => [d.node, d.reason]), [['n3', 'unreachable']]);
  assert.deepEqual(downs2.map((d) => [d.node, d.reason]), [['n3', 'unreachable']]);
  assert.equal(n1.counters().peer_unreachable, 1);
  assert.ok((n1.counters().send_refused ?? 0) >= 1);
  assert.ok(peerOf(n1, 'n2')?.live && peerOf(n2, 'n1')?.live, 'the survivors are untouched');

  // The refusing endpoint's socket stays: the restarted process is heard through it again.
  const ups: string[] = [];
  n1.on('peer-up', (p: PeerState) => ups.push(p.node));
  const again = node('n3', addresses[2] as string, port, addresses.map((a) => `${a}:${port}`), { incarnation: n3.incarnation + 1n, deadAfterMs: 1500 });
  again.setLocal({ declaration: declare(VIPS), holdings: new Map(), unhealthy: new Set() });
  await again.start();
  await waitFor('n3 live again on n1', () => ups.includes('n3') && !!peerOf(n1, 'n3')?.live && peerOf(n1, 'n3')?.incarnation === n3.incarnation + 1n);

  // A goodbye is queued before the socket closes: it is read before any refusal is acted on.
  await again.close();
  await waitFor('second n3 down on n1', () => downs1.length === 2);
  assert.deepEqual(downs1[1] && [downs1[1].node, downs1[1].reason], ['n3', 'goodbye']);
  await waitFor('n3 refused after its goodbye', () => (n1.counters().send_refused ?? 0) >= 2);
  assert.equal(downs1.length, 2, 'a peer that left is not declared down again');
  assert.equal(n1.counters().peer_unreachable, 1);
  await Promise.all([n1.close(), n2.close()]);
});

test('a configured node that never started is refused but causes no peer-down (rolling start)', async () => {
  const port = nextPort++;
  const peers = ['127.0.0.1', '127.0.0.2', '127.0.0.3'].map((a) => `${a}:${port}`);
  const n1 = node('n1', '127.0.0.1', port, peers);
  const n2 = node('n2', '127.0.0.2', port, peers);
  const downs = [...recordDowns(n1, () => 0), ...recordDowns(n2, () => 0)];
  await Promise.all([n1.start(), n2.start()]);
  await waitFor('refusals from the absent 127.0.0.3 on both', () => (n1.counters().send_refused ?? 0) >= 5 && (n2.counters().send_refused ?? 0) >= 5);
  assert.deepEqual(downs, []);
  assert.ok(peerOf(n1, 'n2')?.live && peerOf(n2, 'n1')?.live);
  assert.equal(n1.counters().peer_unreachable, 0);
  await Promise.all([n1.close(), n2.close()]);
});

test('a second copy of a node on the same address and port still fails with EADDRINUSE (the peer sockets use SO_REUSEADDR)', async () => {
  const port = nextPort++;
  const peers = [`127.0.0.1:${port}`, `127.0.0.2:${port}`];
  const first = node('n1', '127.0.0.1', port, peers);
  await first.start();
  const copy = node('n1', '127.0.0.1', port, peers);
  await assert.rejects(copy.start(), { code: 'EADDRINUSE' });
  await Promise.all([first.close(), copy.close()]);
});

/** Heartbeats of a peer played by hand from a plain socket (real codec and MAC). */
function forgedHeartbeat(nodeName: string, incarnation: bigint, sequence: number): Buffer {
  const empty = (kind: DocumentKind): Buffer => new OutgoingDocument(kind, Buffer.alloc(0)).digest;
  const body = encodeHeartbeat({
    allUnhealthy: false,
    declarationDigest: empty(DocumentKind.Declaration),
    holdingsDigest: empty(DocumentKind.Holdings),
    neighboursDigest: empty(DocumentKind.Neighbours),
    movesDigest: empty(DocumentKind.Moves),
    vipCount: 0,
    held: Buffer.alloc(0),
    unhealthy: null,
  });
  const packet = encodePacket(PacketType.Heartbeat, Buffer.from('mail'), Buffer.from(nodeName), incarnation, sequence, body);
  new PacketAuthenticator(SECRET).sign(packet);
  return packet;
}

test('a peer heard again with the same incarnation after a refusal was not a crash: from then on only silence counts', async () => {
  const port = nextPort++;
  const n1 = node('n1', '127.0.0.1', port, [`127.0.0.1:${port}`, `127.0.0.4:${port}`], { deadAfterMs: 600 });
  const errors: Array<Error & { code?: string }> = [];
  n1.on('error', (error: Error) => errors.push(error));
  const downs = recordDowns(n1, () => 0);
  await n1.start();
  let sequence = 0;
  // The same process (incarnation) closing and rebinding its socket looks, on the wire, like a
  // firewall rejecting the cluster port or a forged ICMP: refusals while the peer is alive.
  const speak = async (): Promise<Socket> => {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(port, '127.0.0.4', resolve));
    socket.send(forgedHeartbeat('fake', 77n, ++sequence), port, '127.0.0.1');
    return socket;
  };
  const hush = (socket: Socket): Promise<void> => new Promise((resolve) => socket.close(() => resolve()));

  const first = await speak();
  await waitFor('fake live', () => !!peerOf(n1, 'fake')?.live);
  await hush(first);
  await waitFor('first refusal', () => downs.length === 1);
  assert.deepEqual(downs.map((d) => [d.node, d.reason]), [['fake', 'unreachable']]);

  const socket = await speak();
  await waitFor('fake live again', () => !!peerOf(n1, 'fake')?.live);
  assert.equal(n1.counters().refusals_disproved, 1);
  assert.deepEqual(errors.map((e) => e.code), ['EFALSEREFUSAL']);
  await hush(socket);
  const refused = n1.counters().send_refused ?? 0;
  await waitFor('more refusals', () => (n1.counters().send_refused ?? 0) >= refused + 3);
  assert.equal(downs.length, 1, 'refusals no longer count against this incarnation');
  await waitFor('silence takes it down', () => downs.length === 2, 3000);
  assert.deepEqual(downs[1] && [downs[1].node, downs[1].reason], ['fake', 'timeout']);
  await n1.close();
});

const hasIpv6Loopback = Object.values(networkInterfaces()).some((list) => list?.some((i) => i.address === '::1'));

test('over IPv6 (::1, one port per node) a crashed process is declared unreachable too', { skip: !hasIpv6Loopback && 'no ::1' }, async () => {
  const port = nextPort;
  nextPort += 3;
  const peers = [0, 1, 2].map((i) => `[::1]:${port + i}`);
  const nodes = [0, 1, 2].map((i) => node(`v${i}`, '::1', port + i, peers, { deadAfterMs: 1500 }));
  const [a, b, c] = nodes as [Membership, Membership, Membership];
  await Promise.all(nodes.map((m) => m.start()));
  await waitFor('all live over IPv6', () => ['v1', 'v2'].every((n) => peerOf(a, n)?.live) && !!peerOf(b, 'v0')?.live);
  const downs = recordDowns(a, () => 0);
  await c.close({ goodbye: false });
  await waitFor('v2 down on v0', () => downs.length > 0);
  assert.deepEqual(downs.map((d) => [d.node, d.reason]), [['v2', 'unreachable']]);
  assert.equal(peerOf(a, 'v1')?.live, true);
  await Promise.all([a.close(), b.close()]);
});

test('a node with the wrong secret teaches nothing and is counted as bad MAC', async () => {
  const port = nextPort++;
  const peers = [`127.0.0.1:${port}`, `127.0.0.2:${port}`];
  const good = node('good', '127.0.0.1', port, peers);
  const bad = node('bad', '127.0.0.2', port, peers, { secret: 'not the cluster secret at all' });
  await Promise.all([good.start(), bad.start()]);
  await waitFor('bad MACs counted', () => (good.counters().dropped_bad_mac ?? 0) >= 5);
  assert.equal(good.peers().length, 0);
  await Promise.all([good.close(), bad.close()]);
});

test('replayed captured packets are counted as replays and change nothing', async () => {
  const port = nextPort++;
  const capture = createSocket('udp4');
  await new Promise<void>((resolve) => capture.bind(port, '127.0.0.9', resolve));
  const captured: Buffer[] = [];
  capture.on('message', (packet, from) => {
    if (from.address === '127.0.0.1') captured.push(packet);
  });
  const peers = [`127.0.0.1:${port}`, `127.0.0.2:${port}`, `127.0.0.9:${port}`];
  const n1 = node('n1', '127.0.0.1', port, peers);
  const n2 = node('n2', '127.0.0.2', port, peers);
  n1.setLocal({ declaration: declare(VIPS), holdings: new Map(), unhealthy: new Set() });
  await Promise.all([n1.start(), n2.start()]);
  await waitFor('captures', () => captured.length >= 10);
  await waitFor('n2 sees n1', () => !!peerOf(n2, 'n1')?.live);
  const before = n2.counters().dropped_replay ?? 0;
  // Replay from the capture socket (another source address): the sequence gives it away.
  const replays = captured.slice(0, 5);
  for (const packet of replays) capture.send(packet, port, '127.0.0.2');
  await waitFor('replays dropped', () => (n2.counters().dropped_replay ?? 0) >= before + replays.length);
  assert.equal(peerOf(n2, 'n1')?.address, '127.0.0.1', 'replays from elsewhere did not move the peer');
  await Promise.all([n1.close(), n2.close()]);
  await new Promise<void>((resolve) => capture.close(() => resolve()));
});

test('a stall of this process longer than dead-after emits stall and kills no peer', async () => {
  const { nodes } = await trio({ deadAfterMs: 150 });
  const [n1, n2] = nodes as [Membership, Membership];
  await waitFor('all live', () => complete(n1, ['n2', 'n3']) && complete(n2, ['n1', 'n3']));
  const stalls: Array<{ lagMs: number }> = [];
  const downs: string[] = [];
  n1.on('stall', (info: { lagMs: number }) => stalls.push(info));
  n1.on('peer-down', (p: PeerState) => downs.push(p.node));
  const busyUntil = Date.now() + 500;
  while (Date.now() < busyUntil) {
    // Block the event loop, like a long GC or a synchronous call.
  }
  await waitFor('stall event', () => stalls.length > 0);
  assert.ok((stalls[0]?.lagMs ?? 0) > 150);
  // Two more dead-after periods of normal running: everyone is still live.
  const heard = n1.counters().heartbeats_received ?? 0;
  await waitFor('more heartbeats', () => (n1.counters().heartbeats_received ?? 0) > heard + 12);
  assert.deepEqual(downs, []);
  assert.ok(peerOf(n1, 'n2')?.live && peerOf(n1, 'n3')?.live);
  assert.ok((n1.counters().stalls ?? 0) >= 1);
  await Promise.all(nodes.map((m) => m.close()));
});

test('a declaration of 4,096 VIPs is pulled in windows over real UDP; the heartbeat stays under 1,400 bytes', async () => {
  const port = nextPort++;
  const many = Array.from({ length: 4096 }, (_, i) => `198.18.${i >> 8}.${i & 255}`);
  const capture = createSocket('udp4');
  await new Promise<void>((resolve) => capture.bind(port, '127.0.0.9', resolve));
  let largestHeartbeat = 0;
  capture.on('message', (packet) => {
    if (packet[3] === 1) largestHeartbeat = Math.max(largestHeartbeat, packet.length);
  });
  const peers = [`127.0.0.1:${port}`, `127.0.0.2:${port}`, `127.0.0.9:${port}`];
  const big = node('big', '127.0.0.1', port, peers);
  const other = node('other', '127.0.0.2', port, peers);
  const holdings = new Map(many.map((ip, i) => [ip, i + 1]));
  big.setLocal({ declaration: declare(many), holdings, unhealthy: new Set(many.slice(0, 100)) });
  await Promise.all([big.start(), other.start()]);
  await waitFor('complete view of big', () => !!peerOf(other, 'big')?.complete, 5000);
  const view = peerOf(other, 'big');
  assert.ok(view?.declaration?.equals(declare(many)));
  assert.equal(view?.holdings.size, 4096);
  assert.equal(view?.holdings.get('198.18.15.255'), 4096);
  assert.equal((view?.unhealthy as Set<string>).size, 100);
  await waitFor('a captured heartbeat', () => largestHeartbeat > 0);
  assert.ok(largestHeartbeat < 1400, `heartbeat ${largestHeartbeat} bytes`);
  await Promise.all([big.close(), other.close()]);
  await new Promise<void>((resolve) => capture.close(() => resolve()));
});

test('multicast on loopback (TTL 0: never leaves this host)', async () => {
  const port = nextPort++;
  const extra = { multicast: '239.255.77.1', multicastInterface: '127.0.0.1', multicastTtl: 0 };
  const a = node('a', '127.0.0.1', port, [], extra);
  const b = node('b', '127.0.0.2', port, [], extra);
  a.setLocal({ declaration: declare(VIPS), holdings: new Map([['198.18.0.1', 3]]), unhealthy: new Set() });
  b.setLocal({ declaration: declare(VIPS), holdings: new Map(), unhealthy: new Set() });
  await Promise.all([a.start(), b.start()]);
  await waitFor('multicast views', () => !!peerOf(a, 'b')?.complete && peerOf(b, 'a')?.holdings.get('198.18.0.1') === 3 && !!peerOf(b, 'a')?.complete);
  await Promise.all([a.close(), b.close()]);
});
