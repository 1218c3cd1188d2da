/**
 * Wire format of the membership protocol (version 3). Pure functions, no I/O.
 *
 * Every packet:  header | body | HMAC-SHA256(header | body) (32 bytes)
 *
 *   header  magic "MV" (2) | version (1) | type (1) | cluster length (1) | cluster id (1..64)
 *           | node length (1) | node (1..64, UTF-8) | incarnation (8, u64) | sequence (6, u48)
 *
 * Bodies by type:
 *   HEARTBEAT  state | witnesses
 *     state    flags (1: bit0 all unhealthy, bit1 unhealthy bitmap follows) | declaration digest (32)
 *              | holdings digest (8) | neighbours digest (8) | moves digest (8) | declared VIP count (2)
 *              | held bitmap (ceil(count/8)) | [unhealthy bitmap (ceil(count/8))]
 *              = 59 fixed bytes + bitmaps
 *     witnesses  n × (peer id (6) | age in ms (2)) | n (1): the live peers whose own heartbeat the
 *              sender heard within dead-after, and how long ago (see witnessId). The count is the
 *              last byte so the state can be cut off without decoding: a receiver compares only
 *              the state with the last one, and ages that tick do not look like a change.
 *              With 4,096 VIPs, both bitmaps, 64-byte names and no witness the whole packet is
 *              1,264 bytes; the rest of MAX_PACKET_BYTES holds 23 witnesses (the freshest go).
 *   CHUNK      kind (1) | document digest (32) | document length (4) | index (2) | count (2) | data
 *   REQUEST    kind (1) | target node length (1) | target node | wanted digest (32) | first chunk (2)
 *   GOODBYE    (empty)
 *
 * Bitmaps are over the sender's declared VIPs sorted by `compareIps`; bit i (MSB first) is VIP i.
 * Document kinds (CHUNK, REQUEST): 1 declaration, 2 holdings, 3 neighbours, 4 operator moves;
 * documents.ts has their encodings. Digests are SHA-256 of the document: the declaration's in
 * full, the others' first 8 bytes.
 * Decoders check every length before reading and return a drop reason instead of throwing.
 *
 * Version history: 1 had no moves digest in the heartbeat; 2 added it; 3 added the witnesses
 * (peers of another version are dropped as `unsupported_version`).
 */
import { createHash } from 'node:crypto';
import { MAC_BYTES } from './auth';
import type { DropReason } from './counters';

export const MAGIC = 0x4d56; // "MV"
export const PROTOCOL_VERSION = 3;

/**
 * Largest packet sent or accepted: 1500-byte Ethernet MTU minus the IPv6 (40) and UDP (8)
 * headers, so no packet is ever fragmented on IPv4 or IPv6. Bigger packets are dropped as
 * `oversized` before anything else is looked at.
 */
export const MAX_PACKET_BYTES = 1452;
/** Longest cluster id and node name, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 64;
/** Payload bytes per document chunk: a chunk packet with the longest names is 1,421 bytes. */
export const CHUNK_DATA_BYTES = 1200;
/** Most VIPs one node may declare: both bitmaps must fit one heartbeat under 1,400 bytes. */
export const MAX_DECLARED_VIPS = 4096;
export const DIGEST_BYTES = 32;
/** Heartbeats carry only this prefix of the holdings, neighbours and moves digests. */
export const SHORT_DIGEST_BYTES = 8;
/** A witness names a peer incarnation by this prefix of SHA-256(node name | incarnation). */
export const WITNESS_ID_BYTES = 6;
const WITNESS_BYTES = WITNESS_ID_BYTES + 2;
/** Ages are whole milliseconds in two bytes. */
export const MAX_WITNESS_AGE_MS = 0xffff;
/** The witness count is one byte. */
export const MAX_WITNESSES = 255;

export enum PacketType {
  Heartbeat = 1,
  Chunk = 2,
  Request = 3,
  Goodbye = 4,
}

/** Documents transferred in chunks: each has a digest announced in every heartbeat. */
export enum DocumentKind {
  Declaration = 1,
  Holdings = 2,
  Neighbours = 3,
  /** Operator moves (VIP → node) this node has issued and still holds to. */
  Moves = 4,
}

/** True for a byte that names a DocumentKind. */
export function isDocumentKind(kind: number): kind is DocumentKind {
  return kind >= DocumentKind.Declaration && kind <= DocumentKind.Moves;
}

const FIXED_HEADER_BYTES = 2 + 1 + 1 + 1 + 1 + 8 + 6; // without the two names
const HEARTBEAT_FIXED_BYTES = 1 + DIGEST_BYTES + SHORT_DIGEST_BYTES * 3 + 2;
const CHUNK_FIXED_BYTES = 1 + DIGEST_BYTES + 4 + 2 + 2;
const FLAG_ALL_UNHEALTHY = 1;
const FLAG_UNHEALTHY_BITMAP = 2;
const MAX_SEQUENCE = 2 ** 48 - 1;

/** Who sent a packet and where it stands in the sender's stream. */
export interface Header {
  type: PacketType;
  cluster: Buffer;
  node: string;
  incarnation: bigint;
  sequence: number;
}

/** A packet split into its parts; `body` and `cluster` are views into the packet. */
export interface Envelope extends Header {
  version: number;
  body: Buffer;
}

export interface Heartbeat {
  allUnhealthy: boolean;
  declarationDigest: Buffer;
  holdingsDigest: Buffer;
  neighboursDigest: Buffer;
  movesDigest: Buffer;
  vipCount: number;
  held: Buffer;
  unhealthy: Buffer | null;
}

/** "I heard this peer's own heartbeat `ageMs` ago": evidence that it lives, for peers that did not. */
export interface Witness {
  id: Buffer;
  ageMs: number;
}

export interface Chunk {
  kind: DocumentKind;
  digest: Buffer;
  length: number;
  index: number;
  count: number;
  data: Buffer;
}

export interface Request {
  kind: DocumentKind;
  target: string;
  digest: Buffer;
  from: number;
}

/** Bytes of a header with these names, so callers can size bodies. */
export function headerBytes(cluster: Buffer, node: Buffer): number {
  return FIXED_HEADER_BYTES + cluster.length + node.length;
}

/**
 * Builds an unsigned packet (the last 32 bytes are left for the MAC).
 * @throws when names are empty or too long, or the packet would exceed MAX_PACKET_BYTES.
 */
export function encodePacket(type: PacketType, cluster: Buffer, node: Buffer, incarnation: bigint, sequence: number, body: Buffer): Buffer {
  if (cluster.length < 1 || cluster.length > MAX_NAME_BYTES) throw new Error(`cluster id must be 1..${MAX_NAME_BYTES} bytes`);
  if (node.length < 1 || node.length > MAX_NAME_BYTES) throw new Error(`node name must be 1..${MAX_NAME_BYTES} bytes`);
  if (!Number.isInteger(sequence) || sequence < 0 || sequence > MAX_SEQUENCE) throw new Error('sequence out of range');
  const size = headerBytes(cluster, node) + body.length + MAC_BYTES;
  if (size > MAX_PACKET_BYTES) throw new Error(`packet of ${size} bytes exceeds ${MAX_PACKET_BYTES}`);
  const packet = Buffer.alloc(size);
  let at = packet.writeUInt16BE(MAGIC, 0);
  at = packet.writeUInt8(PROTOCOL_VERSION, at);
  at = packet.writeUInt8(type, at);
  at = packet.writeUInt8(cluster.length, at);
  at += cluster.copy(packet, at);
  at = packet.writeUInt8(node.length, at);
  at += node.copy(packet, at);
  at = packet.writeBigUInt64BE(BigInt.asUintN(64, incarnation), at);
  at = packet.writeUIntBE(sequence, at, 6);
  body.copy(packet, at);
  return packet;
}

/**
 * Reads the header of a received packet. Does not check the MAC: callers compare the
 * cluster id, then verify the MAC, then decode the body.
 */
export function readEnvelope(packet: Buffer): Envelope | DropReason {
  if (packet.length > MAX_PACKET_BYTES) return 'oversized';
  if (packet.length < FIXED_HEADER_BYTES + 2 + MAC_BYTES) return 'malformed';
  if (packet.readUInt16BE(0) !== MAGIC) return 'malformed';
  const version = packet.readUInt8(2);
  if (version !== PROTOCOL_VERSION) return 'unsupported_version';
  const type = packet.readUInt8(3);
  if (type < PacketType.Heartbeat || type > PacketType.Goodbye) return 'malformed';
  const end = packet.length - MAC_BYTES;
  let at = 4;
  const clusterLength = packet.readUInt8(at++);
  if (clusterLength < 1 || clusterLength > MAX_NAME_BYTES || at + clusterLength + 1 > end) return 'malformed';
  const cluster = packet.subarray(at, at + clusterLength);
  at += clusterLength;
  const nodeLength = packet.readUInt8(at++);
  if (nodeLength < 1 || nodeLength > MAX_NAME_BYTES || at + nodeLength + 14 > end) return 'malformed';
  const node = packet.toString('utf8', at, at + nodeLength);
  at += nodeLength;
  const incarnation = packet.readBigUInt64BE(at);
  at += 8;
  const sequence = packet.readUIntBE(at, 6);
  at += 6;
  return { version, type, cluster, node, incarnation, sequence, body: packet.subarray(at, end) };
}

/** Bytes of a bitmap over `count` VIPs. */
export function bitmapBytes(count: number): number {
  return Math.ceil(count / 8);
}

/** The state part of a heartbeat body (what LocalDocuments keeps; witnesses are added per send). */
export function encodeHeartbeatState(beat: Heartbeat): Buffer {
  const size = HEARTBEAT_FIXED_BYTES + beat.held.length + (beat.unhealthy ? beat.unhealthy.length : 0);
  const body = Buffer.alloc(size);
  let flags = 0;
  if (beat.allUnhealthy) flags |= FLAG_ALL_UNHEALTHY;
  if (beat.unhealthy) flags |= FLAG_UNHEALTHY_BITMAP;
  let at = body.writeUInt8(flags, 0);
  at += beat.declarationDigest.copy(body, at, 0, DIGEST_BYTES);
  at += beat.holdingsDigest.copy(body, at, 0, SHORT_DIGEST_BYTES);
  at += beat.neighboursDigest.copy(body, at, 0, SHORT_DIGEST_BYTES);
  at += beat.movesDigest.copy(body, at, 0, SHORT_DIGEST_BYTES);
  at = body.writeUInt16BE(beat.vipCount, at);
  at += beat.held.copy(body, at);
  if (beat.unhealthy) beat.unhealthy.copy(body, at);
  return body;
}

/** Decodes the state part of a heartbeat body (see splitHeartbeat). */
export function decodeHeartbeatState(body: Buffer): Heartbeat | DropReason {
  if (body.length < HEARTBEAT_FIXED_BYTES) return 'malformed';
  const flags = body.readUInt8(0);
  if ((flags & ~(FLAG_ALL_UNHEALTHY | FLAG_UNHEALTHY_BITMAP)) !== 0) return 'malformed';
  let at = 1;
  const declarationDigest = body.subarray(at, at + DIGEST_BYTES);
  at += DIGEST_BYTES;
  const holdingsDigest = body.subarray(at, at + SHORT_DIGEST_BYTES);
  at += SHORT_DIGEST_BYTES;
  const neighboursDigest = body.subarray(at, at + SHORT_DIGEST_BYTES);
  at += SHORT_DIGEST_BYTES;
  const movesDigest = body.subarray(at, at + SHORT_DIGEST_BYTES);
  at += SHORT_DIGEST_BYTES;
  const vipCount = body.readUInt16BE(at);
  at += 2;
  if (vipCount > MAX_DECLARED_VIPS) return 'malformed';
  const mapBytes = bitmapBytes(vipCount);
  const hasUnhealthy = (flags & FLAG_UNHEALTHY_BITMAP) !== 0;
  if (body.length !== at + mapBytes * (hasUnhealthy ? 2 : 1)) return 'malformed';
  const held = body.subarray(at, at + mapBytes);
  const unhealthy = hasUnhealthy ? body.subarray(at + mapBytes, at + 2 * mapBytes) : null;
  // Bits past the last VIP must be zero, so one state has exactly one encoding.
  if (!paddingIsZero(held, vipCount) || (unhealthy && !paddingIsZero(unhealthy, vipCount))) return 'malformed';
  return { allUnhealthy: (flags & FLAG_ALL_UNHEALTHY) !== 0, declarationDigest, holdingsDigest, neighboursDigest, movesDigest, vipCount, held, unhealthy };
}

/** The id a witness names a peer incarnation by: the same on every node, computed from the header's fields. */
export function witnessId(node: string, incarnation: bigint): Buffer {
  const input = Buffer.alloc(Buffer.byteLength(node, 'utf8') + 8);
  input.writeBigUInt64BE(BigInt.asUintN(64, incarnation), input.write(node, 'utf8'));
  return createHash('sha256').update(input).digest().subarray(0, WITNESS_ID_BYTES);
}

/** Most witnesses that fit a heartbeat of this state with this header (at most MAX_WITNESSES). */
export function witnessRoom(headerLength: number, stateLength: number): number {
  const free = MAX_PACKET_BYTES - MAC_BYTES - headerLength - stateLength - 1;
  return Math.max(0, Math.min(MAX_WITNESSES, Math.floor(free / WITNESS_BYTES)));
}

/** A heartbeat body: the state as encodeHeartbeat made it, then the witnesses (ages clamped to two bytes). */
export function withWitnesses(state: Buffer, witnesses: readonly Witness[]): Buffer {
  if (witnesses.length > MAX_WITNESSES) throw new Error(`at most ${MAX_WITNESSES} witnesses per heartbeat`);
  const body = Buffer.alloc(state.length + witnesses.length * WITNESS_BYTES + 1);
  let at = state.copy(body, 0);
  for (const witness of witnesses) {
    if (witness.id.length !== WITNESS_ID_BYTES) throw new Error(`a witness id is ${WITNESS_ID_BYTES} bytes`);
    at += witness.id.copy(body, at);
    at = body.writeUInt16BE(Math.max(0, Math.min(MAX_WITNESS_AGE_MS, Math.round(witness.ageMs))), at);
  }
  body.writeUInt8(witnesses.length, at);
  return body;
}

/** A whole heartbeat body: the state, then the witnesses. */
export function encodeHeartbeat(beat: Heartbeat, witnesses: readonly Witness[] = []): Buffer {
  return withWitnesses(encodeHeartbeatState(beat), witnesses);
}

/** Cuts a heartbeat body into its state (for decodeHeartbeat) and its witnesses (views into the body). */
export function splitHeartbeat(body: Buffer): { state: Buffer; witnesses: Witness[] } | DropReason {
  if (body.length < HEARTBEAT_FIXED_BYTES + 1) return 'malformed';
  const count = body.readUInt8(body.length - 1);
  const stateLength = body.length - 1 - count * WITNESS_BYTES;
  if (stateLength < HEARTBEAT_FIXED_BYTES) return 'malformed';
  const witnesses: Witness[] = [];
  for (let at = stateLength; at < body.length - 1; at += WITNESS_BYTES) {
    witnesses.push({ id: body.subarray(at, at + WITNESS_ID_BYTES), ageMs: body.readUInt16BE(at + WITNESS_ID_BYTES) });
  }
  return { state: body.subarray(0, stateLength), witnesses };
}

function paddingIsZero(bitmap: Buffer, count: number): boolean {
  const spare = bitmap.length * 8 - count;
  if (spare === 0) return true;
  const last = bitmap[bitmap.length - 1] ?? 0;
  return (last & ((1 << spare) - 1)) === 0;
}

export function encodeChunk(chunk: Chunk): Buffer {
  const body = Buffer.alloc(CHUNK_FIXED_BYTES + chunk.data.length);
  let at = body.writeUInt8(chunk.kind, 0);
  at += chunk.digest.copy(body, at, 0, DIGEST_BYTES);
  at = body.writeUInt32BE(chunk.length, at);
  at = body.writeUInt16BE(chunk.index, at);
  at = body.writeUInt16BE(chunk.count, at);
  chunk.data.copy(body, at);
  return body;
}

/** Chunks needed for a document of `length` bytes (an empty document is one empty chunk). */
export function chunkCount(length: number): number {
  return Math.max(1, Math.ceil(length / CHUNK_DATA_BYTES));
}

export function decodeChunk(body: Buffer): Chunk | DropReason {
  if (body.length < CHUNK_FIXED_BYTES) return 'malformed';
  const kind = body.readUInt8(0);
  if (!isDocumentKind(kind)) return 'malformed';
  const digest = body.subarray(1, 1 + DIGEST_BYTES);
  let at = 1 + DIGEST_BYTES;
  const length = body.readUInt32BE(at);
  at += 4;
  const index = body.readUInt16BE(at);
  at += 2;
  const count = body.readUInt16BE(at);
  at += 2;
  if (count !== chunkCount(length) || index >= count) return 'malformed';
  const expected = Math.min(CHUNK_DATA_BYTES, length - index * CHUNK_DATA_BYTES);
  if (body.length - at !== expected) return 'malformed';
  return { kind, digest, length, index, count, data: body.subarray(at) };
}

export function encodeRequest(request: Request): Buffer {
  const target = Buffer.from(request.target, 'utf8');
  const body = Buffer.alloc(1 + 1 + target.length + DIGEST_BYTES + 2);
  let at = body.writeUInt8(request.kind, 0);
  at = body.writeUInt8(target.length, at);
  at += target.copy(body, at);
  at += request.digest.copy(body, at, 0, DIGEST_BYTES);
  body.writeUInt16BE(request.from, at);
  return body;
}

export function decodeRequest(body: Buffer): Request | DropReason {
  if (body.length < 2) return 'malformed';
  const kind = body.readUInt8(0);
  if (!isDocumentKind(kind)) return 'malformed';
  const targetLength = body.readUInt8(1);
  if (targetLength < 1 || targetLength > MAX_NAME_BYTES) return 'malformed';
  if (body.length !== 2 + targetLength + DIGEST_BYTES + 2) return 'malformed';
  const target = body.toString('utf8', 2, 2 + targetLength);
  const digest = body.subarray(2 + targetLength, 2 + targetLength + DIGEST_BYTES);
  const from = body.readUInt16BE(2 + targetLength + DIGEST_BYTES);
  return { kind, target, digest, from };
}

export function decodeGoodbye(body: Buffer): true | DropReason {
  return body.length === 0 ? true : 'malformed';
}

/** Sets bit `index` (MSB first). */
export function setBit(bitmap: Buffer, index: number): void {
  const byte = index >> 3;
  bitmap[byte] = (bitmap[byte] ?? 0) | (0x80 >> (index & 7));
}

export function getBit(bitmap: Buffer, index: number): boolean {
  return ((bitmap[index >> 3] ?? 0) & (0x80 >> (index & 7))) !== 0;
}
