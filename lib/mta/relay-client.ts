// The sending side of the node-to-node relay: hands a message to the node that
// holds its binding, over an authenticated SMTP session on the cluster network.
// One pooled nodemailer transport per peer, so relays reuse sessions instead of
// paying a connect and smtp-server's ~100 ms greeting delay per message.

import nodemailer, { type SMTPPoolOptions, type SMTPPoolSentMessageInfo, type Transporter } from 'nodemailer';
import type { ConnectionOptions } from 'node:tls';
import { addBindingHeader } from './relay-header';
import { deriveRelayKey, relayCredentials } from './relay-auth';
import type { RawMessage } from './types';

export interface RelayClientOptions {
  /** This node's name: the SMTP AUTH user. */
  node: string;
  /** The cluster secret the relay password is derived from. */
  secret: string | Buffer;
  /**
   * TLS towards peers: when set, STARTTLS is required and the peer's certificate is
   * checked with these options (e.g. `{ ca: clusterCert, servername: 'relay' }`).
   * Without it the session is plaintext (a private cluster network is assumed).
   */
  tls?: ConnectionOptions;
  /** Connections per peer (default 2). */
  maxConnections?: number;
  /** Socket timeouts in ms (default 30000). */
  timeoutMs?: number;
}

/** Where a peer's relay listener is. */
export interface RelayPeer {
  node: string;
  host: string;
  port: number;
}

export class RelayClient {
  readonly node: string;
  private readonly credentials: { user: string; pass: string };
  private readonly options: RelayClientOptions;
  private readonly pools = new Map<string, Transporter<SMTPPoolSentMessageInfo>>();
  private closed = false;

  constructor(options: RelayClientOptions) {
    this.node = options.node;
    this.options = options;
    this.credentials = relayCredentials(deriveRelayKey(options.secret), options.node);
  }

  /**
   * Relays `message` for `binding` to `peer`. Resolves with the peer's final reply
   * once it answered 250 (the message is then the peer's responsibility); rejects
   * with nodemailer's error (`code`, `responseCode`, `response`) otherwise.
   */
  async relay(peer: RelayPeer, binding: string, message: RawMessage): Promise<{ response: string }> {
    if (this.closed) throw new Error('relay client is closed');
    const info = await this.pool(peer).sendMail({
      envelope: { from: message.envelope.from, to: message.envelope.to },
      raw: addBindingHeader(message.raw, binding),
    });
    return { response: info.response ?? '' };
  }

  /** Closes every peer pool. */
  close(): void {
    this.closed = true;
    for (const pool of this.pools.values()) pool.close();
    this.pools.clear();
  }

  private pool(peer: RelayPeer): Transporter<SMTPPoolSentMessageInfo> {
    const key = `${peer.node}\0${peer.host}\0${peer.port}`;
    let pool = this.pools.get(key);
    if (!pool) {
      const timeout = this.options.timeoutMs ?? 30000;
      const options: SMTPPoolOptions & { pool: true } = {
        pool: true,
        host: peer.host,
        port: peer.port,
        secure: false,
        maxConnections: this.options.maxConnections ?? 2,
        auth: this.credentials,
        name: this.node,
        connectionTimeout: timeout,
        greetingTimeout: timeout,
        socketTimeout: timeout,
      };
      if (this.options.tls) {
        options.requireTLS = true;
        options.tls = this.options.tls;
      } else {
        options.ignoreTLS = true;
      }
      pool = nodemailer.createTransport(options);
      this.pools.set(key, pool);
    }
    return pool;
  }
}
