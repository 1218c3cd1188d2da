// A listener VIP served by an MTA's own (wildcard) listening socket.
//
// The MTA listens on 0.0.0.0 / [::] itself, so the kernel only hands it
// connections for VIPs present on this host. What the MTA cannot know is that
// a VIP is about to leave: the cluster stops a VIP's services before it
// removes the address, and this service's stop() marks the VIP 'releasing' in
// the shared state, so the MTA's connect hook refuses (421) new clients on it
// while the address is still here.

import type { VipService } from '../mta/types';
import type { SharedStateWriter } from './shared-state';

export class ListenerGate implements VipService {
  readonly ip: string;
  readonly description: string;

  /**
   * @param drainMs how long stop() keeps the address after refusing new clients, so sessions in
   *   flight in the MTA's worker processes can finish (their count is not visible from here).
   */
  constructor(
    ip: string,
    private readonly writer: SharedStateWriter,
    private readonly drainMs: number,
    mta: string,
  ) {
    this.ip = ip;
    this.description = `${mta} listener gate ${ip}`;
  }

  async start(): Promise<void> {
    this.writer.setListener(this.ip, 'serving');
  }

  async stop(): Promise<void> {
    this.writer.setListener(this.ip, 'releasing');
    if (this.drainMs > 0) await new Promise((resolve) => setTimeout(resolve, this.drainMs));
    this.writer.setListener(this.ip, 'idle');
  }
}
