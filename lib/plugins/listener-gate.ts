// A listener VIP served by an MTA's own (wildcard) listening socket.
//
// The MTA listens on 0.0.0.0 / [::] itself, so the kernel only hands it
// connections for VIPs present on this host. What the MTA cannot know is that
// a VIP is about to leave: the cluster stops a VIP's services before it
// removes the address, and this service's stop() marks the VIP 'releasing' in
// the shared state, so the MTA's connect hook refuses (421) new clients on it
// while the address is still here. The sessions already in flight live in the
// MTA's worker processes, out of this process's sight: the runtime then waits
// for them in the kernel's socket table (up to `drainMs`) and resets what is
// left before the address goes (runtime/session-drain.ts), so no client is
// left in silence.

import type { VipService } from '../mta/types';
import type { SharedStateWriter } from './shared-state';

/** Plugins drain like the library's own listeners: up to 30 s, ending as soon as the sessions do. */
export const DEFAULT_PLUGIN_DRAIN_MS = 30_000;

export class ListenerGate implements VipService {
  readonly ip: string;
  readonly description: string;

  /**
   * @param drainMs how long the runtime waits, after new clients are refused, for sessions in
   *   flight in the MTA's processes before it resets them and removes the address.
   */
  constructor(
    ip: string,
    private readonly writer: SharedStateWriter,
    readonly drainMs: number,
    mta: string,
  ) {
    this.ip = ip;
    this.description = `${mta} listener gate ${ip}`;
  }

  async start(): Promise<void> {
    this.writer.setListener(this.ip, 'serving');
  }

  async stop(): Promise<void> {
    // Written before returning: the next connection any worker accepts on this VIP gets 421.
    this.writer.setListener(this.ip, 'releasing');
  }
}
