import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PacketAuthenticator } from '../../lib/transport/auth';
import { DocumentKind, PacketType, encodeChunk, encodeHeartbeat, encodePacket, encodeRequest } from '../../lib/transport/codec';
import { DROP_REASONS } from '../../lib/transport/counters';
import { OutgoingDocument } from '../../lib/transport/document-sync';
import { MAX_MOVES, MAX_MOVE_ENTRY_BYTES, encodeHoldings, encodeMoves } from '../../lib/transport/documents';
import { Membership, type PeerState } from '../../lib/transport/membership';
import { VipList } from '../../lib/transport/vip-list';

const SECRET = 'a cluster secret of enough bytes';
const FROM = { address: '127.0.0.1', port: 7946 };
const vipsOf = (declaration: Buffer): string[] => (JSON.parse(declaration.toString()) as { vips: string[] }).vips;

/** Crafts signed packets as a fake peer (real codec, real HMAC). */
class Forge {
  sequence = 0;
  constructor(
    readonly node = 'peer',
    readonly incarnation = 1000n,
    readonly cluster = 'mail',
    readonly secret = SECRET,
  ) {}

  packet(type: PacketType, body: Buffer, sequence = ++this.sequence): Buffer {
    const packet = encodePacket(type, Buffer.from(this.cluster), Buffer.from(this.node), this.incarnation, sequence, body);
    new PacketAuthenticator(this.secret).sign(packet);
    return packet;
  }

  heartbeat(declaration: Buffer, held: string[], sequence?: number, moves: Buffer = Buffer.alloc(0)): Buffer {
    const vips = new VipList(vipsOf(declaration));
    const holdings = new OutgoingDocument(DocumentKind.Holdings, encodeHoldings(new Map(held.map((ip) => [ip, 1]))));
    const body = encodeHeartbeat({
      allUnhealthy: false,
      declarationDigest: new OutgoingDocument(DocumentKind.Declaration, declaration).digest,
      holdingsDigest: holdings.digest,
      neighboursDigest: new OutgoingDocument(DocumentKind.Neighbours, Buffer.alloc(0)).digest,
      movesDigest: new OutgoingDocument(DocumentKind.Moves, moves).digest,
      vipCount: vips.size,
      held: vips.toBitmap(held).bitmap,
      unhealthy: null,
    });
    return this.packet(PacketType.Heartbeat, body, sequence);
  }
}

function counterReader(membership: Membership): (name: string) => number {
  const counters = membership.counters();
  return (name) => counters[name] ?? 0;
}

function receiver(): Membership {
  return new Membership({ clusterId: 'mail', node: 'me', secret: SECRET, bind: '127.0.0.1', vipsOf });
}

const DECLARATION = Buffer.from(JSON.stringify({ vips: ['198.18.0.1', '198.18.0.2'] }));

test('constructor refuses a missing or short secret', () => {
  assert.throws(() => new Membership({ clusterId: 'mail', node: 'me', secret: 'too short', bind: '127.0.0.1', vipsOf }), /at least 16 bytes/);
  assert.throws(() => new Membership({ clusterId: 'mail', node: 'me', secret: '', bind: '127.0.0.1', vipsOf }), /secret/);
});

test('a valid heartbeat is accepted and makes the peer live', () => {
  const membership = receiver();
  const ups: PeerState[] = [];
  membership.on('peer-up', (peer: PeerState) => ups.push(peer));
  membership.receive(new Forge().heartbeat(DECLARATION, ['198.18.0.1']), FROM);
  assert.equal(membership.counters().accepted, 1);
  assert.equal(ups.length, 1);
  assert.equal(ups[0]?.node, 'peer');
  assert.equal(ups[0]?.complete, false, 'declaration not known yet');
});

test('each drop reason is counted for a crafted packet', () => {
  const membership = receiver();
  const forge = new Forge();
  const first = forge.heartbeat(DECLARATION, []);
  membership.receive(first, FROM);
  assert.equal(membership.counters().accepted, 1);

  const expect = (reason: string, packet: Buffer): void => {
    const before = membership.counters()[`dropped_${reason}`] ?? 0;
    membership.receive(packet, FROM);
    assert.equal(membership.counters()[`dropped_${reason}`], before + 1, reason);
  };
  const tampered = Buffer.from(forge.heartbeat(DECLARATION, []));
  tampered[tampered.length - 40] = (tampered[tampered.length - 40] ?? 0) ^ 0xff;
  expect('bad_mac', tampered);
  expect('bad_mac', new Forge('peer', 1000n, 'mail', 'the wrong secret, 16+ bytes').heartbeat(DECLARATION, []));
  expect('unknown_cluster', new Forge('peer', 1000n, 'other').heartbeat(DECLARATION, []));
  expect('replay', first);
  expect('replay', forge.heartbeat(DECLARATION, [], 1));
  expect('old_incarnation', new Forge('peer', 999n).heartbeat(DECLARATION, []));
  expect('malformed', first.subarray(0, 30));
  expect('malformed', forge.packet(PacketType.Heartbeat, Buffer.alloc(3)));
  expect('malformed', Buffer.alloc(80));
  const wrongVersion = Buffer.from(first);
  wrongVersion[2] = 9;
  expect('unsupported_version', wrongVersion);
  // Version 1 had no moves digest in the heartbeat: its packets cannot be read and are dropped.
  const versionOne = Buffer.from(first);
  versionOne[2] = 1;
  expect('unsupported_version', versionOne);
  expect('oversized', Buffer.alloc(1453, 1));
  expect('name_clash', new Forge('me', 5n).heartbeat(DECLARATION, []));
  const count = counterReader(membership);
  assert.equal(count('received'), count('accepted') + count('ignored_own') + DROP_REASONS.reduce((sum, r) => sum + count(`dropped_${r}`), 0));
});

test('a peer that said goodbye is down at once and its later heartbeats are dropped', () => {
  const membership = receiver();
  const forge = new Forge();
  const downs: string[] = [];
  membership.on('peer-down', (_peer: PeerState, reason: string) => downs.push(reason));
  membership.receive(forge.heartbeat(DECLARATION, []), FROM);
  membership.receive(forge.packet(PacketType.Goodbye, Buffer.alloc(0)), FROM);
  assert.deepEqual(downs, ['goodbye']);
  membership.receive(forge.heartbeat(DECLARATION, []), FROM);
  assert.equal(membership.counters().dropped_after_goodbye, 1);
  assert.equal(membership.peers()[0]?.live, false);
});

test('a higher incarnation is a restart: state reset, peer-restart emitted', () => {
  const membership = receiver();
  const restarts: PeerState[] = [];
  membership.on('peer-restart', (peer: PeerState) => restarts.push(peer));
  const old = new Forge('peer', 1000n);
  membership.receive(old.heartbeat(DECLARATION, ['198.18.0.1']), FROM);
  const fresh = new Forge('peer', 2000n);
  membership.receive(fresh.heartbeat(DECLARATION, []), FROM);
  assert.equal(restarts.length, 1);
  assert.equal(membership.peers()[0]?.incarnation, 2000n);
  // The old incarnation cannot come back.
  membership.receive(old.heartbeat(DECLARATION, ['198.18.0.1']), FROM);
  assert.equal(membership.counters().dropped_old_incarnation, 1);
});

test('pushed chunks complete a peer view: declaration, holdings with epochs', () => {
  const membership = receiver();
  const forge = new Forge();
  const declaration = new OutgoingDocument(DocumentKind.Declaration, DECLARATION);
  const holdings = new OutgoingDocument(DocumentKind.Holdings, encodeHoldings(new Map([['198.18.0.2', 1]])));
  membership.receive(forge.packet(PacketType.Chunk, encodeChunk(declaration.chunk(0))), FROM);
  membership.receive(forge.packet(PacketType.Chunk, encodeChunk(holdings.chunk(0))), FROM);
  membership.receive(forge.heartbeat(DECLARATION, ['198.18.0.2']), FROM);
  const peer = membership.peers()[0];
  assert.ok(peer);
  assert.equal(peer.complete, true);
  assert.deepEqual([...peer.holdings], [['198.18.0.2', 1]]);
  assert.ok(peer.declaration?.equals(DECLARATION));
  assert.equal(membership.counters().documents_completed, 2);
});

test('pushed moves reach the peer view and emit change; an empty document clears them', () => {
  const membership = receiver();
  const forge = new Forge();
  const changes: PeerState[] = [];
  membership.on('change', (peer: PeerState) => changes.push(peer));
  membership.receive(forge.heartbeat(DECLARATION, []), FROM);
  assert.deepEqual(membership.peers()[0]?.moves, new Map(), 'no moves announced: known empty without a transfer');

  const moves = encodeMoves(new Map([['198.18.0.2', { node: 'me', seq: 4 }]]));
  const document = new OutgoingDocument(DocumentKind.Moves, moves);
  membership.receive(forge.packet(PacketType.Chunk, encodeChunk(document.chunk(0))), FROM);
  assert.deepEqual(membership.peers()[0]?.moves, new Map([['198.18.0.2', { node: 'me', seq: 4 }]]));
  assert.deepEqual(changes.at(-1)?.moves, new Map([['198.18.0.2', { node: 'me', seq: 4 }]]));
  const before = changes.length;
  // The heartbeat announcing the same moves changes nothing more about them.
  membership.receive(forge.heartbeat(DECLARATION, [], undefined, moves), FROM);
  assert.deepEqual(membership.peers()[0]?.moves, new Map([['198.18.0.2', { node: 'me', seq: 4 }]]));

  const empty = new OutgoingDocument(DocumentKind.Moves, Buffer.alloc(0));
  membership.receive(forge.packet(PacketType.Chunk, encodeChunk(empty.chunk(0))), FROM);
  assert.deepEqual(membership.peers()[0]?.moves, new Map());
  assert.ok(changes.length > before && changes.at(-1)?.moves.size === 0, 'clearing emits change');
  assert.equal(membership.counters().documents_completed, 2);
});

test('a malformed moves document is counted as rejected and leaves the known moves alone', () => {
  const membership = receiver();
  const errors: unknown[] = [];
  membership.on('error', (error: unknown) => errors.push(error));
  const forge = new Forge();
  const good = encodeMoves(new Map([['198.18.0.1', { node: 'n1', seq: 1 }]]));
  membership.receive(forge.heartbeat(DECLARATION, [], undefined, good), FROM);
  membership.receive(forge.packet(PacketType.Chunk, encodeChunk(new OutgoingDocument(DocumentKind.Moves, good).chunk(0))), FROM);
  assert.equal(membership.peers()[0]?.moves.get('198.18.0.1')?.seq, 1);

  const changes: PeerState[] = [];
  membership.on('change', (peer: PeerState) => changes.push(peer));
  const later = encodeMoves(new Map([['198.18.0.2', { node: 'n2', seq: 2 }]]));
  const malformed = [
    Buffer.concat([later, good]), // out of order
    Buffer.concat([good, good]), // duplicate address
    good.subarray(0, good.length - 1), // truncated seq
    Buffer.from([4, 198, 18, 0, 1, 2, 0xc3, 0x28, 0, 0, 0, 0, 0, 1]), // invalid UTF-8 name
    Buffer.concat([Buffer.from([4, 198, 18, 0, 1, 65]), Buffer.alloc(65, 0x61), Buffer.alloc(6)]), // name of 65 bytes
  ];
  for (const bytes of malformed) {
    const rejected = membership.counters().documents_rejected ?? 0;
    // Well framed and with the right digest: only the content is wrong.
    const document = new OutgoingDocument(DocumentKind.Moves, bytes);
    membership.receive(forge.heartbeat(DECLARATION, [], undefined, bytes), FROM);
    membership.receive(forge.packet(PacketType.Chunk, encodeChunk(document.chunk(0))), FROM);
    assert.equal(membership.counters().documents_rejected, rejected + 1, bytes.toString('hex'));
    assert.deepEqual(membership.peers()[0]?.moves, new Map([['198.18.0.1', { node: 'n1', seq: 1 }]]));
  }
  assert.ok(changes.every((peer) => peer.moves.get('198.18.0.1')?.seq === 1), 'no change carried a malformed move');

  // Longer than 64 moves could ever be: discarded chunk by chunk, before any reassembly.
  const discarded = membership.counters().chunks_discarded ?? 0;
  const huge = new OutgoingDocument(DocumentKind.Moves, Buffer.alloc(MAX_MOVES * MAX_MOVE_ENTRY_BYTES + 1, 4));
  membership.receive(forge.packet(PacketType.Chunk, encodeChunk(huge.chunk(0))), FROM);
  assert.equal(membership.counters().chunks_discarded, discarded + 1);
  assert.equal(membership.counters().reassembly_bytes, 0);
  assert.deepEqual(errors, []);
});

test('fast fuzz corpus: 20,000 random and mutated packets never throw and all are counted', () => {
  const membership = receiver();
  const errors: unknown[] = [];
  membership.on('error', (error: unknown) => errors.push(error));
  const forge = new Forge();
  const declaration = new OutgoingDocument(DocumentKind.Declaration, DECLARATION);
  const moves = new OutgoingDocument(DocumentKind.Moves, encodeMoves(new Map([['198.18.0.1', { node: 'me', seq: 9 }]])));
  const seeds = [
    forge.heartbeat(DECLARATION, ['198.18.0.1'], undefined, moves.bytes),
    forge.packet(PacketType.Chunk, encodeChunk(declaration.chunk(0))),
    forge.packet(PacketType.Chunk, encodeChunk(moves.chunk(0))),
    forge.packet(PacketType.Request, encodeRequest({ kind: DocumentKind.Declaration, target: 'me', digest: declaration.digest, from: 0 })),
    forge.packet(PacketType.Goodbye, Buffer.alloc(0)),
  ];
  const total = 20000;
  for (let i = 0; i < total; i++) {
    let packet: Buffer;
    const seed = seeds[i % seeds.length] as Buffer;
    switch (i % 5) {
      case 0:
        packet = randomBytes(i % 1500);
        break;
      case 1: {
        packet = Buffer.from(seed);
        for (let flips = 1 + (i % 4); flips > 0; flips--) {
          const at = (i * 7919 + flips * 104729) % packet.length;
          packet[at] = (packet[at] ?? 0) ^ (1 << (i % 8));
        }
        break;
      }
      case 2:
        packet = seed.subarray(0, i % (seed.length + 1));
        break;
      case 3: {
        // Valid MAC over a mutated body: exercises the body decoders behind authentication.
        const body = Buffer.from(seed.subarray(28, seed.length - 32));
        if (body.length) body[i % body.length] = (body[i % body.length] ?? 0) ^ 0xff;
        packet = forge.packet((1 + (i % 4)) as PacketType, i % 3 ? body : randomBytes(i % 200));
        break;
      }
      default:
        packet = Buffer.concat([seed, randomBytes(i % 40)]);
    }
    membership.receive(packet, FROM);
  }
  const count = counterReader(membership);
  assert.equal(errors.length, 0, String(errors[0]));
  assert.equal(count('received'), total);
  const drops = DROP_REASONS.reduce((sum, r) => sum + count(`dropped_${r}`), 0);
  assert.equal(count('accepted') + count('ignored_own') + drops, total);
  assert.ok(count('dropped_bad_mac') > 0 && count('dropped_malformed') > 0 && count('accepted') > 0);
});
