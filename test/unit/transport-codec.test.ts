import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PacketAuthenticator } from '../../lib/transport/auth';
import { bytesToIp, canonicalIp, ipToBytes, parseEndpoint } from '../../lib/transport/address';
import {
  CHUNK_DATA_BYTES,
  DocumentKind,
  MAX_PACKET_BYTES,
  PacketType,
  decodeChunk,
  decodeHeartbeatState,
  encodeHeartbeatState,
  headerBytes,
  splitHeartbeat,
  withWitnesses,
  witnessId,
  witnessRoom,
  WITNESS_ID_BYTES,
  decodeRequest,
  encodeChunk,
  encodeHeartbeat,
  encodePacket,
  encodeRequest,
  readEnvelope,
} from '../../lib/transport/codec';
import { OutgoingDocument, Reassembly, ReassemblyBudget, sha256 } from '../../lib/transport/document-sync';
import {
  MAX_MOVES,
  MAX_MOVE_ENTRY_BYTES,
  decodeHoldings,
  decodeMoves,
  decodeNeighbours,
  encodeHoldings,
  encodeMoves,
  encodeNeighbours,
  type Move,
} from '../../lib/transport/documents';
import { ReplayGuard, REPLAY_WINDOW } from '../../lib/transport/replay-guard';
import { VipList } from '../../lib/transport/vip-list';

const SECRET = 'a cluster secret of enough bytes';

/** 4,096 VIPs: 198.18.0.0 .. 198.18.15.255 */
function manyVips(count = 4096): string[] {
  return Array.from({ length: count }, (_, i) => `198.18.${i >> 8}.${i & 255}`);
}

test('secret shorter than 16 bytes is refused with a clear message', () => {
  assert.throws(() => new PacketAuthenticator('short'), /at least 16 bytes/);
  assert.throws(() => new PacketAuthenticator(undefined), (e: Error & { code?: string }) => e.code === 'ESECRET');
  assert.doesNotThrow(() => new PacketAuthenticator(Buffer.alloc(16, 1)));
});

test('a packet round-trips through the envelope and verifies; any flipped bit fails the MAC', () => {
  const auth = new PacketAuthenticator(SECRET);
  const body = encodeRequest({ kind: DocumentKind.Holdings, target: 'n2', digest: Buffer.alloc(32, 7), from: 5 });
  const packet = encodePacket(PacketType.Request, Buffer.from('mail'), Buffer.from('n1'), 123456789n << 16n, 42, body);
  auth.sign(packet);
  const envelope = readEnvelope(packet);
  assert.ok(typeof envelope !== 'string');
  assert.equal(envelope.type, PacketType.Request);
  assert.equal(envelope.cluster.toString(), 'mail');
  assert.equal(envelope.node, 'n1');
  assert.equal(envelope.incarnation, 123456789n << 16n);
  assert.equal(envelope.sequence, 42);
  assert.deepEqual(decodeRequest(envelope.body), { kind: DocumentKind.Holdings, target: 'n2', digest: Buffer.alloc(32, 7), from: 5 });
  assert.ok(auth.verify(packet));
  for (const index of [0, 10, packet.length - 1]) {
    const copy = Buffer.from(packet);
    copy[index] = (copy[index] ?? 0) ^ 1;
    assert.equal(auth.verify(copy), false, `flip at ${index}`);
  }
  assert.equal(new PacketAuthenticator('another secret of 16+ bytes').verify(packet), false);
});

test('heartbeat with 4,096 declared VIPs, all held and some unhealthy, stays under 1,400 bytes and leaves room for 23 witnesses', () => {
  const vips = new VipList(manyVips());
  const held = vips.toBitmap(vips.ips).bitmap;
  const unhealthy = vips.toBitmap(vips.ips.filter((_, i) => i % 7 === 0)).bitmap;
  const body = encodeHeartbeatState({
    allUnhealthy: false,
    declarationDigest: Buffer.alloc(32, 1),
    holdingsDigest: Buffer.alloc(8, 2),
    neighboursDigest: Buffer.alloc(8, 3),
    movesDigest: Buffer.alloc(8, 4),
    vipCount: vips.size,
    held,
    unhealthy,
  });
  // Longest names allowed: the worst case.
  const cluster = Buffer.alloc(64, 0x61);
  const node = Buffer.alloc(64, 0x62);
  const packet = encodePacket(PacketType.Heartbeat, cluster, node, 1n, 1, withWitnesses(body, []));
  assert.ok(packet.length < 1400, `heartbeat is ${packet.length} bytes`);
  const room = witnessRoom(headerBytes(cluster, node), body.length);
  assert.equal(room, 23);
  const witnesses = Array.from({ length: room }, (_, i) => ({ id: witnessId(`n${i}`, 1n), ageMs: i }));
  const full = encodePacket(PacketType.Heartbeat, cluster, node, 1n, 1, withWitnesses(body, witnesses));
  assert.ok(full.length <= MAX_PACKET_BYTES, `heartbeat with ${room} witnesses is ${full.length} bytes`);
  assert.throws(() => encodePacket(PacketType.Heartbeat, cluster, node, 1n, 1, withWitnesses(body, [...witnesses, ...witnesses.slice(0, 1)])), /exceeds/);
  const beat = decodeHeartbeatState(body);
  assert.ok(typeof beat !== 'string');
  assert.equal(beat.vipCount, 4096);
  assert.ok(beat.movesDigest.equals(Buffer.alloc(8, 4)));
  assert.ok(beat.neighboursDigest.equals(Buffer.alloc(8, 3)));
  assert.deepEqual(vips.fromBitmap(beat.held), vips.ips);
  assert.deepEqual(vips.fromBitmap(beat.unhealthy ?? Buffer.alloc(0)), vips.ips.filter((_, i) => i % 7 === 0));
});

test('heartbeat decoder rejects wrong lengths, unknown flags and non-zero padding', () => {
  const vips = new VipList(['198.18.0.1', '198.18.0.2', '198.18.0.3']);
  const good = encodeHeartbeatState({ allUnhealthy: false, declarationDigest: Buffer.alloc(32), holdingsDigest: Buffer.alloc(8), neighboursDigest: Buffer.alloc(8), movesDigest: Buffer.alloc(8), vipCount: 3, held: vips.toBitmap(['198.18.0.2']).bitmap, unhealthy: null });
  assert.ok(typeof decodeHeartbeatState(good) !== 'string');
  assert.equal(decodeHeartbeatState(good.subarray(0, good.length - 1)), 'malformed');
  assert.equal(decodeHeartbeatState(Buffer.concat([good, Buffer.alloc(1)])), 'malformed');
  const flags = Buffer.from(good);
  flags[0] = 0x80;
  assert.equal(decodeHeartbeatState(flags), 'malformed');
  const padding = Buffer.from(good);
  padding[padding.length - 1] = (padding[padding.length - 1] ?? 0) | 1;
  assert.equal(decodeHeartbeatState(padding), 'malformed');
});

test('witnesses ride after the state, with the count last: the state cuts off unchanged whatever the ages', () => {
  const vips = new VipList(['198.18.0.1', '198.18.0.2']);
  const state = encodeHeartbeatState({ allUnhealthy: false, declarationDigest: Buffer.alloc(32), holdingsDigest: Buffer.alloc(8), neighboursDigest: Buffer.alloc(8), movesDigest: Buffer.alloc(8), vipCount: 2, held: vips.toBitmap(['198.18.0.2']).bitmap, unhealthy: null });
  const a = witnessId('n1', 7n);
  const b = witnessId('n2', 7n);
  assert.equal(a.length, WITNESS_ID_BYTES);
  assert.ok(!a.equals(witnessId('n1', 8n)), 'another incarnation is another id');
  assert.ok(a.equals(witnessId('n1', 7n)), 'the same on every node');
  for (const ages of [[0, 12], [199, 70_000]]) {
    const split = splitHeartbeat(withWitnesses(state, [{ id: a, ageMs: ages[0] as number }, { id: b, ageMs: ages[1] as number }]));
    assert.ok(typeof split !== 'string');
    assert.ok(split.state.equals(state));
    assert.deepEqual(split.witnesses.map((w) => [w.id.toString('hex'), w.ageMs]), [[a.toString('hex'), ages[0]], [b.toString('hex'), Math.min(ages[1] as number, 0xffff)]]);
  }
  const none = splitHeartbeat(encodeHeartbeat({ allUnhealthy: false, declarationDigest: Buffer.alloc(32), holdingsDigest: Buffer.alloc(8), neighboursDigest: Buffer.alloc(8), movesDigest: Buffer.alloc(8), vipCount: 2, held: vips.toBitmap([]).bitmap, unhealthy: null }));
  assert.ok(typeof none !== 'string' && none.witnesses.length === 0);
  // A count that claims more witnesses than the body has room for, or no count at all.
  const lying = withWitnesses(state, []);
  lying[lying.length - 1] = 200;
  assert.equal(splitHeartbeat(lying), 'malformed');
  assert.equal(splitHeartbeat(state.subarray(0, 10)), 'malformed');
});

test('a declaration of 4,096 VIPs travels in chunks and reassembles to the same bytes and digest', () => {
  const declaration = Buffer.from(JSON.stringify({ vips: manyVips(), note: 'x'.repeat(1000) }));
  const outgoing = new OutgoingDocument(DocumentKind.Declaration, declaration);
  assert.ok(outgoing.count > 1);
  const budget = new ReassemblyBudget(declaration.length);
  const reassembly = new Reassembly(DocumentKind.Declaration, outgoing.digest, declaration.length, outgoing.count, budget, 0);
  // Out of order, with a duplicate.
  const order = [...Array(outgoing.count).keys()].reverse();
  for (const index of [...order, 0]) {
    const packet = encodePacket(PacketType.Chunk, Buffer.from('c'), Buffer.from('n'), 1n, index + 1, encodeChunk(outgoing.chunk(index)));
    assert.ok(packet.length <= MAX_PACKET_BYTES);
    const envelope = readEnvelope(packet);
    assert.ok(typeof envelope !== 'string');
    const chunk = decodeChunk(envelope.body);
    assert.ok(typeof chunk !== 'string');
    reassembly.add(chunk, 1);
  }
  const whole = reassembly.assemble();
  assert.ok(whole);
  assert.ok(whole.equals(declaration));
  assert.ok(sha256(whole).equals(outgoing.digest));
  assert.equal(budget.used, declaration.length);
  reassembly.release();
  assert.equal(budget.used, 0);
});

test('reassembly refuses chunks beyond its budget and a document whose digest does not match', () => {
  const bytes = Buffer.alloc(CHUNK_DATA_BYTES * 3, 9);
  const outgoing = new OutgoingDocument(DocumentKind.Holdings, bytes);
  const budget = new ReassemblyBudget(CHUNK_DATA_BYTES * 2);
  const reassembly = new Reassembly(DocumentKind.Holdings, outgoing.digest, bytes.length, 3, budget, 0);
  assert.equal(reassembly.add(outgoing.chunk(0), 0), 'added');
  assert.equal(reassembly.add(outgoing.chunk(1), 0), 'added');
  assert.equal(reassembly.add(outgoing.chunk(2), 0), 'over-budget');
  assert.equal(reassembly.firstMissing(), 2);
  reassembly.release();
  const liar = new Reassembly(DocumentKind.Holdings, Buffer.alloc(32), bytes.length, 3, new ReassemblyBudget(1e6), 0);
  const forged = (i: number) => ({ ...outgoing.chunk(i), digest: Buffer.alloc(32) });
  for (const i of [0, 1, 2]) liar.add(forged(i), 0);
  assert.equal(liar.complete, true);
  assert.equal(liar.assemble(), null);
});

test('chunk decoder checks count, index and data length against the document length', () => {
  const outgoing = new OutgoingDocument(DocumentKind.Declaration, Buffer.alloc(CHUNK_DATA_BYTES + 10, 1));
  const body = encodeChunk(outgoing.chunk(1));
  assert.ok(typeof decodeChunk(body) !== 'string');
  assert.equal(decodeChunk(body.subarray(0, body.length - 1)), 'malformed');
  const badIndex = Buffer.from(body);
  badIndex.writeUInt16BE(2, 37);
  assert.equal(decodeChunk(badIndex), 'malformed');
  const badCount = Buffer.from(body);
  badCount.writeUInt16BE(5, 39);
  assert.equal(decodeChunk(badCount), 'malformed');
});

test('holdings and neighbours documents round-trip and have one encoding per content', () => {
  const holdings = new Map([
    ['198.18.0.2', 7],
    ['2001:db8::5', 2 ** 40],
    ['198.18.0.1', 0],
  ]);
  const bytes = encodeHoldings(holdings);
  assert.deepEqual(decodeHoldings(bytes), holdings);
  assert.ok(encodeHoldings(new Map([...holdings].reverse())).equals(bytes));
  assert.equal(decodeHoldings(bytes.subarray(0, bytes.length - 1)), null);
  assert.throws(() => encodeHoldings(new Map([['198.18.0.1', -1]])));
  const neighbours = encodeNeighbours(
    [
      { address: '198.18.1.1', mac: '02:00:00:00:00:01' },
      { address: '2001:db8::9', mac: '02-00-00-00-00-02' },
      { address: 'not-an-ip', mac: '02:00:00:00:00:03' },
    ],
    10,
  );
  assert.deepEqual(decodeNeighbours(neighbours.bytes), [
    { address: '198.18.1.1', mac: '02:00:00:00:00:01' },
    { address: '2001:db8::9', mac: '02:00:00:00:00:02' },
  ]);
  assert.equal(encodeNeighbours([{ address: '198.18.1.1', mac: '02:00:00:00:00:01' }, { address: '198.18.1.2', mac: '02:00:00:00:00:01' }], 1).truncated, 1);
});

test('moves document round-trips, has one encoding per content and canonical keys', () => {
  const moves = new Map<string, Move>([
    ['2001:DB8:0::7', { node: 'n3', seq: 2 ** 48 - 1 }],
    ['198.18.0.2', { node: 'nœud-2', seq: 7 }],
    ['198.18.0.1', { node: 'n1', seq: 0 }],
  ]);
  const bytes = encodeMoves(moves);
  assert.deepEqual(
    decodeMoves(bytes),
    new Map([
      ['198.18.0.1', { node: 'n1', seq: 0 }],
      ['198.18.0.2', { node: 'nœud-2', seq: 7 }],
      ['2001:db8::7', { node: 'n3', seq: 2 ** 48 - 1 }],
    ]),
  );
  assert.ok(encodeMoves(new Map([...moves].reverse())).equals(bytes), 'order of the map does not matter');
  // Layout of one entry: family | address | node length | node | seq (u48).
  const one = encodeMoves(new Map([['198.18.0.9', { node: 'ab', seq: 258 }]]));
  assert.deepEqual([...one], [4, 198, 18, 0, 9, 2, 0x61, 0x62, 0, 0, 0, 0, 1, 2]);
  assert.equal(encodeMoves(new Map()).length, 0);
  assert.deepEqual(decodeMoves(Buffer.alloc(0)), new Map());
});

test('moves encoder refuses bad input; 64 moves with the longest names fit the document bound', () => {
  const move = (node: string, seq = 1): Move => ({ node, seq });
  assert.throws(() => encodeMoves(new Map([['mail.example', move('n1')]])), /not an IP/);
  assert.throws(() => encodeMoves(new Map([['2001:db8::1', move('n1')], ['2001:DB8::1', move('n2')]])), /two moves/);
  assert.throws(() => encodeMoves(new Map([['198.18.0.1', move('')]])), /node name/);
  assert.throws(() => encodeMoves(new Map([['198.18.0.1', move('x'.repeat(65))]])), /node name/);
  assert.throws(() => encodeMoves(new Map([['198.18.0.1', move('n1', -1)]])), /seq/);
  assert.throws(() => encodeMoves(new Map([['198.18.0.1', move('n1', 2 ** 48)]])), /seq/);
  assert.throws(() => encodeMoves(new Map([['198.18.0.1', move('n1', 1.5)]])), /seq/);
  const tooMany = new Map(Array.from({ length: MAX_MOVES + 1 }, (_, i) => [`198.18.1.${i}`, move('n1')] as const));
  assert.throws(() => encodeMoves(tooMany), /at most 64/);

  const most = new Map(Array.from({ length: MAX_MOVES }, (_, i) => [`2001:db8::${i + 1}`, move('n'.repeat(64), i)] as const));
  const bytes = encodeMoves(most);
  assert.equal(bytes.length, MAX_MOVES * MAX_MOVE_ENTRY_BYTES);
  assert.deepEqual(decodeMoves(bytes), most);
});

test('moves decoder refuses truncation, disorder, duplicates, bad names, trailing bytes and more than 64 entries', () => {
  const a = encodeMoves(new Map([['198.18.0.1', { node: 'n1', seq: 1 }]]));
  const b = encodeMoves(new Map([['198.18.0.2', { node: 'n2', seq: 2 }]]));
  assert.ok(decodeMoves(Buffer.concat([a, b])));
  assert.equal(decodeMoves(Buffer.concat([b, a])), null, 'not sorted');
  assert.equal(decodeMoves(Buffer.concat([a, a])), null, 'duplicate address');
  for (let cut = 1; cut < a.length; cut++) assert.equal(decodeMoves(a.subarray(0, cut)), null, `cut at ${cut}`);
  assert.equal(decodeMoves(Buffer.concat([a, Buffer.from([4])])), null, 'trailing byte');
  const family = Buffer.from(a);
  family[0] = 5;
  assert.equal(decodeMoves(family), null, 'unknown family');
  const emptyName = Buffer.from([4, 198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 1]);
  assert.equal(decodeMoves(emptyName), null, 'empty name');
  const longName = Buffer.concat([Buffer.from([4, 198, 18, 0, 1, 65]), Buffer.alloc(65, 0x61), Buffer.alloc(6)]);
  assert.equal(decodeMoves(longName), null, 'name of 65 bytes');
  const badUtf8 = Buffer.from([4, 198, 18, 0, 1, 2, 0xc3, 0x28, 0, 0, 0, 0, 0, 1]);
  assert.equal(decodeMoves(badUtf8), null, 'invalid UTF-8');
  // 65 well-formed, sorted entries (built by hand: the encoder refuses them).
  const entries = Array.from({ length: MAX_MOVES + 1 }, (_, i) => encodeMoves(new Map([[`198.18.2.${i}`, { node: 'n1', seq: i }]])));
  assert.ok(decodeMoves(Buffer.concat(entries.slice(0, MAX_MOVES))));
  assert.equal(decodeMoves(Buffer.concat(entries)), null, '65 entries');
});

test('chunks and requests of the moves kind decode; an unknown kind is malformed', () => {
  const moves = new OutgoingDocument(DocumentKind.Moves, encodeMoves(new Map([['198.18.0.1', { node: 'n2', seq: 3 }]])));
  const chunk = decodeChunk(encodeChunk(moves.chunk(0)));
  assert.ok(typeof chunk !== 'string');
  assert.equal(chunk.kind, DocumentKind.Moves);
  assert.ok(chunk.data.equals(moves.bytes));
  const request = encodeRequest({ kind: DocumentKind.Moves, target: 'n1', digest: moves.digest, from: 0 });
  assert.equal((decodeRequest(request) as { kind: DocumentKind }).kind, DocumentKind.Moves);
  const unknownChunk = encodeChunk(moves.chunk(0));
  unknownChunk[0] = DocumentKind.Moves + 1;
  assert.equal(decodeChunk(unknownChunk), 'malformed');
  const unknownRequest = Buffer.from(request);
  unknownRequest[0] = DocumentKind.Moves + 1;
  assert.equal(decodeRequest(unknownRequest), 'malformed');
});

test('addresses: IPv4 and IPv6 pack and unpack canonically; peers parse with and without port', () => {
  for (const ip of ['198.18.0.1', '2001:db8::1', '::', '::1', 'fe80::1:2:3:4', '2001:db8:0:1:1:1:1:1', '::ffff:198.18.0.1']) {
    const back = bytesToIp(ipToBytes(ip));
    assert.ok(back);
    assert.deepEqual(ipToBytes(back), ipToBytes(ip), ip);
  }
  assert.equal(canonicalIp('2001:DB8:0:0::1'), '2001:db8::1');
  assert.deepEqual(parseEndpoint('198.18.0.1', 7946), { address: '198.18.0.1', port: 7946 });
  assert.deepEqual(parseEndpoint('198.18.0.1:9000', 7946), { address: '198.18.0.1', port: 9000 });
  assert.deepEqual(parseEndpoint('2001:db8::1', 7946), { address: '2001:db8::1', port: 7946 });
  assert.deepEqual(parseEndpoint('[2001:db8::1]:9000', 7946), { address: '2001:db8::1', port: 9000 });
  assert.throws(() => parseEndpoint('example.com:25', 7946), /not an IP/);
  assert.throws(() => parseEndpoint('198.18.0.1:70000', 7946), /invalid port/);
});

test('replay guard accepts each sequence once, tolerates reordering inside the window, rejects older', () => {
  const guard = new ReplayGuard();
  for (const seq of [5, 7, 6]) {
    assert.ok(guard.isFresh(seq));
    guard.accept(seq);
  }
  assert.equal(guard.isFresh(6), false);
  assert.equal(guard.isFresh(7), false);
  assert.ok(guard.isFresh(4));
  guard.accept(1000);
  assert.equal(guard.isFresh(1000 - REPLAY_WINDOW), false);
  assert.ok(guard.isFresh(1000 - REPLAY_WINDOW + 1));
  assert.equal(guard.isFresh(7), false);
});

test('VIP list orders IPv4 before IPv6 and by value, and maps sets to bitmaps and back', () => {
  const list = new VipList(['198.18.0.10', '2001:db8::1', '198.18.0.9', '198.18.0.9']);
  assert.deepEqual(list.ips, ['198.18.0.9', '198.18.0.10', '2001:db8::1']);
  const { bitmap, undeclared } = list.toBitmap(['2001:DB8::1', '198.18.0.9', '198.18.9.9']);
  assert.deepEqual(undeclared, ['198.18.9.9']);
  assert.deepEqual(list.fromBitmap(bitmap), ['198.18.0.9', '2001:db8::1']);
});
