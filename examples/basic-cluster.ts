/**
 * The smallest useful mta-vip node: one SMTP listener on a VIP that follows
 * whichever node holds it, events logged, graceful shutdown on SIGTERM.
 *
 *   node dist/examples/basic-cluster.js node1.json
 *
 * node1.json (the same on every node but for "node" and "cluster.bind"):
 *   {
 *     "node": "mx1",
 *     "cluster": { "id": "mail", "secret": "at least sixteen bytes of secret", "bind": "198.18.0.11",
 *                  "peers": ["198.18.0.11", "198.18.0.12", "198.18.0.13"] },
 *     "listeners": ["198.18.1.25:25"],
 *     "vips": { "198.18.1.25": { "preferred": "mx1" } },
 *     "topology": [{ "cidr": "198.18.0.0/16", "interface": "eth0" }]
 *   }
 * Needs CAP_NET_ADMIN, CAP_NET_RAW (and CAP_NET_BIND_SERVICE for port 25): see README.
 */
import * as fs from 'node:fs';
import { createCluster, type ClusterConfig } from '../lib';

const file = process.argv[2];
if (!file) {
  console.error('usage: node dist/examples/basic-cluster.js <config.json>');
  process.exit(64);
}
const config = JSON.parse(fs.readFileSync(file, 'utf8')) as ClusterConfig;

// A bad config throws ConfigError listing every problem: the node refuses to start.
const cluster = createCluster(config);

for (const listener of config.listeners ?? []) {
  const address = typeof listener === 'string' ? listener : listener.address;
  cluster.listen(address, {
    disableReverseLookup: true,
    authOptional: true,
    banner: `${cluster.node} via mta-vip`,
    onData(stream, session, callback) {
      stream.resume();
      stream.on('end', () => {
        console.log(`${cluster.node}: message from ${session.envelope.mailFrom && session.envelope.mailFrom.address} accepted on ${session.localAddress}`);
        callback();
      });
    },
  });
}

const log = (what: string) => (event: unknown) => console.log(`${new Date().toISOString()} ${cluster.node} ${what} ${JSON.stringify(event)}`);
cluster.on('acquired', log('acquired'));
cluster.on('released', log('released'));
cluster.on('state', log('state'));
cluster.on('conflict', log('conflict'));
cluster.on('peer-up', log('peer-up'));
cluster.on('peer-down', log('peer-down'));
cluster.on('unhealthy', log('unhealthy'));
cluster.on('error', (event) => console.error(`${cluster.node} error in ${event.operation}${event.ip ? ` (${event.ip})` : ''}: ${event.error.message}`));

// SIGTERM: release everything first, so peers take over at once.
process.once('SIGTERM', () => {
  cluster.close().then(
    () => process.exit(0),
    (error: Error) => {
      console.error(error);
      process.exit(1);
    },
  );
});

cluster.start().then(() => console.log(`${cluster.node} started; status: ${JSON.stringify(cluster.status().vips)}`));
