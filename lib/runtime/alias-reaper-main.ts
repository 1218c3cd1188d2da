/**
 * The alias reaper's own process (see alias-reaper.ts). Reads JSON lines of
 * held aliases on stdin; when stdin ends (the node process is gone or closed)
 * or a termination signal arrives, removes the last list and exits.
 *
 * Before it removes them it resets every TCP socket still on those addresses
 * (the dead process's listeners and sessions, those of an MTA's worker
 * processes, orphans): a client that connected just before the crash then
 * gets a RST, sent while the address is still here, instead of waiting in
 * silence for its timeout; a worker's delivery from a binding fails at once
 * instead of hanging. Once more after the removal, for a connection accepted
 * in between.
 */
import * as readline from 'node:readline';
import { destroyTcpSockets, removeAddress } from '../net';
import { resetSessions } from './session-drain';
import type { Alias } from './alias-reaper';

let held: Alias[] = [];
let reaping = false;

async function reap(why: string): Promise<void> {
  if (reaping) return;
  reaping = true;
  const addresses = held.map((alias) => alias.cidr.replace(/\/\d+$/, ''));
  await resetSockets(why, addresses);
  for (const alias of held) {
    try {
      await removeAddress(alias.ifname, alias.cidr);
      process.stderr.write(`mta-vip alias reaper: ${why}: removed ${alias.cidr} from ${alias.ifname}\n`);
    } catch (error) {
      process.stderr.write(`mta-vip alias reaper: ${why}: could not remove ${alias.cidr} from ${alias.ifname}: ${(error as Error).message}\n`);
    }
  }
  await resetSockets(why, addresses);
  process.exit(0);
}

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
