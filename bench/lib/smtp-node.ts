/**
 * Fixture run in a server namespace by bench/smtp-overhead: one smtp-server on
 * ip:port, either served by the cluster runtime or plain, with the very same
 * server options, so the only difference between the two is the cluster.
 *   node smtp-node.js '{"mode":"cluster","node":"n1","ip":"198.18.1.1","port":2525,"config":{...}}'
 *   node smtp-node.js '{"mode":"plain","node":"n1","ip":"198.18.1.1","port":2525}'
 *
 * cluster: createCluster(config) with an SmtpListener on the VIP (it listens
 * while this node holds the VIP). plain: new SMTPServer(...).listen(port, ip);
 * the address must already be on the host. Sends { type: 'started' } when
 * running; SIGTERM closes (the cluster gracefully) and exits 0.
 */
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { createCluster, type ClusterConfig } from '../../lib';
import { SmtpListener } from '../../lib/mta';

interface Options {
  mode: 'cluster' | 'plain';
  node: string;
  ip: string;
  port: number;
  config?: ClusterConfig;
}

const options = JSON.parse(process.argv[2] ?? '{}') as Options;
const send = (message: unknown): void => {
  if (process.connected) process.send?.(message);
};

/** The server's work per message: read the whole DATA stream, answer 250. Same in both modes. */
function serverOptions(): SMTPServerOptions {
  return {
    banner: `bench ${options.node}`,
    disableReverseLookup: true,
    authOptional: true,
    onData(stream, _session, callback) {
      stream.resume();
      stream.on('end', () => callback());
    },
  };
}

let close: () => Promise<void>;

async function start(): Promise<void> {
  if (options.mode === 'plain') {
    const server = new SMTPServer(serverOptions());
    server.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(options.port, options.ip, () => resolve());
    });
    close = () => new Promise((resolve) => server.close(() => resolve()));
    return;
  }
  if (!options.config) throw new TypeError('smtp-node: mode cluster needs config');
  const cluster = createCluster(options.config);
  const listener = new SmtpListener(options.ip, options.port, serverOptions());
  listener.on('error', () => undefined);
  cluster.addService(listener);
  cluster.on('error', () => undefined);
  await cluster.start();
  close = () => cluster.close();
}

let closing = false;
process.on('SIGTERM', () => {
  if (closing) return;
  closing = true;
  close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});

start().then(
  () => send({ type: 'started', mode: options.mode, node: options.node }),
  (error: Error) => {
    send({ type: 'start-error', message: error.message });
    process.exit(3);
  },
);
