/**
 * Real Membership instances on 127.0.0.x for the transport tests: one pool per
 * test file, closed (without goodbye) when the file ends.
 */
import { Membership, type MembershipOptions } from '../../../lib/transport/membership';

export const SECRET = 'a cluster secret of enough bytes';
/** Test declarations are JSON `{ vips: [...] }`: the VIP list is all the transport needs. */
export const vipsOf = (declaration: Buffer): string[] => (JSON.parse(declaration.toString()) as { vips: string[] }).vips;

export class MembershipPool {
  private readonly open: Membership[] = [];

  /** A node of cluster 'mail' bound to address:port, errors swallowed (tests read counters). */
  node(name: string, address: string, port: number, peers: string[], extra: Partial<MembershipOptions> = {}): Membership {
    const membership = new Membership({ clusterId: 'mail', node: name, secret: SECRET, bind: address, port, peers, vipsOf, ...extra });
    membership.on('error', () => undefined);
    this.open.push(membership);
    return membership;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.open.map((m) => m.close({ goodbye: false })));
  }
}

/** Polls `condition` until true or the deadline passes (then fails naming `what`). */
export async function waitFor(what: string, condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
