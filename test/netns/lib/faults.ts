/**
 * nftables scripts for the lab's faults. Each script replaces its whole table in one `nft -f`
 * transaction ("add table; delete table; table {...}"), so the rules in the kernel always equal the
 * lab's list of faults, whatever was there before.
 */

/** Name of the table holding the lab's partitions (bridge namespace) and losses (host namespaces). */
export const FAULT_TABLE = 'mvlab';

/**
 * Partitions are enforced in the bridge namespace, on the bridge's forward hook: a frame from port
 * A to port B is dropped whatever it carries (IPv4, IPv6, ARP, neighbour discovery), including
 * broadcasts and multicasts, because the bridge runs the forward hook once per output port when
 * it floods. That is a cut cable between the two hosts: neither ever sees the other's frames, not
 * even a packet socket sniffing eth0 (a filter inside the host namespace would act after packet
 * sockets had seen the frame, which would let an ARP sniffer "see through" the partition).
 */
export function partitionScript(pairs: Array<[portA: string, portB: string]>): string {
  const lines = [`add table bridge ${FAULT_TABLE}`, `delete table bridge ${FAULT_TABLE}`];
  if (pairs.length) {
    lines.push(`table bridge ${FAULT_TABLE} {`, '  chain forward {', '    type filter hook forward priority 0; policy accept;');
    for (const [a, b] of pairs) {
      lines.push(`    iifname "${a}" oifname "${b}" drop`, `    iifname "${b}" oifname "${a}" drop`);
    }
    lines.push('  }', '}');
  }
  return `${lines.join('\n')}\n`;
}

/** Which packets of a host a loss rule applies to. */
export type LossDirection = 'in' | 'out' | 'both';

export interface LossRule {
  /** Percentage of matching packets dropped, 0–100, up to two decimals. */
  percent: number;
  /** An nft match expression such as 'udp dport 7946'; empty for every IP packet. */
  match: string;
  direction: LossDirection;
}

/**
 * Random loss inside a host namespace (`inet` family: IPv4 and IPv6, not ARP), on the input and/or
 * output hook. `numgen random mod 10000 < percent*100` drops that share of the matching packets
 * (100 % is a plain drop).
 */
export function lossScript(rules: LossRule[]): string {
  const lines = [`add table inet ${FAULT_TABLE}`, `delete table inet ${FAULT_TABLE}`];
  if (rules.length) {
    lines.push(`table inet ${FAULT_TABLE} {`);
    for (const hook of ['input', 'output'] as const) {
      lines.push(`  chain ${hook} {`, `    type filter hook ${hook} priority 0; policy accept;`);
      for (const rule of rules) {
        if (rule.direction === 'both' || (rule.direction === 'in') === (hook === 'input')) {
          const threshold = Math.round(rule.percent * 100);
          // numgen's value range is 0..9999, so 100 % is written as a plain drop.
          const random = threshold >= 10000 ? '' : `numgen random mod 10000 < ${threshold} `;
          lines.push(`    ${rule.match ? `${rule.match} ` : ''}${random}drop`);
        }
      }
      lines.push('  }');
    }
    lines.push('}');
  }
  return `${lines.join('\n')}\n`;
}

/** Rejects match expressions that could break out of the one rule they are meant to be. */
export function checkMatch(match: string): void {
  if (/[;{}\n\r#]/.test(match)) {
    throw new TypeError(`loss: match ${JSON.stringify(match)} must be one nft match expression such as "udp dport 7946" (no ; { } # or newlines)`);
  }
}
