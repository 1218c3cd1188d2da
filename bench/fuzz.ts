/**
 * Long fuzz run of the membership receive path: ≥ 1,000,000 random and mutated packets (some
 * re-signed with the cluster secret, so the body decoders behind the MAC are exercised too).
 * Prints one JSON line and a short table; exits non-zero if anything threw or a packet was not
 * counted. `node dist/bench/fuzz.js [packets]`
 */
import { randomBytes } from 'node:crypto';
import { PacketAuthenticator } from '../lib/transport/auth';
import { DocumentKind, PacketType, encodeChunk, encodeHeartbeat, encodePacket, encodeRequest } from '../lib/transport/codec';
import { DROP_REASONS } from '../lib/transport/counters';
import { OutgoingDocument } from '../lib/transport/document-sync';
import { encodeHoldings, encodeMoves } from '../lib/transport/documents';
import { Membership } from '../lib/transport/membership';
import { VipList } from '../lib/transport/vip-list';

const SECRET = 'fuzzing secret of at least 16 bytes';

export async function run(packets = 1_000_000): Promise<object> {
  const vipsOf = (declaration: Buffer): string[] => (JSON.parse(declaration.toString()) as { vips: string[] }).vips;
  const membership = new Membership({ clusterId: 'fuzz', node: 'target', secret: SECRET, bind: '127.0.0.1', vipsOf });
  let thrown = 0;
  membership.on('error', () => thrown++);
  const auth = new PacketAuthenticator(SECRET);
  const vips = Array.from({ length: 64 }, (_, i) => `198.18.0.${i}`);
  const declaration = new OutgoingDocument(DocumentKind.Declaration, Buffer.from(JSON.stringify({ vips })));
  const holdings = new OutgoingDocument(DocumentKind.Holdings, encodeHoldings(new Map(vips.slice(0, 8).map((ip, i) => [ip, i]))));
  const moves = new OutgoingDocument(DocumentKind.Moves, encodeMoves(new Map(vips.slice(0, 4).map((ip, i) => [ip, { node: `peer${i}`, seq: i + 1 }]))));
  const list = new VipList(vips);
  let sequence = 0;
  const sign = (type: PacketType, body: Buffer, node = `peer${sequence % 50}`): Buffer => {
    const packet = encodePacket(type, Buffer.from('fuzz'), Buffer.from(node), 1000n + BigInt(sequence % 3), ++sequence, body);
    auth.sign(packet);
    return packet;
  };
  const heartbeatBody = encodeHeartbeat({
    allUnhealthy: false,
    declarationDigest: declaration.digest,
    holdingsDigest: holdings.digest,
    neighboursDigest: Buffer.alloc(8),
    movesDigest: moves.digest,
    vipCount: list.size,
    held: list.toBitmap(vips.slice(0, 8)).bitmap,
    unhealthy: list.toBitmap(vips.slice(8, 9)).bitmap,
  });
  const bodies: Array<[PacketType, Buffer]> = [
    [PacketType.Heartbeat, heartbeatBody],
    [PacketType.Chunk, encodeChunk(declaration.chunk(0))],
    [PacketType.Chunk, encodeChunk(holdings.chunk(0))],
    [PacketType.Chunk, encodeChunk(moves.chunk(0))],
    [PacketType.Request, encodeRequest({ kind: DocumentKind.Moves, target: 'target', digest: moves.digest, from: 0 })],
    [PacketType.Request, encodeRequest({ kind: DocumentKind.Holdings, target: 'target', digest: holdings.digest, from: 0 })],
    [PacketType.Goodbye, Buffer.alloc(0)],
  ];
  const seeds = bodies.map(([type, body]) => sign(type, body));
  const from = { address: '127.0.0.1', port: 7946 };
  const pool = randomBytes(1 << 20);
  let poolAt = 0;
  const random = (n: number): Buffer => {
    if (poolAt + n > pool.length) poolAt = 0;
    const out = pool.subarray(poolAt, poolAt + n);
    poolAt += n + 1;
    return out;
  };
  const byte = (): number => random(1)[0] ?? 0;

  global.gc?.();
  const heapStart = process.memoryUsage().heapUsed;
  let heapMax = heapStart;
  const started = process.hrtime.bigint();
  for (let i = 0; i < packets; i++) {
    const seed = seeds[i % seeds.length] as Buffer;
    let packet: Buffer;
    switch (i % 6) {
      case 0:
        packet = Buffer.from(random(byte() * 6));
        break;
      case 1: {
        packet = Buffer.from(seed);
        for (let flips = 1 + (byte() & 3); flips > 0; flips--) {
          const at = (byte() * 256 + byte()) % packet.length;
          packet[at] = byte();
        }
        break;
      }
      case 2:
        packet = seed.subarray(0, (byte() * 256 + byte()) % (seed.length + 1));
        break;
      case 3: {
        // Authenticated garbage: a mutated or random body behind a valid MAC.
        const [type, body] = bodies[(i >> 3) % bodies.length] as [PacketType, Buffer];
        const mutated = Buffer.from(byte() & 1 ? body : random(byte()));
        if (mutated.length) mutated[byte() % mutated.length] = byte();
        packet = sign(((type + (byte() & 1)) % 5 || 1) as PacketType, mutated.subarray(0, Math.min(mutated.length, 1300)));
        break;
      }
      case 4:
        // Valid packets, fresh sequences: the accept path must keep memory bounded too.
        packet = sign(...(bodies[(i >> 3) % bodies.length] as [PacketType, Buffer]));
        break;
      default:
        packet = Buffer.concat([seed, random(byte() % 64)]);
    }
    membership.receive(packet, from);
    if ((i & 0xffff) === 0) heapMax = Math.max(heapMax, process.memoryUsage().heapUsed);
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  heapMax = Math.max(heapMax, process.memoryUsage().heapUsed);
  const counters = membership.counters();
  const drops: Record<string, number> = {};
  let dropped = 0;
  for (const reason of DROP_REASONS) {
    drops[reason] = counters[`dropped_${reason}`] ?? 0;
    dropped += drops[reason] ?? 0;
  }
  const accepted = counters.accepted ?? 0;
  const own = counters.ignored_own ?? 0;
  await membership.close();
  return {
    bench: 'transport-fuzz',
    packets,
    seconds: Number(seconds.toFixed(3)),
    packets_per_second: Math.round(packets / seconds),
    accepted,
    ignored_own: own,
    dropped,
    drops,
    uncounted: packets - accepted - own - dropped,
    thrown,
    peers_known: counters.peers_known,
    reassembly_bytes: counters.reassembly_bytes,
    heap_growth_max_bytes: heapMax - heapStart,
  };
}

if (require.main === module) {
  const packets = Number(process.argv[2] ?? 1_000_000);
  run(packets)
    .then((result) => {
      const r = result as { drops: Record<string, number>; thrown: number; uncounted: number; packets_per_second: number; accepted: number; heap_growth_max_bytes: number };
      console.log(JSON.stringify(result));
      console.log(`packets/s ${r.packets_per_second}  accepted ${r.accepted}  heap growth ${(r.heap_growth_max_bytes / 1048576).toFixed(1)} MiB`);
      for (const [reason, count] of Object.entries(r.drops)) console.log(`  dropped ${reason.padEnd(20)} ${count}`);
      if (r.thrown > 0 || r.uncounted !== 0) {
        console.error(`FAIL: ${r.thrown} exceptions, ${r.uncounted} packets not counted`);
        process.exit(1);
      }
    })
    .catch((error: unknown) => {
      console.error(error);
      process.exit(1);
    });
}
