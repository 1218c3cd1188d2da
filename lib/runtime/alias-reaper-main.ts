/**
 * The alias reaper's own process, the node's guardian (see alias-reaper.ts).
 * Reads JSON lines of held aliases on stdin, and "." check-ins the node sends
 * from its event loop. When stdin ends (the node process is gone or closed)
 * it removes the last list and exits. When the node stops checking in for
 * MTA_VIP_GUARD_MS (stopped, a long GC pause, a blocked loop) it removes them
 * too, and stays: the node restores them if its peers never noticed, or
 * rejoins as standby if they did.
 *
 * Before it removes them it resets every TCP socket still on those addresses
 * (the dead process's listeners and sessions, those of an MTA's worker
 * processes, orphans): a client that connected just before the crash then
 * gets a RST, sent while the address is still here, instead of waiting in
 * silence for its timeout; a worker's delivery from a binding fails at once
 * instead of hanging. Once more after the removal, for a connection accepted
 * in between. Addresses the guard had already removed (the node went silent,
 * then died) come back for the moment of their resets (resetWhereGuardRemoved).
 */
import { performance } from 'node:perf_hooks';
import * as readline from 'node:readline';
import { canonicalIp } from '../core/ip';
import { addAddress, destroyTcpSockets, interfaces, removeAddress, tcpSockets } from '../net';
import { resetSessions } from './session-drain';
import type { Alias } from './alias-reaper';

let held: Alias[] = [];
let reaping = false;
const guardMs = Number(process.env.MTA_VIP_GUARD_MS ?? 0);
let lastCheckIn = performance.now();
/** True once the guard removed the aliases for the current silence (until the next check-in). */
let guarded = false;

/** The alias's address without its prefix length. */
function addressOf(alias: Alias): string {
  return alias.cidr.replace(/\/\d+$/, '');
}

/** The alias's address as the kernel's socket table spells it. */
function socketAddressOf(alias: Alias): string {
  return canonicalIp(addressOf(alias)) ?? addressOf(alias);
}

/** Up to 8 items of a list for a log line, with '...' for the rest. */
function abridged(items: readonly string[]): string {
  return items.length > 8 ? `${items.slice(0, 8).join(', ')}, ...` : items.join(', ');
}

async function reap(why: string): Promise<void> {
  if (reaping) return;
  reaping = true;
  await removeAll(why);
  process.exit(0);
}

/**
 * Removes the held aliases; with `reset`, the sockets on them are reset too. A dead node's
 * sessions are reset (nobody will answer them); a silent node's are not: if it resumes before its
 * peers notice, it puts the addresses back and TCP carries its sessions over the gap.
 */
async function removeAll(why: string, reset = true): Promise<void> {
  const addresses = held.map(addressOf);
  if (reset) {
    // First where the guard removed the address: a reset without it is destroyed, never sent.
    await resetWhereGuardRemoved(why);
    await resetSockets(why, addresses);
  }
  await removeAliases(why, held);
  if (reset) await resetSockets(why, addresses);
}

/**
 * Removes `aliases` all at once (the addon runs them on libuv's threads): one after another, a
 * dead node's 1,000 aliases took 0.21-0.73 s, each a VIP nobody could take over cleanly
 * meanwhile. One line for what was removed, one per failure.
 */
async function removeAliases(why: string, aliases: readonly Alias[]): Promise<void> {
  const results = await Promise.allSettled(aliases.map((alias) => removeAddress(alias.ifname, alias.cidr)));
  const removed: string[] = [];
  results.forEach((result, i) => {
    const alias = aliases[i] as Alias;
    if (result.status === 'fulfilled') removed.push(`${alias.cidr} from ${alias.ifname}`);
    else process.stderr.write(`mta-vip alias reaper: ${why}: could not remove ${alias.cidr} from ${alias.ifname}: ${(result.reason as Error).message}\n`);
  });
  if (removed.length) process.stderr.write(`mta-vip alias reaper: ${why}: removed ${removed.length > 8 ? `${removed.length} aliases (${abridged(removed)})` : abridged(removed)}\n`);
}

/**
 * A node that went silent (the guard removed its addresses and kept their sessions) and then died
 * leaves those sessions with no way to be told: a reset needs its source address, and a client
 * waiting for a reply (the 250 after DATA: minutes, RFC 5321 section 4.5.3.2) sends nothing the
 * new holder could answer with one. So each removed address with sessions on it comes back for
 * the few milliseconds of the resets, and goes again. Nothing announces it meanwhile (no
 * gratuitous ARP; IPv6 without duplicate address detection), and clients that followed the new
 * holder's announcement keep sending there.
 */
async function resetWhereGuardRemoved(why: string): Promise<void> {
  let present: Set<string>;
  try {
    present = new Set(interfaces().flatMap((i) => i.addresses.map((a) => `${i.name}|${a.address}`)));
  } catch (error) {
    process.stderr.write(`mta-vip alias reaper: ${why}: could not list addresses: ${(error as Error).message}\n`);
    return;
  }
  const removed = held.filter((alias) => !present.has(`${alias.ifname}|${addressOf(alias)}`));
  if (!removed.length) return;
  // One listing of the host's sockets for all of them (each call is a full dump), then the
  // addresses with sessions come back, are reset together and go again, all at once.
  let sessionsOn: Map<string, number>;
  try {
    sessionsOn = new Map();
    for (const s of await tcpSockets(removed.map(addressOf))) {
      if (s.state === 'LISTEN') continue;
      const local = canonicalIp(s.local) ?? s.local;
      sessionsOn.set(local, (sessionsOn.get(local) ?? 0) + 1);
    }
  } catch (error) {
    process.stderr.write(`mta-vip alias reaper: ${why}: could not list the sessions on the addresses the guard removed: ${(error as Error).message}\n`);
    return;
  }
  const back = removed.filter((alias) => sessionsOn.has(socketAddressOf(alias)));
  if (!back.length) return;
  const started = performance.now();
  const added = await Promise.allSettled(back.map((alias) => addAddress(alias.ifname, alias.cidr)));
  const up = back.filter((alias, i) => {
    const result = added[i] as PromiseSettledResult<unknown>;
    if (result.status === 'rejected') process.stderr.write(`mta-vip alias reaper: ${why}: could not put ${alias.cidr} back on ${alias.ifname} to reset its sessions: ${(result.reason as Error).message}\n`);
    return result.status === 'fulfilled';
  });
  try {
    await resetSockets(why, up.map(addressOf));
  } finally {
    await removeAliases(why, up);
  }
  const count = up.reduce((sum, alias) => sum + (sessionsOn.get(socketAddressOf(alias)) ?? 0), 0);
  if (up.length) process.stderr.write(`mta-vip alias reaper: ${why}: ${abridged(up.map((a) => a.cidr))} back on ${[...new Set(up.map((a) => a.ifname))].join(', ')} for ${Math.round(performance.now() - started)} ms to reset ${count} sessions left since the guard removed ${up.length === 1 ? 'it' : 'them'}\n`);
}

/**
 * The node's silence is judged after the pipe's pending check-ins were read: a timer that fires
 * in the same turn as queued data (this process was starved too) must not act on stale time.
 */
function watchSilence(): void {
  if (!(guardMs > 0)) return;
  const wait = Math.max(1, lastCheckIn + guardMs - performance.now());
  setTimeout(() => setImmediate(() => {
    if (!reaping && !guarded && held.length > 0 && performance.now() - lastCheckIn >= guardMs) {
      guarded = true;
      void removeAll(`node process ${process.env.MTA_VIP_REAPER_PARENT ?? '?'} silent for ${Math.round(performance.now() - lastCheckIn)} ms (guard ${guardMs} ms)`, false);
    }
    watchSilence();
  }), wait).unref();
}
watchSilence();

async function resetSockets(why: string, addresses: string[]): Promise<void> {
  try {
    const destroyed = await resetSessions({ destroyTcpSockets }, addresses, true);
    if (destroyed > 0) process.stderr.write(`mta-vip alias reaper: ${why}: reset ${destroyed} TCP sockets on ${addresses.join(', ')}\n`);
  } catch (error) {
    process.stderr.write(`mta-vip alias reaper: ${why}: could not reset sockets: ${(error as Error).message}\n`);
  }
}

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line === '.') {
    lastCheckIn = performance.now();
    guarded = false;
    return;
  }
  try {
    const list = JSON.parse(line) as unknown;
    if (Array.isArray(list)) held = list.filter((a): a is Alias => typeof a?.ifname === 'string' && typeof a?.cidr === 'string');
  } catch {
    // A torn line from a dying parent: keep the last good list.
  }
});
lines.on('close', () => void reap(`node process ${process.env.MTA_VIP_REAPER_PARENT ?? '?'} ended`));
// SIGTERM/SIGINT/SIGHUP reach the reaper too when they are sent to the node's
// process group (systemd's KillMode=control-group, Ctrl-C). The node is then
// draining its sessions and releasing its VIPs itself; reaping now would cut
// those sessions and remove addresses under them. The reaper leaves when the
// node closes the pipe (gracefully, after its releases, or by dying).
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.on(signal, () => process.stderr.write(`mta-vip alias reaper: ${signal} ignored: the node process releases its own VIPs; the reaper acts when it ends\n`));
}
