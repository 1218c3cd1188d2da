/**
 * What goes into the engine (inputs), what comes out (effects for the driver
 * to run, events for the application), and the event payloads of the
 * package's API. Plain data: the same values flow in namespaces and in the
 * deterministic simulation (test/sim).
 */
import type { VipFlags } from '../core';
import type { BindingListener } from '../mta/types';
import type { UnhealthyReason } from './health';
import type { PeerSnapshot } from './view-builder';

/** What the engine reads of a peer: the view builder's snapshot plus what status, quorum and follow-up ARP need. */
export interface EnginePeer extends PeerSnapshot {
  address: string;
  leaving: boolean;
  moves: ReadonlyMap<string, { node: string; seq: number }>;
  neighbours: ReadonlyArray<{ address: string; mac: string }>;
  /** What we hold of it matches its latest heartbeat (the membership's `complete`); unknown counts as current. */
  complete?: boolean;
}

export type PeerChange = { kind: 'up'; node: string; address: string } | { kind: 'down'; node: string; address: string; reason: string } | { kind: 'restart' | 'change'; node: string };

/** The result of an operation the engine asked for, by its `op` number. */
export type OperationResult =
  | { op: number; kind: 'probe'; ok: true; found: ReadonlyMap<string, string | null>; ms: number }
  | { op: number; kind: 'bring-up'; ip: string; ok: true }
  | { op: number; kind: 'announce'; ok: true }
  | { op: number; kind: 'take-down'; ip: string; ok: true }
  | { op: number; kind: 'release'; ip: string; ok: true; drained: number; reset: number; lateReset: number; timedOut: boolean; errors: Array<{ operation: string; error: Error }> }
  | { op: number; kind: 'restore'; ip: string; ok: true }
  | { op: number; kind: 'probe' | 'announce' | 'restore'; ip?: string; ok: false; error: Error }
  | { op: number; kind: 'bring-up'; ip: string; ok: false; step: 'add address' | 'start services'; error: Error }
  | { op: number; kind: 'take-down' | 'release'; ip: string; ok: false; error: Error };

export type EngineInput =
  /** Boot: cleanup is done; `links` is every interface's usability now. */
  | { type: 'start'; now: number; links: ReadonlyArray<{ ifname: string; usable: boolean }>; leftoversRemoved?: number }
  /** Time passed (the driver's one wake-up timer fired, or any other reason to look again). */
  | { type: 'tick'; now: number }
  /** The peer table changed: `peers` is all of it now; `change` says what happened, if one thing did. */
  | { type: 'peers'; now: number; peers: readonly EnginePeer[]; change?: PeerChange }
  /** The cluster addresses whose host refuses our heartbeats (its process is gone), all of them now. */
  | { type: 'refused'; now: number; addresses: readonly string[] }
  /** This process did not run for `lagMs` (SIGSTOP, GC, a blocked loop). */
  | { type: 'stall'; now: number; lagMs: number }
  | { type: 'link'; now: number; ifname: string; usable: boolean }
  /** An address left an interface, whoever removed it. */
  | { type: 'address-removed'; now: number; ifname: string; address: string }
  /** Another MAC claimed an address on the wire (ARP / NA). */
  | { type: 'foreign-claim'; now: number; ifname: string; address: string; mac: string; kind: string }
  /** The kernel's neighbours on the VIP links (shared with peers for arpAllHosts). */
  | { type: 'neighbours'; now: number; list: ReadonlyArray<{ address: string; mac: string }> }
  | { type: 'done'; now: number; result: OperationResult }
  /** The application's readiness for a VIP (see VipCluster.setReady). */
  | { type: 'ready'; now: number; ip: string; ready: boolean; detail: string }
  | { type: 'close'; now: number };

/** What this node tells its peers and its alias reaper. */
export interface Publication {
  holdings: Map<string, number>;
  unhealthy: Set<string>;
  moves: ReadonlyMap<string, { node: string; seq: number }>;
  neighbours: Array<{ address: string; mac: string }>;
  /** Aliases that may be on our interfaces (the reaper removes them if we die). */
  aliases: Array<{ ifname: string; cidr: string }>;
}

export type Effect =
  /** Must run before the effects after it (the reaper hears of an alias before it is added). */
  | { type: 'publish'; state: Publication }
  | { type: 'probe'; op: number; ifname: string; ips: string[]; timeoutMs: number }
  /** Add the address, then start the VIP's services; on failure undo both and report the step. */
  | { type: 'bring-up'; op: number; ip: string; ifname: string; cidr: string }
  | { type: 'announce'; op: number; ifname: string; ips: string[] }
  /** Stop the VIP's services and remove the address, without draining (an acquisition given up). */
  | { type: 'take-down'; op: number; ip: string; ifname: string; cidr: string; services: boolean }
  /** Stop the services (draining), drain the host's sessions on the address, remove it after the last reset. */
  /**
   * Services stop, sessions drain, then the address goes; `urgent` (a clash lost: another node
   * holds the address too and clients follow its announcements) removes the address first, so
   * the two holders last no longer than that, and ends what was left on it.
   */
  | { type: 'release'; op: number; ip: string; ifname: string; cidr: string; urgent: boolean }
  /**
   * A release in progress now only keeps two holders on the wire (another live node holds the
   * VIP too: a partition healed while we drained): end its drain now, as an urgent release would.
   */
  | { type: 'hurry'; ip: string }
  /** Put back an address removed behind our back, and announce it. */
  | { type: 'restore'; op: number; ip: string; ifname: string; cidr: string }
  /** Fire-and-forget announcements of VIPs held (re-announcements, the rest of a takeover's). */
  | { type: 'reannounce'; ifname: string; ips: string[]; count: number; intervalMs: number }
  /** Unicast ARP to every known host for a new holding, then the remaining announcements. */
  | { type: 'follow-up'; ifname: string; ips: string[]; extraHosts: Array<{ address: string; mac: string }> }
  /** Watch the wire for foreign claims on exactly these held VIPs of an interface. */
  | { type: 'sniff'; ifname: string; ips: string[] }
  /** Call step({ type: 'tick' }) at this time (replaces any earlier wake-up); null: none needed. */
  | { type: 'wake'; at: number | null };

export interface AcquiredEvent { ip: string; epoch: number; interface: string; tookMs: number; probeMs: number; probeFoundMac: string | null }
export interface ReleasedEvent { ip: string; reason: string; detail: string }
export interface StateEvent { ip: string; state: 'owned' | 'standby' | 'unowned'; owner: string | null; rule: string; flags: VipFlags; previousOwner: string | null }
export interface ConflictEvent { ip: string; kind: 'conflict' | 'unsafe' | 'broken' | 'on-wire' | 'probe' | 'clash'; message: string; mac?: string; node?: string }
export interface ErrorEvent { ip?: string; operation: string; error: Error }

export interface ClusterEvents {
  acquired: (event: AcquiredEvent) => void;
  released: (event: ReleasedEvent) => void;
  state: (event: StateEvent) => void;
  conflict: (event: ConflictEvent) => void;
  'peer-up': (peer: { node: string; address: string }) => void;
  'peer-down': (peer: { node: string; address: string; reason: string }) => void;
  'address-restored': (event: { ip: string; interface: string }) => void;
  /** A binding's holder, state or epoch changed (see binding()). */
  binding: BindingListener;
  unhealthy: (event: { ip: string; reason: UnhealthyReason; detail: string }) => void;
  stall: (event: { lagMs: number }) => void;
  error: (event: ErrorEvent) => void;
}

/** One queued event: its name and the arguments its listeners get. */
export type EngineEvent = { [K in keyof ClusterEvents]: { name: K; args: Parameters<ClusterEvents[K]> } }[keyof ClusterEvents];

/** What ready() hands out: effects in the order to start them, then events to deliver. */
export interface Ready {
  effects: Effect[];
  events: EngineEvent[];
}
