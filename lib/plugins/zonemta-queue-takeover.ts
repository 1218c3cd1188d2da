// ZoneMTA nodes sharing one MongoDB queue take over the queue of a node that is
// gone (when, and who: queue-takeover.ts). Each node beats in a small
// collection next to ZoneMTA's queue; the one chosen reassigns the gone node's
// entries (locked in flight, deferred, relayed to it) to its own queue
// instance, unlocked, and its senders fetch them like any other delivery: from
// the binding's IP if it holds the binding, else through the relay.
//
// The hard case is a node that comes back while it is being taken over.
// ZoneMTA, booting, frees its instance's locks and its senders fetch again
// before the plugin is loaded and beats, so for a moment a restarting node is
// silent yet sending. Two rules keep one delivery from going out twice then:
// - The takeover is a compare-and-set on the gone node's beat: it starts only
//   if the beat it decided on is still the record's, and is marked in the
//   record until done. A node's first beat after boot therefore stops any new
//   takeover, and the node waits for one in progress to finish before its
//   cluster (and the file its senders wait for) comes up.
// - Its senders then check that each delivery's queue entry is still their
//   instance's; one taken over is handed back to its new owner unsent
//   (deferred, reassigned to that owner).

import * as fs from 'node:fs';
import { PluginConfigError } from '../errors';
import { instanceIdClash, QueueTakeoverBook, type QueueNodeRecord, type QueueTakeoverDecision, type TakeoverAction } from './queue-takeover';

/** Where the nodes beat: a collection of ZoneMTA's own database. */
export const QUEUE_NODES_COLLECTION = 'mta-vip-queue-nodes';

/** The parts of the mongodb driver's collection used here (ZoneMTA's driver, promise API). */
export interface QueueCollection {
  updateOne(filter: object, update: object, options?: { upsert?: boolean }): Promise<{ matchedCount?: number }>;
  updateMany(filter: object, update: object): Promise<{ modifiedCount?: number }>;
  find(filter: object): { toArray(): Promise<unknown[]> };
  findOne(filter: object, options?: { projection?: object }): Promise<unknown>;
}

/** The parts of ZoneMTA's MailQueue the takeover needs. */
export interface SharedQueue {
  instanceId: string;
  /** ZoneMTA's queue collection (default 'zone-queue'). */
  collection: string;
  mongodb: { collection(name: string): QueueCollection };
}

/** The cluster's failure detector, as events. */
export interface PeerEvents {
  on(event: 'peer-up' | 'peer-down', listener: (peer: { node: string }) => void): unknown;
  off(event: 'peer-up' | 'peer-down', listener: (peer: { node: string }) => void): unknown;
}

export interface QueueTakeoverOptions {
  queue: SharedQueue;
  clusterId: string;
  node: string;
  /** How long a node must be down in the cluster and silent in the store before its queue is taken over. */
  afterMs: number;
  /** How often this node beats and looks; default beatMsFor(afterMs). */
  beatMs?: number;
  peers: PeerEvents;
  /** The peers live when following starts (their peer-up came before). */
  livePeers: readonly string[];
  log: (level: 'info' | 'error', message: string) => void;
  /** Monotonic ms; default performance.now. */
  now?: () => number;
  /** ZoneMTA's in-memory locker, whose orphaned locks are released at every beat (releaseOrphanLocks). */
  locker?: DeliveryLocker;
}

/** A takeover under way (or done) on a node's record. */
interface TakeoverMark {
  by: string;
  /** The gone node's beat it was decided on. */
  beat: number;
  done: boolean;
}

interface StoredRecord extends QueueNodeRecord {
  cluster: string;
  at?: Date;
  takeover?: TakeoverMark;
}

/** A beat a quarter of the takeover time (so a few beats are missed before it), at most a second. */
export function beatMsFor(afterMs: number): number {
  return Math.min(1000, Math.max(50, Math.floor(afterMs / 4)));
}

async function beat(nodes: QueueCollection, clusterId: string, node: string, instanceId: string): Promise<void> {
  // Keyed by (cluster, node), not by _id: the store makes its own ObjectId keys.
  await nodes.updateOne({ cluster: clusterId, node }, { $set: { instanceId, at: new Date() }, $inc: { beat: 1 } }, { upsert: true });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Joins the shared queue, before the cluster starts: refuses (PluginConfigError) when a live node
 * of the cluster uses this node's queue instance id (ZoneMTA's boot frees every lock of its instance
 * id, so two live nodes with one id would each free the other's deliveries in flight and send them
 * twice), beats (no takeover of this node can start after that), and waits up to `waitMs` for a
 * takeover of this node still under way. Resolves with the time (ms, wall clock) from which this
 * node's locks can no longer be taken over by a peer.
 */
export async function joinSharedQueue(queue: SharedQueue, clusterId: string, node: string, afterMs: number, log: (level: 'info' | 'error', message: string) => void, waitMs = 30_000): Promise<number> {
  const nodes = queue.mongodb.collection(QUEUE_NODES_COLLECTION);
  const records = (await nodes.find({ cluster: clusterId }).toArray()) as StoredRecord[];
  const clash = instanceIdClash({ node, instanceId: queue.instanceId }, records, Date.now(), Math.max(afterMs, 60_000));
  if (clash) {
    throw new PluginConfigError(
      'ZoneMTA',
      `queue.instanceId "${queue.instanceId}" is also used by node ${clash.node}, which shares this MongoDB queue: give each ZoneMTA node its own queue.instanceId (for example its node name "${node}"); one id on two live nodes makes each free the other's locked deliveries, and mail goes out twice`,
    );
  }
  await beat(nodes, clusterId, node, queue.instanceId);
  const deadline = Date.now() + waitMs;
  for (let logged = false; ; ) {
    const own = (await nodes.findOne({ cluster: clusterId, node })) as StoredRecord | null;
    const mark = own?.takeover;
    if (!mark || mark.done || mark.beat >= own.beat) break;
    if (!logged) log('info', `queue takeover: ${mark.by} is taking over this node's queue entries; waiting for it to finish before sending`);
    logged = true;
    if (Date.now() >= deadline) {
      log('error', `queue takeover by ${mark.by} did not finish within ${waitMs} ms (did ${mark.by} die meanwhile?); going on: a delivery both nodes hold could go out twice`);
      break;
    }
    await sleep(100);
  }
  return Date.now();
}

/**
 * One node's side of the takeover: beat, look, and take over what the book says, by
 * compare-and-set on the gone node's beat. `decide` and `apply` are one `tick`, split so a test
 * can put a node's return between them.
 */
export class QueueTakeover {
  private readonly book: QueueTakeoverBook;
  private readonly nodes: QueueCollection;
  private readonly entries: QueueCollection;
  private readonly now: () => number;

  constructor(
    private readonly options: Omit<QueueTakeoverOptions, 'peers' | 'livePeers' | 'beatMs'>,
    /** The peers the cluster has live now. */
    private readonly live: ReadonlySet<string>,
  ) {
    this.book = new QueueTakeoverBook(options.node, options.afterMs);
    this.nodes = options.queue.mongodb.collection(QUEUE_NODES_COLLECTION);
    this.entries = options.queue.mongodb.collection(options.queue.collection);
    this.now = options.now ?? (() => performance.now());
  }

  async tick(): Promise<number> {
    return this.apply(await this.decide());
  }

  /** Beats, reads every node's record and decides. */
  async decide(): Promise<QueueTakeoverDecision> {
    const { clusterId, node, queue } = this.options;
    await beat(this.nodes, clusterId, node, queue.instanceId);
    const records = (await this.nodes.find({ cluster: clusterId }).toArray()) as StoredRecord[];
    return this.book.observe(this.now(), records, this.live);
  }

  /** Carries a decision out; resolves with the number of queue entries taken over. */
  async apply(decision: QueueTakeoverDecision): Promise<number> {
    const { queue, afterMs, log } = this.options;
    for (const gone of decision.stillWriting) {
      log('error', `queue takeover: ${gone} is out of the cluster but still beats in the shared queue; its deliveries stay with it (it may be sending them)`);
    }
    let total = 0;
    for (const gone of decision.takeOver) {
      if (!(await this.claim(gone))) continue;
      const moved = await this.moveEntries(gone);
      total += moved;
      if (moved || gone.first) {
        log('info', `queue takeover: ${gone.node} (instance ${gone.instanceId}) is gone for ${afterMs} ms; took over ${moved} of its queue entries as instance ${queue.instanceId}`);
      }
    }
    return total;
  }

  /** Marks the takeover in the gone node's record, if its beat is still the one decided on (false: it is back). */
  async claim(gone: TakeoverAction): Promise<boolean> {
    const mark: TakeoverMark = { by: this.options.node, beat: gone.beat, done: false };
    const claimed = await this.nodes.updateOne({ cluster: this.options.clusterId, node: gone.node, beat: gone.beat }, { $set: { takeover: mark } });
    return Boolean(claimed.matchedCount);
  }

  /** Reassigns every entry of the claimed node's instance, locked in flight or waiting, to this instance, unlocked; then marks the takeover done. */
  async moveEntries(gone: TakeoverAction): Promise<number> {
    const result = await this.entries.updateMany({ assigned: gone.instanceId }, { $set: { assigned: this.options.queue.instanceId, locked: false, lockTime: 0 } });
    await this.nodes.updateOne({ cluster: this.options.clusterId, node: gone.node }, { $set: { 'takeover.done': true } });
    return result.modifiedCount ?? 0;
  }
}

/** The part of ZoneMTA's in-memory QueueLocker (the main process's per-delivery and per-domain locks) used here. */
export interface DeliveryLocker {
  locks: Map<string, { key: string }>;
  release(key: string): boolean;
}

/**
 * Releases the main process's in-memory locks whose queue entry is no longer this instance's
 * (taken over by a peer while this node was booting) or is gone (that peer sent it). ZoneMTA
 * releases a lock only when its sender's deferral or release finds the entry; for an entry that
 * vanished it keeps the lock for its hour-long TTL, and each such lock holds one of the domain's
 * connections (4 of them stopped a zone's whole flow in a test). Resolves with the keys released.
 */
export async function releaseOrphanLocks(locker: DeliveryLocker, entries: QueueCollection, instanceId: string): Promise<string[]> {
  const held = [...locker.locks.keys()].map((key) => ({ key, parts: /^lock (\S+) (\S+)$/.exec(key) })).filter((l) => l.parts);
  if (!held.length) return [];
  const found = (await entries.find({ $or: held.map((l) => ({ id: l.parts?.[1], seq: l.parts?.[2] })) }).toArray()) as Array<{ id: string; seq: string; assigned?: string }>;
  const ours = new Set(found.filter((e) => e.assigned === instanceId).map((e) => `lock ${e.id} ${e.seq}`));
  const orphans = held.map((l) => l.key).filter((key) => !ours.has(key));
  for (const key of orphans) locker.release(key);
  return orphans;
}

/** Beats and looks every `beatMs` until the returned function is called. */
export function followQueueTakeover(options: QueueTakeoverOptions): () => void {
  const { peers, log } = options;
  const beatMs = options.beatMs ?? beatMsFor(options.afterMs);
  const live = new Set<string>(options.livePeers);
  const takeover = new QueueTakeover(options, live);
  const up = (peer: { node: string }): void => void live.add(peer.node);
  const down = (peer: { node: string }): void => void live.delete(peer.node);
  peers.on('peer-up', up);
  peers.on('peer-down', down);
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let failing = false;
  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      takeover
        .tick()
        .then(async () => {
          if (!options.locker) return;
          const released = await releaseOrphanLocks(options.locker, options.queue.mongodb.collection(options.queue.collection), options.queue.instanceId);
          if (released.length) log('info', `queue takeover: released ${released.length} delivery locks of entries a peer took over or sent (${released.join(', ')})`);
        })
        .then(
          () => {
            if (failing) log('info', 'queue takeover: the shared queue answers again');
            failing = false;
          },
          (error: Error) => {
            // Logged once per outage: a store that is down is retried at every beat.
            if (!failing) log('error', `queue takeover: ${error.message}`);
            failing = true;
          },
        )
        .finally(schedule);
    }, beatMs);
    timer.unref();
  };
  schedule();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    peers.off('peer-up', up);
    peers.off('peer-down', down);
  };
}

/** What the main process tells its senders once it has joined the shared queue. */
export interface QueueFence {
  /** The main process that joined (a sender trusts only its own parent's). */
  pid: number;
  instanceId: string;
  collection: string;
  /** Wall-clock ms from which this node's locks cannot be taken over (see joinSharedQueue); for the logs. */
  since: number;
}

export const queueFenceFile = (stateFile: string): string => `${stateFile}.queue`;

/** Main process: written (atomically) after joinSharedQueue. */
export function writeQueueFence(file: string, fence: QueueFence): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(fence), { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** A sender's fence: its own main process's, once written; null until then. */
export function readQueueFence(file: string, parentPid = process.ppid): QueueFence | null {
  try {
    const fence = JSON.parse(fs.readFileSync(file, 'utf8')) as QueueFence;
    return fence.pid === parentPid ? fence : null;
  } catch {
    return null;
  }
}

/** A delivery as a sender has it: its queue entry's key. */
export interface LockedDelivery {
  id: string;
  seq: string;
}

/** A delivery's queue entry as its new owner has it, when a peer took it over. */
export interface TakenOver {
  /** The new owner's queue instance, or null when the entry is gone (its new owner sent it already). */
  owner: string | null;
  /** Whether the new owner has it locked: it may be sending it right now. */
  locked: boolean;
}

/**
 * Whether this sender may still send `delivery`: yes (undefined) if its queue entry is still this
 * instance's; otherwise who has it now. One indexed read per delivery: the delivery a ZoneMTA 3.10
 * sender gets carries the entry as it was before its fetch (the driver ignores the queue's
 * `returnOriginal: false`), so its lock time cannot tell a lock of this node's new life from one a
 * peer may have taken over.
 */
export async function takenOverFrom(delivery: LockedDelivery, fence: QueueFence, mongodb: SharedQueue['mongodb']): Promise<TakenOver | undefined> {
  const entry = (await mongodb.collection(fence.collection).findOne({ id: delivery.id, seq: delivery.seq }, { projection: { assigned: 1, locked: 1 } })) as { assigned?: string; locked?: boolean } | null;
  if (!entry) return { owner: null, locked: false };
  return entry.assigned === fence.instanceId ? undefined : { owner: entry.assigned ?? null, locked: entry.locked === true };
}
