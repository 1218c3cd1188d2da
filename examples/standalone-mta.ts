/**
 * A small MTA on an mta-vip cluster: it takes mail on the listener VIP(s) and
 * hands every message to a smarthost from the source IP of the message's
 * binding, from whichever node holds that binding.
 *
 *   node dist/examples/standalone-mta.js /etc/mta-vip/n1.json
 *   (or MTA_VIP_CONFIG=/etc/mta-vip/n1.json node dist/examples/standalone-mta.js)
 *
 * The config file is JSON: `{ "cluster": <ClusterConfig>, "mta": <MtaConfig> }`
 * (see examples/README.md for a full one).
 *
 * No disk queue. A message is answered 250 only once it has been handed on:
 * accepted by the smarthost (when the binding is held here) or by the node
 * that holds the binding (relay). Anything else is answered 4xx, so the client
 * keeps its copy and retries: a crash of this process can lose no accepted
 * message. A client's retry of a message this node already handed on (its
 * first attempt went through another node, which relayed it here and died
 * before answering the client) is acknowledged without sending it again,
 * by binding + Message-ID + envelope. What remains is the window of every SMTP
 * hop without a shared queue (RFC 1047): a node that dies after the next hop
 * said 250 and before the client heard ours makes the client send it again.
 *
 * SIGTERM or SIGINT: graceful shutdown (the VIPs are released at once, so the
 * other nodes take over without waiting for the failure detector), then exit.
 * Every event is one JSON line on stdout.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { SMTPServerDataStream, SMTPServerOptions, SMTPServerSession } from 'smtp-server';
// Inside this repository; an application writes require('mta-vip') instead.
import { createCluster, type ClusterConfig } from '../lib';
import { findMessageId, RelayDedupe, relayKey, type RawMessage, type RelayedMessage } from '../lib/mta';

/** The MTA part of the config file. */
export interface MtaConfig {
  /**
   * Addresses the SMTP server listens on ('ip:port', '[v6]:port'). A listener
   * VIP of the cluster config runs where that VIP is held; any other address
   * (e.g. the node's own) is a plain listener. Default: the cluster's listeners.
   */
  listen?: string[];
  /** Next hop for every message: the smarthost (or the recipients' MX). */
  smarthost: { host: string; port: number };
  /**
   * Recipient domain → binding name. '*' is the default. A message goes out
   * from one binding, so recipients of different bindings are deferred with
   * 452 and the client sends them in another transaction (RFC 5321 4.5.3.1.10).
   */
  routes: Record<string, string>;
  /** Name in the greeting and Received headers; default the cluster node name. */
  hostname?: string;
  /** How long a release lets SMTP sessions in flight finish; default 5000 ms. */
  drainMs?: number;
  /** Largest message accepted, bytes; default 25 MiB. */
  maxMessageBytes?: number;
}

interface ConfigFile {
  cluster: ClusterConfig;
  mta: MtaConfig;
}

/** One JSON line per event, with time and node: easy to read and to grep or jq. */
function log(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ t: new Date().toISOString(), node: nodeName, event, ...fields })}\n`);
}

let nodeName = '?';

function readConfig(): ConfigFile {
  const file = process.argv[2] ?? process.env.MTA_VIP_CONFIG;
  if (!file) {
    process.stderr.write('usage: standalone-mta.js CONFIG.json (or MTA_VIP_CONFIG=CONFIG.json)\n');
    process.exit(64);
  }
  const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<ConfigFile>;
  if (!parsed.cluster || !parsed.mta) throw new Error(`${file}: expected { "cluster": {...}, "mta": {...} }`);
  if (!parsed.mta.smarthost || !parsed.mta.routes) throw new Error(`${file}: mta.smarthost and mta.routes are required`);
  return parsed as ConfigFile;
}

/** The binding for one recipient address by its domain ('*' as the fallback), or undefined. */
export function routeOf(routes: Record<string, string>, address: string): string | undefined {
  const domain = address.slice(address.lastIndexOf('@') + 1).toLowerCase();
  return routes[domain] ?? routes['*'];
}

/** An error smtp-server answers with `code` and `text`. */
function reply(code: number, text: string): Error & { responseCode: number } {
  const error = new Error(text.replace(/[\r\n]+/g, ' ')) as Error & { responseCode: number };
  error.responseCode = code;
  return error;
}

/**
 * The answer to the client when handing on failed: 5xx only when the error
 * says retrying cannot help, otherwise 451. The text names the error class
 * (BindingBrokenError, RelayError...) so the sender's log tells the operator why.
 */
function replyFor(error: unknown): Error & { responseCode: number } {
  const e = error as { name?: string; message?: string; responseCode?: unknown; retryable?: unknown };
  const upstream = typeof e.responseCode === 'number' ? e.responseCode : undefined;
  const permanent = e.retryable !== true && upstream !== undefined && upstream >= 500 && upstream < 600;
  const text = `${e.name ?? 'Error'}: ${e.message ?? String(error)}`;
  return permanent ? reply(upstream, `5.0.0 ${text}`) : reply(451, `4.3.0 ${text}`);
}

function main(): void {
  const { cluster: clusterConfig, mta } = readConfig();
  // Messages handed on from here (from our clients or relayed by peers), so a
  // retry of one of them is answered 250 without a second copy.
  const handedOn = new RelayDedupe({ ttlMs: 60 * 60 * 1000 });
  /** Hands `message` on from `binding` at most once; 'duplicate' when it already was. */
  const handOn = async (binding: string, message: RawMessage): Promise<{ via: string; holder: string } | 'duplicate'> => {
    const key = relayKey(binding, message);
    const verdict = message.messageId ? handedOn.claim(key) : 'new';
    if (verdict === 'delivered') return 'duplicate';
    if (verdict === 'in-flight') throw Object.assign(new Error('the same message is being handed on right now'), { name: 'InFlightError', retryable: true });
    try {
      const result = await cluster.send(binding, message);
      if (message.messageId) handedOn.done(key);
      return result;
    } catch (error) {
      if (message.messageId) handedOn.failed(key);
      throw error;
    }
  };
  const cluster = createCluster(clusterConfig, {
    // Where every binding sends to, here and when a peer relays a message to us.
    transports: { defaults: { host: mta.smarthost.host, port: mta.smarthost.port, secure: false, ignoreTLS: true, pool: true } },
    // A message a peer relays to us (we hold its binding): sent from here, remembered.
    relay: {
      onRelay: async (message: RelayedMessage) => {
        const result = await handOn(message.binding, message);
        log('relayed-in', { from: message.from, binding: message.binding, messageId: message.messageId, duplicate: result === 'duplicate' });
      },
    },
  });
  nodeName = cluster.node;
  const hostname = mta.hostname ?? cluster.node;
  let sequence = 0;

  const onRcptTo: SMTPServerOptions['onRcptTo'] = (address, session, callback) => {
    const binding = routeOf(mta.routes, address.address);
    if (binding === undefined) return callback(reply(550, `5.1.2 No route for ${address.address}: its domain is not in mta.routes`));
    const first = session.envelope.rcptTo[0];
    if (first && routeOf(mta.routes, first.address) !== binding) {
      return callback(reply(452, `4.5.3 ${address.address} leaves from binding ${binding}, not ${routeOf(mta.routes, first.address)}: send it in another transaction`));
    }
    callback();
  };

  const onData = (stream: SMTPServerDataStream, session: SMTPServerSession, callback: (err?: Error | null, message?: string) => void): void => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      if (stream.sizeExceeded) return callback(reply(552, '5.3.4 Message too big'));
      const to = session.envelope.rcptTo.map((r) => r.address);
      const binding = routeOf(mta.routes, to[0] ?? '') as string;
      const id = `${cluster.node}.${Date.now().toString(36)}.${(sequence++).toString(36)}`;
      const received = `Received: from ${session.hostNameAppearsAs} ([${session.remoteAddress}])\r\n\tby ${hostname} (mta-vip standalone) with ESMTP id ${id};\r\n\t${new Date().toUTCString()}\r\n`;
      const raw = Buffer.concat([Buffer.from(received), ...chunks]);
      const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
      const started = Date.now();
      const messageId = findMessageId(raw);
      handOn(binding, { envelope: { from, to }, raw, ...(messageId ? { messageId } : {}) }).then(
        (result) => {
          const how = result === 'duplicate' ? 'already handed on' : result.via === 'local' ? 'sent' : `relayed to ${result.holder}`;
          log('accepted', { id, client: session.remoteAddress, binding, via: result === 'duplicate' ? 'duplicate' : result.via, holder: result === 'duplicate' ? null : result.holder, messageId, ms: Date.now() - started });
          callback(null, `2.0.0 Accepted by ${cluster.node} (${how}) id=${id}`);
        },
        (error: Error) => {
          const answer = replyFor(error);
          log(answer.responseCode >= 500 ? 'rejected' : 'deferred', { id, client: session.remoteAddress, binding, code: answer.responseCode, error: answer.message, ms: Date.now() - started });
          callback(answer);
        },
      );
    });
  };

  const smtpOptions: SMTPServerOptions = {
    name: hostname,
    banner: `mta-vip standalone ${cluster.node}`,
    // No TLS configured in this example: do not offer STARTTLS with smtp-server's
    // built-in self-signed certificate. Add key/cert here to offer it.
    disabledCommands: ['AUTH', 'STARTTLS'],
    hideSTARTTLS: true,
    authOptional: true,
    disableReverseLookup: true,
    size: mta.maxMessageBytes ?? 25 * 1024 * 1024,
    logger: false,
    onRcptTo,
    onData,
  };
  const addresses = mta.listen ?? (clusterConfig.listeners ?? []).map((l) => (typeof l === 'string' ? l : l.address));
  for (const address of addresses) cluster.listen(address, smtpOptions, { drainMs: mta.drainMs ?? 5000 });

  cluster.on('acquired', (e) => log('acquired', { ...e }));
  cluster.on('released', (e) => log('released', { ...e }));
  cluster.on('state', (e) => log('state', { ip: e.ip, state: e.state, owner: e.owner, rule: e.rule, flags: Object.keys(e.flags), previousOwner: e.previousOwner }));
  cluster.on('conflict', (e) => log('conflict', { ...e }));
  cluster.on('peer-up', (e) => log('peer-up', { ...e }));
  cluster.on('peer-down', (e) => log('peer-down', { ...e }));
  cluster.on('binding', (info) => log('binding', { name: info.name, address: info.address, holder: info.holder, state: info.state, epoch: info.epoch }));
  cluster.on('unhealthy', (e) => log('unhealthy', { ...e }));
  cluster.on('address-restored', (e) => log('address-restored', { ...e }));
  cluster.on('stall', (e) => log('stall', { ...e }));
  cluster.on('error', (e) => log('error', { ip: e.ip, operation: e.operation, error: e.error.message }));

  let closing = false;
  const shutdown = (signal: string): void => {
    if (closing) return;
    closing = true;
    const started = Date.now();
    log('closing', { signal });
    cluster.close().then(
      () => {
        log('closed', { ms: Date.now() - started });
        process.exit(0);
      },
      (error: Error) => {
        log('close-failed', { error: error.message });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  cluster.start().then(
    () => log('started', { listen: addresses, smarthost: `${mta.smarthost.host}:${mta.smarthost.port}`, host: os.hostname() }),
    (error: Error) => {
      log('start-failed', { error: error.message });
      process.exit(3);
    },
  );
}

if (require.main === module) {
  try {
    main();
  } catch (error) {
    log('config-failed', { error: (error as Error).message });
    process.exit(2);
  }
}
