/**
 * The alias reaper's own process (see alias-reaper.ts). Reads JSON lines of
 * held aliases on stdin; when stdin ends (the node process is gone or closed)
 * or a termination signal arrives, removes the last list and exits.
 */
import * as readline from 'node:readline';
import { removeAddress } from '../net';
import type { Alias } from './alias-reaper';

let held: Alias[] = [];
let reaping = false;

async function reap(why: string): Promise<void> {
  if (reaping) return;
  reaping = true;
  for (const alias of held) {
    try {
      await removeAddress(alias.ifname, alias.cidr);
      process.stderr.write(`mta-vip alias reaper: ${why}: removed ${alias.cidr} from ${alias.ifname}\n`);
    } catch (error) {
      process.stderr.write(`mta-vip alias reaper: ${why}: could not remove ${alias.cidr} from ${alias.ifname}: ${(error as Error).message}\n`);
    }
  }
  process.exit(0);
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
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => void reap(signal));
