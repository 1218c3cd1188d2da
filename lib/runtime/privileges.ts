/**
 * A node that manages VIPs needs CAP_NET_ADMIN (addresses) and CAP_NET_RAW
 * (announcements, probes, sniffing). Without them it must refuse to start:
 * otherwise it joins the cluster, is elected, fails to add the address, gives
 * the VIP up, and is elected again — an outage every retry, without end.
 */
import { readFileSync } from 'node:fs';

const CAP_NET_ADMIN = 12;
const CAP_NET_RAW = 13;

/** The network capabilities missing from `status` (the text of /proc/self/status). */
export function missingCapabilities(status: string): string[] {
  const effective = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (effective === undefined) return [];
  const bits = BigInt(`0x${effective}`);
  const missing: string[] = [];
  if (((bits >> BigInt(CAP_NET_ADMIN)) & 1n) === 0n) missing.push('CAP_NET_ADMIN');
  if (((bits >> BigInt(CAP_NET_RAW)) & 1n) === 0n) missing.push('CAP_NET_RAW');
  return missing;
}

/** Throws EPERM naming what is missing and how to grant it; nothing is touched before. */
export function assertNetworkPrivileges(status: string = readStatus()): void {
  const missing = missingCapabilities(status);
  if (missing.length === 0) return;
  throw Object.assign(
    new Error(
      `mta-vip: managing VIPs needs ${missing.join(' and ')} (EPERM): run as root, or grant it: ` +
        'setcap cap_net_raw,cap_net_admin+ep $(readlink -f $(which node)), or under systemd ' +
        'AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW',
    ),
    { code: 'EPERM', capability: missing.join(',') },
  );
}

function readStatus(): string {
  try {
    return readFileSync('/proc/self/status', 'utf8');
  } catch {
    return ''; // not Linux: the addon's own errors say what is missing
  }
}
