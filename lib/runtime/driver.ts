/**
 * The thin driver around the engine: feeds it inputs (membership events, the
 * addon's watch and sniff events, the one wake-up timer, the results of
 * operations), runs the effects ready() hands out through the injected ports,
 * and delivers the events. Nothing here decides: every choice of what to do
 * next is the engine's; this file only knows how to do it.
 *
 * Events are delivered after the effects of the same ready() were started,
 * each inside a try/catch: a listener that throws is reported as an 'error'
 * event and cannot leave a VIP stuck; an 'error' with no listener goes to the
 * logger instead of being lost.
 */
import type { EventEmitter } from 'eventemitter3';
import type { VipService } from '../mta/types';
import type * as net from '../net';
import type { ClusterEvents, Effect, EngineEvent, EngineInput, OperationResult, Publication } from './engine-io';
import type { VipEngine } from './engine';
import type { Clock, NetPort, Timer } from './ports';
import { drainSessions, resetSessions, type SessionDrainPorts } from './session-drain';
import { BatchedSocketCalls } from './socket-calls';
import { ErrorCodes } from '../errors';

/** A pino-compatible logger (only error is used: for 'error' events nobody listens to). */
export interface Logger {
  error(object: object, message?: string): void;
}

/** Where the driver publishes what this node holds. */
export interface PublishPort {
  publish(state: Publication): void;
}

export interface DriverOptions {
  announceMode: 'request' | 'reply' | 'both';
  announceCount: number;
  announceIntervalMs: number;
  /** Longest a binding VIP's release waits for outbound sessions (see RuntimeOptions.sessionDrainMs). */
  sessionDrainMs: number;
  logger?: Logger;
}

export class EngineDriver {
  private flushQueued = false;
  private wakeTimer: Timer | null = null;
  private readonly sniffers = new Map<string, ReturnType<typeof net.sniff>>();
  /** VIPs whose release in progress is to end its drain now (see the 'hurry' effect). */
  private readonly hurried = new Set<string>();
  private readonly quiescentWaiters: Array<() => void> = [];
  private readonly sessions: SessionDrainPorts;
  /** The drains of a mass release call the kernel once per poll, not once per VIP. */
  private readonly socketCalls: BatchedSocketCalls;
  private stopped = false;

  constructor(
    private readonly engine: VipEngine,
    private readonly net: NetPort,
    private readonly clock: Clock,
    private readonly out: PublishPort,
    private readonly emitter: EventEmitter<ClusterEvents>,
    private readonly services: ReadonlyMap<string, readonly VipService[]>,
    private readonly options: DriverOptions,
  ) {
    this.socketCalls = new BatchedSocketCalls(this.net, (fn) => this.clock.soon(fn));
    this.sessions = {
      tcpSockets: (addresses, o) => this.socketCalls.tcpSockets(addresses, o),
      destroyTcpSockets: (addresses, o) => this.socketCalls.destroyTcpSockets(addresses, o),
      now: () => this.clock.now(),
      sleep: (ms) => this.clock.sleep(ms),
    };
  }

  /** Steps the engine with an input stamped with the clock's time, and runs what comes out soon. */
  step(input: DistributiveOmit<EngineInput, 'now'>): void {
    this.engine.step({ ...input, now: this.clock.now() } as EngineInput);
    this.flushSoon();
  }

  /** Runs ready() once the current turn ends: the inputs of one turn cost one election. */
  flushSoon(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    this.clock.soon(() => {
      this.flushQueued = false;
      this.flush();
    });
  }

  /** Resolves once the engine is quiescent (after close: every VIP released). */
  whenQuiescent(): Promise<void> {
    if (this.engine.quiescent) return Promise.resolve();
    return new Promise((resolve) => this.quiescentWaiters.push(resolve));
  }

  /** Stops the wake-up timer and the sniffers; the engine gets no more input from here. */
  stop(): void {
    this.stopped = true;
    this.wakeTimer?.cancel();
    this.wakeTimer = null;
    for (const sniffer of this.sniffers.values()) sniffer.close();
    this.sniffers.clear();
  }

  /** Delivers one event to the application's listeners, never letting a listener's throw escape. */
  deliver(event: EngineEvent): void {
    try {
      if (event.name === 'error' && this.emitter.listenerCount('error') === 0) {
        this.log(event.args[0].operation, event.args[0].error, event.args[0].ip);
        return;
      }
      (this.emitter.emit as (name: string, ...args: unknown[]) => boolean)(event.name, ...event.args);
    } catch (error) {
      if (event.name === 'error') this.log(`'error' listener`, error as Error);
      else this.deliver({ name: 'error', args: [{ operation: `'${event.name}' listener`, error: error as Error }] });
    }
  }

  /** Runs ready() now (start and close: the first and last publication must not wait a turn). */
  flushNow(): void {
    this.flush();
  }

  private flush(): void {
    if (this.stopped) return;
    let ready;
    try {
      ready = this.engine.ready();
    } catch (error) {
      this.deliver({ name: 'error', args: [{ operation: 'reconcile', error: error as Error }] });
      return;
    }
    for (const effect of ready.effects) this.run(effect);
    for (const event of ready.events) this.deliver(event);
    if (this.engine.quiescent) for (const resolve of this.quiescentWaiters.splice(0)) resolve();
  }

  private run(effect: Effect): void {
    switch (effect.type) {
      case 'publish':
        try {
          this.out.publish(effect.state);
        } catch (error) {
          this.deliver({ name: 'error', args: [{ operation: 'publish', error: error as Error }] });
        }
        return;
      case 'wake':
        this.wakeTimer?.cancel();
        this.wakeTimer = effect.at === null ? null : this.clock.after(Math.max(0, effect.at - this.clock.now()), () => this.step({ type: 'tick' }));
        return;
      case 'sniff':
        return this.sniff(effect.ifname, effect.ips);
      case 'hurry':
        this.hurried.add(effect.ip);
        return;
      case 'reannounce':
        this.net.announce(effect.ifname, effect.ips, { count: effect.count, mode: this.options.announceMode }).catch((error: Error) => this.deliver({ name: 'error', args: [{ operation: `announce on ${effect.ifname}`, error }] }));
        return;
      case 'follow-up':
        void this.followUp(effect.ifname, effect.ips, effect.extraHosts);
        return;
      case 'probe': {
        const started = this.clock.now();
        return this.operation(async () => {
          const found = await this.net.probeMany(effect.ifname, effect.ips, { timeoutMs: effect.timeoutMs });
          return { op: effect.op, kind: 'probe', ok: true, found, ms: this.clock.now() - started };
        }, (error) => ({ op: effect.op, kind: 'probe', ok: false, error }));
      }
      case 'bring-up':
        return this.operation(() => this.bringUp(effect.op, effect.ip, effect.ifname, effect.cidr), (error) => ({ op: effect.op, kind: 'bring-up', ip: effect.ip, ok: false, step: 'add address', error }));
      case 'announce':
        return this.operation(async () => {
          await this.net.announce(effect.ifname, effect.ips, { count: 1, mode: this.options.announceMode });
          return { op: effect.op, kind: 'announce', ok: true };
        }, (error) => ({ op: effect.op, kind: 'announce', ok: false, error }));
      case 'take-down':
        return this.operation(async () => {
          if (effect.services) await Promise.allSettled(this.servicesOf(effect.ip).map((s) => s.stop()));
          await this.net.removeAddress(effect.ifname, effect.cidr).catch(() => undefined);
          return { op: effect.op, kind: 'take-down', ip: effect.ip, ok: true };
        }, (error) => ({ op: effect.op, kind: 'take-down', ip: effect.ip, ok: false, error }));
      case 'release':
        return this.operation(() => (effect.urgent ? this.releaseAtOnce(effect.op, effect.ip, effect.ifname, effect.cidr) : this.release(effect.op, effect.ip, effect.ifname, effect.cidr)), (error) => ({ op: effect.op, kind: 'release', ip: effect.ip, ok: false, error }));
      case 'restore':
        return this.operation(async () => {
          await this.net.addAddress(effect.ifname, effect.cidr);
          await this.net.announce(effect.ifname, [effect.ip], { count: 1, mode: this.options.announceMode });
          return { op: effect.op, kind: 'restore', ip: effect.ip, ok: true };
        }, (error) => ({ op: effect.op, kind: 'restore', ip: effect.ip, ok: false, error }));
    }
  }

  /** Runs an operation and steps its result (or its failure) back into the engine. */
  private operation(run: () => Promise<OperationResult>, failed: (error: Error) => OperationResult): void {
    void run()
      .catch((error: unknown) => failed(error instanceof Error ? error : new Error(String(error))))
      .then((result) => {
        if (!this.stopped) this.step({ type: 'done', result });
      });
  }

  /** Adds the address and starts the VIP's services; on failure undoes both and says which step failed. */
  private async bringUp(op: number, ip: string, ifname: string, cidr: string): Promise<OperationResult> {
    let step: 'add address' | 'start services' = 'add address';
    const started: VipService[] = [];
    try {
      await this.net.addAddress(ifname, cidr);
      step = 'start services';
      for (const service of this.servicesOf(ip)) {
        await service.start();
        started.push(service);
      }
      return { op, kind: 'bring-up', ip, ok: true };
    } catch (error) {
      // Give the VIP up cleanly rather than hold an address nobody serves.
      await Promise.allSettled(started.map((s) => s.stop()));
      await this.net.removeAddress(ifname, cidr).catch(() => undefined);
      return { op, kind: 'bring-up', ip, ok: false, step, error: error as Error };
    }
  }

  /**
   * Drain first: the address stays until the listeners are closed, so sessions in flight
   * finish on this node. Then the sessions of every process on this host (MTA workers,
   * orphans) end, or are reset while their RST can still leave from this address; then the
   * address goes.
   */
  private async release(op: number, ip: string, ifname: string, cidr: string): Promise<OperationResult> {
    this.hurried.delete(ip);
    const errors: Array<{ operation: string; error: Error }> = [];
    const services = this.servicesOf(ip);
    await this.stopServices(ip, errors);
    const vip = this.engine.config.vips.find((v) => v.ip === ip);
    const deadlineMs = Math.max(0, ...services.map((s) => s.drainMs ?? 0), vip?.binding ? this.options.sessionDrainMs : 0);
    const result = { op, kind: 'release' as const, ip, ok: true as const, drained: 0, reset: 0, lateReset: 0, timedOut: false, errors };
    try {
      const drain = await drainSessions(this.sessions, ip, { listenerPorts: vip?.ports ?? [], deadlineMs, cutShort: () => this.hurried.has(ip) });
      result.drained = drain.drained;
      result.reset = drain.reset;
      result.timedOut = drain.timedOut;
    } catch (error) {
      errors.push({ operation: 'drain sessions', error: error as Error });
    }
    this.hurried.delete(ip);
    await this.removeAfterLastReset(ip, ifname, cidr, result);
    return result;
  }

  /**
   * An urgent release (a lost clash, another holder, our link down, a stale claim): the sessions
   * on the address are reset while their RST can still leave from it, the address goes at once,
   * then the services stop (nothing is left for them to drain).
   */
  private async releaseAtOnce(op: number, ip: string, ifname: string, cidr: string): Promise<OperationResult> {
    const errors: Array<{ operation: string; error: Error }> = [];
    const result = { op, kind: 'release' as const, ip, ok: true as const, drained: 0, reset: 0, lateReset: 0, timedOut: false, errors };
    try {
      result.reset = await resetSessions(this.sessions, [ip]);
    } catch (error) {
      errors.push({ operation: 'drain sessions', error: error as Error });
    }
    await this.net.removeAddress(ifname, cidr);
    await this.stopServices(ip, errors);
    return result;
  }

  /** Stops the VIP's services; a service that fails to stop is recorded in `errors`, the others still stop. */
  private async stopServices(ip: string, errors: Array<{ operation: string; error: Error }>): Promise<void> {
    const results = await Promise.allSettled(this.servicesOf(ip).map((s) => s.stop()));
    for (const r of results) if (r.status === 'rejected') errors.push({ operation: 'stop service', error: r.reason as Error });
  }

  /**
   * Removes the address; a client the kernel accepted between the drain's reset and the
   * removal would wait in silence (a RST cannot leave from an address that is gone), so when
   * one is found the address is put back for the moment its reset takes, and removed again (at
   * most three rounds; the window shrinks each time, and no announcement is made meanwhile).
   */
  private async removeAfterLastReset(ip: string, ifname: string, cidr: string, result: { reset: number; lateReset: number; errors: Array<{ operation: string; error: Error }> }): Promise<void> {
    const reset = async (): Promise<void> => {
      try {
        result.reset += await resetSessions(this.sessions, [ip]);
      } catch (error) {
        result.errors.push({ operation: 'drain sessions', error: error as Error });
      }
    };
    for (let round = 1; ; round++) {
      await this.net.removeAddress(ifname, cidr);
      let late: net.TcpSocket[] = [];
      try {
        late = (await this.sessions.tcpSockets([ip])).filter((s) => s.owned);
      } catch (error) {
        result.errors.push({ operation: 'drain sessions', error: error as Error });
      }
      if (late.length === 0) return;
      // The owners at least hear of it at once (ECONNABORTED) instead of hanging.
      if (round === 3) return reset();
      result.lateReset += late.length;
      await this.net.addAddress(ifname, cidr);
      await reset();
    }
  }

  /** The rest of the announcements, and unicast ARP to known hosts, off the failover path. */
  private async followUp(ifname: string, ips: string[], extra: Array<{ address: string; mac: string }>): Promise<void> {
    const { announceCount: count, announceIntervalMs: intervalMs, announceMode: mode } = this.options;
    const held = (ip: string): boolean => this.engine.stateOf(ip) === 'held';
    try {
      if (this.engine.config.announce.arpAllHosts) {
        for (const ip of ips) if (held(ip)) await this.net.arpAllHosts(ifname, ip, { extra });
      }
      // One round per call, the waits on this thread's timers: a call of several rounds sleeps
      // between them on one of libuv's four threads, and a mass takeover's follow-ups (one per
      // chunk) then held every thread while the next chunks' addresses waited for one.
      for (let round = 1; round < count; round++) {
        await this.clock.sleep(intervalMs);
        const still = ips.filter(held);
        if (still.length === 0) return;
        await this.net.announce(ifname, still, { count: 1, mode });
      }
    } catch (error) {
      this.deliver({ name: 'error', args: [{ operation: `announce on ${ifname}`, error: error as Error }] });
    }
  }

  /** Keeps one sniffer per interface watching the VIPs held on it. */
  private sniff(ifname: string, ips: string[]): void {
    let sniffer = this.sniffers.get(ifname);
    try {
      if (!sniffer && ips.length) {
        sniffer = this.net.sniff(ifname, ips, (event) => this.step({ type: 'foreign-claim', ifname: event.ifname, address: event.address, mac: event.mac, kind: event.kind }));
        this.sniffers.set(ifname, sniffer);
      } else if (sniffer) {
        sniffer.setAddresses(ips);
      }
    } catch (error) {
      this.deliver({ name: 'error', args: [{ operation: `sniff on ${ifname}`, error: error as Error }] });
    }
  }

  private servicesOf(ip: string): readonly VipService[] {
    return this.services.get(ip) ?? [];
  }

  private log(operation: string, error: Error, ip?: string): void {
    if (this.options.logger) this.options.logger.error({ err: error, operation, ...(ip ? { ip } : {}) }, `mta-vip: ${operation} failed`);
    else process.emitWarning(`mta-vip: ${operation}${ip ? ` (${ip})` : ''}: ${error.message}`, { code: ErrorCodes.UNHANDLED });
  }
}

/** Omit over each member of a union (the plain Omit would merge them). */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
