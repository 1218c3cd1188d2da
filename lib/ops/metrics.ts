/**
 * Prometheus text exposition of a cluster's status: one registry, metric names
 * with units, and no label of high cardinality except the VIP.
 */
import type { ClusterStatus } from '../cluster';

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function metricName(counter: string): string {
  const base = `mta_vip_${counter.replace(/[^a-zA-Z0-9_]/g, '_')}`;
  return base.endsWith('_total') || counter.startsWith('peers_') || counter.startsWith('max_') || counter.endsWith('_bytes') ? base : `${base}_total`;
}

/** The status as Prometheus text (format 0.0.4). */
export function prometheusText(status: ClusterStatus): string {
  const lines: string[] = [];
  const node = escapeLabel(status.node);
  const gauge = (name: string, help: string, rows: Array<[string, number]>): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const [labels, value] of rows) lines.push(`${name}{${labels}} ${value}`);
  };
  gauge(
    'mta_vip_vip_owned',
    'VIPs this node holds (1) or not (0).',
    status.vips.map((v) => [`node="${node}",vip="${escapeLabel(v.ip)}"`, v.phase === 'held' ? 1 : 0]),
  );
  gauge(
    'mta_vip_vip_owner_known',
    'VIPs with an elected owner (0 means unowned: nobody serves it).',
    status.vips.map((v) => [`node="${node}",vip="${escapeLabel(v.ip)}"`, v.owner ? 1 : 0]),
  );
  for (const flag of ['conflict', 'unsafe', 'broken'] as const) {
    gauge(
      `mta_vip_vip_${flag}`,
      `VIPs flagged ${flag.toUpperCase()} by the election (see status for the evidence).`,
      status.vips.map((v) => [`node="${node}",vip="${escapeLabel(v.ip)}"`, v.flags[flag] ? 1 : 0]),
    );
  }
  gauge('mta_vip_vip_epoch', 'Epoch of this node\'s claim on the VIP (0 when not held).', status.vips.map((v) => [`node="${node}",vip="${escapeLabel(v.ip)}"`, v.phase === 'idle' ? 0 : v.epoch]));
  gauge('mta_vip_quorum', 'Whether this side of the cluster may hold VIPs.', [[`node="${node}"`, status.quorum ? 1 : 0]]);
  gauge('mta_vip_peers_live_count', 'Peers heard within dead-after.', [[`node="${node}"`, status.peers.filter((p) => p.live).length]]);
  const peerRows = (value: (p: ClusterStatus['peers'][number]) => number): Array<[string, number]> => status.peers.map((p) => [`node="${node}",peer="${escapeLabel(p.node)}"`, value(p)]);
  gauge('mta_vip_peer_loss_ratio', "Share of the peer's heartbeats this node reckons lost on the way (0..1).", peerRows((p) => p.lossPercent / 100));
  gauge('mta_vip_peer_silence_limit_seconds', 'Silence after which the peer is declared dead here: dead-after, stretched under loss.', peerRows((p) => p.silenceLimitMs / 1000));
  for (const [counter, value] of Object.entries(status.counters).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const name = metricName(counter);
    const type = name.endsWith('_total') ? 'counter' : 'gauge';
    lines.push(`# TYPE ${name} ${type}`, `${name}{node="${node}"} ${value}`);
  }
  return `${lines.join('\n')}\n`;
}
