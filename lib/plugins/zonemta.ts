/**
 * mta-vip as a ZoneMTA plugin.
 *
 *   plugins: {
 *     [require.resolve('mta-vip/zonemta')]: {
 *       enabled: ['main', 'receiver', 'sender'],
 *       cluster: { node, cluster: { id, secret, bind, peers }, listeners, bindings, vips },
 *       zones: { default: 'acme' },      // sending zone -> binding name
 *     },
 *   }
 *
 * ZoneMTA runs a main process, receiver processes and sender processes, and
 * loads the plugin in each context it is enabled for:
 * - main: runs the cluster (one per node: heartbeats, VIP addresses, the
 *   node-to-node relay listener) and shares its state with the other processes
 *   through a small file. Messages relayed here by other nodes are put into this
 *   node's queue (ZoneMTA's own mail drop) for their binding's zone.
 * - receiver: `smtp:connect` refuses (421) clients arriving on a listener VIP
 *   that is not being served here (released, or being released).
 * - sender: `sender:fetch` sets `delivery.zoneAddress` from the binding chosen
 *   by name when this node holds it; when another node holds it, the delivery's
 *   next hop becomes a loopback gateway relaying to the holder. `sender:connect`
 *   sets `localAddress` again, failing (deferring) if the binding left meanwhile.
 * The SMTP interface listens on the wildcard address (host '0.0.0.0'); the
 * kernel only delivers connections for VIPs present here.
 */
import type { RelayedMessage } from '../mta/types';
import type { BindingView } from './binding-view';
import { normalizeIp, waitForHolder } from './binding-view';
import {
  createRelayGateway,
  hostnameOf,
  stateFileOf,
  PluginConfigError,
  resolvePluginOptions,
  startClusterProcess,
  temporaryError,
  workerView,
  type ClusterProcess,
  type MtaVipPluginOptions,
} from './plugin-process';
import type { RelayGateway } from './relay-gateway';
import { ErrorCodes } from '../errors';
import {
  followQueueTakeover,
  joinSharedQueue,
  queueFenceFile,
  readQueueFence,
  takenOverFrom,
  writeQueueFence,
  type DeliveryLocker,
  type LockedDelivery,
  type QueueCollection,
  type QueueFence,
  type SharedQueue,
} from './zonemta-queue-takeover';

/** The plugin options under ZoneMTA's `plugins[...]` key. */
export interface ZoneMtaPluginOptions extends MtaVipPluginOptions {
  /** ZoneMTA's own: the contexts the plugin is loaded in; must include 'main', 'receiver' and 'sender'. */
  enabled?: string | string[] | boolean;
  /** Sending zone -> binding name. A zone that is also a binding's name needs no entry. */
  zones?: Record<string, string>;
  /** How long a sender waits for a binding without a holder (mid-failover) before deferring; default 15,000 ms (a deferral would wait for ZoneMTA's 5-minute retry). */
  holderWaitMs?: number;
  /** When a delivery whose binding moved away between fetch and connect is tried again; default 2,000 ms. */
  moveRetryMs?: number;
  /**
   * Nodes sharing one MongoDB queue: how long a node must be down in the cluster and silent in the
   * queue before a live node takes over its queue entries (those it had locked in flight, deferred or
   * been relayed); default 30,000 ms, 0 never. ZoneMTA itself frees a node's locks only when that node
   * boots again, or after an hour.
   */
  queueTakeoverMs?: number;
}

/** The parts of ZoneMTA's plugin instance (wild-plugins) this plugin uses. */
export interface ZoneMtaApp {
  config: ZoneMtaPluginOptions;
  logger: { info(prefix: string, format: string, ...args: unknown[]): void; error(prefix: string, format: string, ...args: unknown[]): void };
  manager: { context: string; apiServer?: { maildrop?: ZoneMtaMailDrop }; queue?: ZoneMtaQueue | false };
  addHook(name: string, handler: (...args: any[]) => Promise<void> | void): void;
  getQueue(): ZoneMtaQueue | false;
}

/** The parts of ZoneMTA's MailQueue used to keep a relayed message on this node. */
interface ZoneMtaQueue {
  seqIndex?: { get(): string };
  instanceId?: string;
  options?: { collection?: string };
  mongodb?: { collection(name: string): QueueCollection } | false;
}

/**
 * ZoneMTA caches a failed connection as the destination's for 2 minutes (its senders' SETCACHE,
 * kept in the main process's queue cache): every delivery to that destination from the zone is then
 * deferred on ZoneMTA's own schedule (5 minutes first) without being tried. A delivery whose binding
 * left this node between fetch and connection fails its connection hook the same way, though the
 * destination is fine: one move made a zone's mail for that domain wait 5 minutes (seen in the ZoneMTA
 * failover test). So such a failure (code EBINDINGMOVED) is not cached; anything else is, as before.
 */
function keepMoveErrorsOutOfCache(queue: ZoneMtaQueue | false): void {
  const cache = queue ? (queue as { cache?: { set?: (key: string, value: unknown, ttl?: number) => unknown } }).cache : undefined;
  if (!cache || typeof cache.set !== 'function') return;
  const set = cache.set.bind(cache);
  cache.set = (key: string, value: unknown, ttl?: number) => ((value as { code?: string } | null)?.code === ErrorCodes.BINDING_MOVED ? undefined : set(key, value, ttl));
}

/** ZoneMTA's in-memory QueueLocker (MailQueue.locks, ZoneMTA 3.10), if it has the shape the takeover relies on. */
function lockerOf(queue: ZoneMtaQueue | false): DeliveryLocker | null {
  const locks = queue ? (queue as { locks?: Partial<DeliveryLocker> }).locks : undefined;
  return locks && locks.locks instanceof Map && typeof locks.release === 'function' ? (locks as DeliveryLocker) : null;
}

/** ZoneMTA's queue as the takeover sees it, once it has its database. */
function sharedQueueOf(queue: ZoneMtaQueue | false): SharedQueue | null {
  if (!queue || !queue.mongodb || !queue.instanceId) return null;
  return { instanceId: queue.instanceId, collection: queue.options?.collection ?? 'zone-queue', mongodb: queue.mongodb };
}

/** How far in the future a relayed message is queued until it is assigned to this node. */
const CLAIM_WINDOW_MS = 30_000;

interface ZoneMtaMailDrop {
  add(envelope: Record<string, unknown>, source: Buffer, callback: (error: Error | null, response?: string) => void): void;
}

/** What the plugin reads from and sets on ZoneMTA's delivery object. */
interface Delivery {
  id: string;
  seq: string;
  /** ZoneMTA's: how often this delivery was deferred (picks its next wait from deferTimes). */
  _deferred?: { count?: number };
  /** ZoneMTA's: the waits after each deferral, for this delivery only (else the queue's schedule). */
  deferTimes?: number[];
  /** ZoneMTA's: fields a deferral writes into the queue entry ($set, or $inc / $mul). */
  updates?: Record<string, unknown> & { $inc?: Record<string, number> };
  sendingZone: string;
  mtaVipBinding?: string;
  mtaVipVia?: 'local' | 'relay';
  zoneAddress?: { address: string; name: string };
  zoneAddressIPv4?: { address: string; name: string };
  zoneAddressIPv6?: { address: string; name: string };
  mx?: Array<{ priority: number; exchange: string; A: string[]; AAAA: string[] }>;
  mxPort?: number;
  skipSTS?: boolean;
  dnsOptions?: Record<string, unknown>;
}

export const title = 'mta-vip';

const REQUIRED_CONTEXTS = ['main', 'receiver', 'sender'];

/** Set in the main process once the cluster runs (for tests and operators' own plugins). */
export let clusterProcess: ClusterProcess | null = null;

/**
 * ZoneMTA calls this in every process the plugin is enabled for. A failure
 * here would only be logged by ZoneMTA and leave the node without failover, so
 * it is logged and the process exits instead.
 */
export async function init(app: ZoneMtaApp): Promise<void> {
  const context = app.manager.context;
  const log = (level: 'info' | 'error', message: string): void => app.logger[level](`mta-vip/${context}/${process.pid}`, '%s', message);
  try {
    const { options, resolved } = resolvePluginOptions('ZoneMTA', app.config);
    checkContexts(app.config.enabled);
    if (context === 'main') {
      const takeoverMs = queueTakeoverMsOf(app.config);
      // ZoneMTA loads the main process's plugins after its queue is up.
      const queue = sharedQueueOf(app.getQueue());
      if (queue && takeoverMs) {
        const since = await joinSharedQueue(queue, resolved.cluster.id, resolved.node, takeoverMs, log);
        writeQueueFence(queueFenceFile(stateFileOf(options, resolved)), { pid: process.pid, instanceId: queue.instanceId, collection: queue.collection, since });
      }
      keepMoveErrorsOutOfCache(app.getQueue());
      clusterProcess = await startClusterProcess('zonemta', options, resolved, (message) => dropIntoQueue(app, app.config, message), log);
      if (queue && takeoverMs) {
        const cluster = clusterProcess.cluster;
        const locker = lockerOf(app.getQueue());
        followQueueTakeover({ queue, clusterId: resolved.cluster.id, node: resolved.node, afterMs: takeoverMs, peers: cluster, livePeers: cluster.status().peers.filter((p) => p.live).map((p) => p.node), log, ...(locker ? { locker } : {}) });
      }
    } else if (context === 'receiver') {
      initReceiver(app, workerView(options, resolved));
    } else if (context === 'sender') {
      const view = workerView(options, resolved);
      const fenceFile = queueTakeoverMsOf(app.config) ? queueFenceFile(stateFileOf(options, resolved)) : null;
      initSender(app, app.config, view, createRelayGateway(options, resolved, view, log), fenceFile);
    }
  } catch (error) {
    log('error', `cannot start: ${(error as Error).message}`);
    // Exit loudly: ZoneMTA would otherwise run on without the plugin.
    process.exitCode = 78;
    setImmediate(() => process.exit(78));
    throw error;
  }
}

function queueTakeoverMsOf(options: ZoneMtaPluginOptions): number {
  const value = options.queueTakeoverMs ?? 30_000;
  if (!(Number.isFinite(value) && value >= 0)) throw new PluginConfigError('ZoneMTA', '"queueTakeoverMs" must be a number of milliseconds >= 0 (0: a gone node keeps its queue until it returns)');
  return value;
}

function checkContexts(enabled: ZoneMtaPluginOptions['enabled']): void {
  if (enabled === true || enabled === '*') return;
  const list = (Array.isArray(enabled) ? enabled : [enabled]).map((c) => String(c).toLowerCase());
  if (list.includes('*')) return;
  const missing = REQUIRED_CONTEXTS.filter((c) => !list.includes(c));
  if (missing.length) {
    throw new PluginConfigError('ZoneMTA', `"enabled" must include ${REQUIRED_CONTEXTS.map((c) => `'${c}'`).join(', ')} (missing ${missing.join(', ')}): the cluster runs in main, clients are checked in receivers and bindings applied in senders`);
  }
}

function initReceiver(app: ZoneMtaApp, view: BindingView): void {
  app.addHook('smtp:connect', async (session: { localAddress?: string; remoteAddress?: string }) => {
    const ip = normalizeIp(session.localAddress ?? '');
    const state = view.listenerState(ip);
    if (state === 'unmanaged' || state === 'serving') return;
    const error = new Error(`4.3.2 ${ip} is moving to another server, try again`) as Error & { responseCode: number };
    error.responseCode = 421;
    throw error;
  });
}

/** The binding a delivery leaves from: set by another plugin (envelope.mtaVipBinding), mapped from its zone, or the zone's own name. */
export function bindingOf(options: ZoneMtaPluginOptions, view: BindingView, delivery: Pick<Delivery, 'mtaVipBinding' | 'sendingZone'>): string | undefined {
  if (delivery.mtaVipBinding) return delivery.mtaVipBinding;
  const mapped = options.zones?.[delivery.sendingZone];
  if (mapped) return mapped;
  return view.binding(delivery.sendingZone) ? delivery.sendingZone : undefined;
}

function initSender(app: ZoneMtaApp, options: ZoneMtaPluginOptions, view: BindingView, gateway: RelayGateway, fenceFile: string | null): void {
  const holderWaitMs = options.holderWaitMs ?? 15_000;
  const moveRetryMs = options.moveRetryMs ?? 2_000;

  app.addHook('sender:fetch', async (delivery: Delivery) => {
    if (fenceFile) await checkStillOurs(app, delivery, fenceFile, holderWaitMs, moveRetryMs);
    const name = bindingOf(options, view, delivery);
    if (!name) return;
    const info = await waitForHolder(view, name, holderWaitMs);
    if (!info) throw temporaryError(`binding ${name} is unknown or has no holder now; deferring`);
    if (info.local && info.state === 'owned') {
      const address = { address: info.address, name: hostnameOf(options, name) };
      delivery.mtaVipVia = 'local';
      delivery.zoneAddress = address;
      if (info.address.includes(':')) {
        delivery.zoneAddressIPv6 = address;
        delete delivery.zoneAddressIPv4;
      } else {
        delivery.zoneAddressIPv4 = address;
        delete delivery.zoneAddressIPv6;
      }
      return;
    }
    // Held elsewhere: the next hop is the loopback gateway that relays to the holder.
    const { host, port, helo } = await gateway.endpoint(name);
    delivery.mtaVipVia = 'relay';
    delivery.mx = [{ priority: 0, exchange: host, A: [host], AAAA: [] }];
    delivery.mxPort = port;
    delivery.skipSTS = true;
    // The EHLO name carries the binding to the gateway, which relays for that binding only.
    delivery.zoneAddress = { address: host, name: helo };
    delivery.zoneAddressIPv4 = delivery.zoneAddress;
    delete delivery.zoneAddressIPv6;
    app.logger.info(`mta-vip/sender/${process.pid}`, 'id=%s.%s binding %s is held by %s: relaying through %s:%s', delivery.id, delivery.seq, name, info.holder, host, port);
  });

  app.addHook('sender:connect', async (delivery: Delivery, connectOptions: { localAddress?: string }) => {
    const name = bindingOf(options, view, delivery);
    if (!name || !delivery.mtaVipVia) return;
    if (delivery.mtaVipVia === 'relay') {
      connectOptions.localAddress = delivery.zoneAddress?.address;
      return;
    }
    const info = view.binding(name);
    if (!info || !info.local || info.state !== 'owned') {
      deferForMove(delivery, moveRetryMs);
      // Coded, so the main process does not cache it as the destination's failure (keepMoveErrorsOutOfCache).
      throw Object.assign(temporaryError(`binding ${name} left this node before connecting (holder ${info?.holder ?? 'nobody'}); trying again in ${moveRetryMs} ms from its holder`), { code: ErrorCodes.BINDING_MOVED });
    }
    connectOptions.localAddress = info.address;
  });
}

/**
 * A delivery fetched while its binding was here, whose binding left before the connection: not a
 * failure of the delivery but of its timing. ZoneMTA would wait 5 minutes (the first step of its
 * schedule): a node SIGTERMed with deliveries in flight left them stranded that long after its
 * return. So it is due again after `retryMs` (its next fetch relays it to the binding's new
 * holder), and the deferral does not count against the delivery's schedule (ZoneMTA merges the
 * update's $inc over its own). It stays assigned to this node: left unassigned in a shared queue,
 * the other node fetched it while the two still disagreed on the holder, and the message was
 * relayed back and forth (5 relays of one message in CI).
 */
function deferForMove(delivery: Delivery, retryMs: number): void {
  const count = delivery._deferred?.count ?? 0;
  // ZoneMTA takes the wait at index `count` of the delivery's own deferTimes.
  delivery.deferTimes = Array.from({ length: count + 1 }, () => retryMs);
  delivery.updates = { ...delivery.updates, $inc: { ...delivery.updates?.$inc, '_deferred.count': 0 } };
}

/**
 * How long a delivery handed back to a peer that has it locked waits before it can be fetched again:
 * longer than a delivery takes, so that peer, sending it now, finishes (and removes it) first.
 */
const HANDED_BACK_LOCKED_RETRY_MS = 60_000;

/**
 * A sender fetching on a node that shares its queue: only once the main process has joined the
 * queue (no takeover of this node can start after that), and only if the delivery's entry is still
 * this node's. One a peer took over while this node was booting is handed back:
 * deferred (which is how a ZoneMTA sender lets go of a delivery) with its entry reassigned to the
 * new owner; due again at once (after `retryMs`) unless the new owner has it locked, since a
 * deferral also unlocks it and a peer sending it must finish first.
 */
async function checkStillOurs(app: ZoneMtaApp, delivery: Delivery, fenceFile: string, waitMs: number, retryMs: number): Promise<void> {
  let fence: QueueFence | null = null;
  for (const deadline = Date.now() + waitMs; !(fence = readQueueFence(fenceFile)) && Date.now() < deadline; ) await new Promise((resolve) => setTimeout(resolve, 50));
  if (!fence) {
    deferForMove(delivery, retryMs);
    throw temporaryError(`this node has not joined its shared queue yet (no ${fenceFile} from its main process); trying again in ${retryMs} ms`);
  }
  const queue = app.getQueue();
  if (!queue || !queue.mongodb) return;
  const taken = await takenOverFrom(delivery as Delivery & LockedDelivery, fence, queue.mongodb);
  if (!taken) return;
  deferForMove(delivery, taken.locked ? HANDED_BACK_LOCKED_RETRY_MS : retryMs);
  if (taken.owner) delivery.updates = { ...delivery.updates, assigned: taken.owner };
  throw temporaryError(`${delivery.id}.${delivery.seq} was taken over by queue instance ${taken.owner ?? '(sent already)'} while this node was away; handing it back`);
}

/** Assigns the deliveries of queue entry `id` to this ZoneMTA instance and makes them due now. */
async function claimForThisNode(queue: ZoneMtaQueue, id: string): Promise<void> {
  if (!queue.mongodb || !queue.instanceId) return;
  await queue.mongodb.collection(queue.options?.collection ?? 'zone-queue').updateMany(
    { id, locked: false, assigned: 'no' },
    { $set: { assigned: queue.instanceId, queued: new Date() }, $unset: { _deferred: '' } },
  );
}

/** Main process: a message another node relayed for a binding held here goes into ZoneMTA's queue, in the binding's zone. */
function dropIntoQueue(app: ZoneMtaApp, options: ZoneMtaPluginOptions, message: RelayedMessage): Promise<void> {
  const maildrop = app.manager.apiServer?.maildrop;
  const queue = app.getQueue();
  if (!maildrop || !queue || !queue.seqIndex) return Promise.reject(temporaryError('ZoneMTA queue is not ready yet'));
  const zone = Object.entries(options.zones ?? {}).find(([, binding]) => binding === message.binding)?.[0] ?? message.binding;
  // Nodes may share one MongoDB queue (the deployment where queued mail survives
  // a node). A relayed message must be sent by the node that took it, which holds
  // its binding: left unassigned, another node's sender could fetch it, find the
  // binding elsewhere and relay it straight back, round and round. So it is
  // queued in the future (nobody fetches it), then assigned to this instance and
  // made due at once.
  const claimable = Boolean(queue.mongodb && queue.instanceId);
  const envelope = {
    id: queue.seqIndex.get(),
    ...(claimable ? { deferDelivery: Date.now() + CLAIM_WINDOW_MS } : {}),
    from: message.envelope.from,
    to: message.envelope.to,
    sendingZone: zone,
    mtaVipBinding: message.binding,
    interface: 'mta-vip',
    origin: message.from,
    transtype: 'MTA-VIP',
    time: Date.now(),
  };
  return new Promise((resolve, reject) => {
    maildrop.add(envelope, message.raw, (error) => {
      if (error) return reject(error);
      const claimed = claimable ? claimForThisNode(queue, envelope.id) : Promise.resolve();
      claimed.then(
        () => {
          app.logger.info(`mta-vip/main/${process.pid}`, 'queued %s relayed by %s for binding %s in zone %s', envelope.id, message.from, message.binding, zone);
          resolve();
        },
        (claimError: Error) => {
          // Queued all the same: it goes out after the claim window, from whichever node holds the binding then.
          app.logger.error(`mta-vip/main/${process.pid}`, 'queued %s but could not assign it to this node: %s', envelope.id, claimError.message);
          resolve();
        },
      );
    });
  });
}
