/**
 * Fixture run in a server namespace by bench/failover for the peer systems
 * (keepalived, ucarp): a plain smtp-server that runs all the time, whoever
 * holds the VIP, like an MTA next to a VRRP daemon.
 *   node smtp-peer.js '{"node":"n1","port":2525}'
 *
 * Bound to 0.0.0.0: it answers on the VIP whenever the kernel of this
 * namespace has the VIP, and needs no ip_nonlocal_bind. Banner "peer <node>"
 * (the prober reads the last word). Sends { type: 'ready' } once listening.
 */
import { SMTPServer } from 'smtp-server';

const { node, port } = JSON.parse(process.argv[2] ?? '{}') as { node: string; port: number };

const server = new SMTPServer({
  banner: `peer ${node}`,
  disableReverseLookup: true,
  authOptional: true,
  onData(stream, _session, callback) {
    stream.resume();
    stream.on('end', () => callback());
  },
});
// Clients that hang up right after the banner are the normal case here.
server.on('error', () => undefined);
server.listen(port, '0.0.0.0', () => {
  if (process.connected) process.send?.({ type: 'ready', node });
});
process.on('SIGTERM', () => process.exit(0));
