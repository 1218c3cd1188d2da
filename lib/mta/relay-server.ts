// The receiving side of the node-to-node relay (Momentum's #mmove). Every node
// runs one on its cluster address (never on a VIP). A peer authenticates with its
// node name and the password derived from the cluster secret, then submits a
// message whose first line names the binding it must leave from.
//
// Replies: 250 once the message was handed on (to the MTA's onRelay hook, or sent
// through the binding's transport in the standalone case), or already was (a
// retry); 451 4.4.0 when this node does not hold the binding (the sender then
// follows the new holder); 451 when handing on failed; 535 for bad credentials.

import EventEmitter from 'eventemitter3';
import { SMTPServer, type SMTPServerDataStream, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import type { BindingTransports } from './bindings';
import { findMessageId } from './bindings';
import { BindingMovedError, BindingNotLocalError } from './errors';
import { randomBytes } from 'node:crypto';
import { RelayDedupe, relayKey, relayTraceLine, type RelayDedupeOptions } from './dedupe';
import { checkRelayPassword, deriveRelayKey } from './relay-auth';
import { takeBindingHeader } from './relay-header';
import { SmtpListener } from './listener';
import type { BindingDirectory, RelayedMessage, VipService } from './types';

export interface RelayServerOptions {
  /** Knows which bindings this node holds (and where this node's relay address is). */
  directory: BindingDirectory;
  /** The cluster secret relay passwords are derived from. */
  secret: string | Buffer;
  /**
   * The MTA's delivery hook: resolves once the message is handed on (queued).
   * Without it, the message is sent directly through `transports`.
   */
  onRelay?: (message: RelayedMessage) => Promise<void>;
  /** Sends relayed messages in the standalone case (no onRelay). */
  transports?: BindingTransports;
  /** Listen address; default: the directory's cluster address of this node. */
  host?: string;
  port?: number;
  /** TLS key and certificate: STARTTLS is offered and required before AUTH. Without it, plaintext AUTH is allowed. */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** De-duplication of retried relays. */
  dedupe?: RelayDedupeOptions;
  /** Largest message accepted, bytes (default 50 MiB). */
  maxMessageBytes?: number;
  /** How long stop() lets sessions in flight finish (default 30000 ms). */
  drainMs?: number;
  /** Extra smtp-server options (logger, timeouts...). Handlers and auth settings are ours. */
  smtp?: SMTPServerOptions;
}

export interface RelayServerEvents {
  error: [err: Error];
  /** A relayed message was handed on. */
  relayed: [message: RelayedMessage];
  /** A retry of an already delivered message was acknowledged without delivering it again. */
  duplicate: [info: { binding: string; from: string; messageId: string | undefined }];
  /** A relay was refused with 451 because the binding is not (or no longer) held here. */
  'not-held': [info: { binding: string; from: string; holder: string | null }];
  /** Handing on failed; the sender was told 451 and will retry. */
  'delivery-failed': [info: { binding: string; from: string; error: Error }];
}

/** Node-to-node relay listener. Implements VipService so the runtime can start and stop it. */
export class RelayServer extends EventEmitter<RelayServerEvents> implements VipService {
  readonly ip: string;
  readonly description: string;
  private readonly listener: SmtpListener;
  private readonly options: RelayServerOptions;
  private readonly key: Buffer;
  private readonly dedupe: RelayDedupe;

  constructor(options: RelayServerOptions) {
    super();
    if (!options.onRelay && !options.transports) throw new TypeError('RelayServer needs onRelay or transports to hand relayed messages to');
    this.options = options;
    this.key = deriveRelayKey(options.secret);
    this.dedupe = new RelayDedupe(options.dedupe);
    const own = options.directory.clusterAddress(options.directory.node);
    const host = options.host ?? own?.host;
    const port = options.port ?? own?.port;
    if (host === undefined || port === undefined) throw new TypeError(`no cluster address known for node "${options.directory.node}": pass host and port`);
    this.ip = host;
    this.description = `relay ${host}:${port}`;
    this.listener = new SmtpListener(host, port, () => this.createServer(), { drainMs: options.drainMs ?? 30000 });
    this.listener.on('error', (err) => this.emit('error', err));
  }

  /** The port actually bound while listening. */
  get port(): number {
    return this.listener.port;
  }

  /** Open relay sessions. */
  get sessions(): number {
    return this.listener.sessions;
  }

  start(): Promise<void> {
    return this.listener.start();
  }

  stop(): Promise<void> {
    return this.listener.stop();
  }

  private createServer(): SMTPServer {
    const tls = this.options.tls;
    return new SMTPServer({
      disableReverseLookup: true,
      logger: false,
      ...this.options.smtp,
      size: this.options.maxMessageBytes ?? 50 * 1024 * 1024,
      authMethods: ['PLAIN', 'LOGIN'],
      authOptional: false,
      ...(tls
        ? { key: tls.key, cert: tls.cert, allowInsecureAuth: false }
        : { allowInsecureAuth: true, disabledCommands: ['STARTTLS'], hideSTARTTLS: true }),
      onAuth: (auth, _session, callback) => {
        const user = auth.username ?? '';
        if (user && checkRelayPassword(this.key, user, auth.password ?? '')) return callback(null, { user });
        const err = new Error('Authentication failed: not a node of this cluster') as Error & { responseCode: number };
        err.responseCode = 535;
        return callback(err);
      },
      onData: (stream, session, callback) => {
        this.receive(stream, session).then(
          (reply) => callback(null, reply),
          (err: Error) => callback(err),
        );
      },
    });
  }

  private async receive(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    const from = typeof session.user === 'string' ? session.user : String(session.user ?? '');
    if (stream.sizeExceeded) throw smtpError(552, '5.3.4 Message too big for the relay');
    const framed = takeBindingHeader(Buffer.concat(chunks));
    if (!framed) throw smtpError(554, '5.6.0 Relayed message does not start with its X-MTA-VIP-Binding line');
    const { binding, raw } = framed;
    const info = this.options.directory.binding(binding);
    if (!info || !info.local || info.state !== 'owned') {
      const holder = info?.holder ?? null;
      this.emit('not-held', { binding, from, holder });
      throw smtpError(451, `4.4.0 Binding ${binding} is not held here (holder is ${holder ?? 'nobody'})`);
    }
    const mailFrom = session.envelope.mailFrom;
    const message: RelayedMessage = {
      binding,
      from,
      envelope: { from: mailFrom ? mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address) },
      raw,
      messageId: findMessageId(raw),
    };
    const key = relayKey(binding, message);
    const verdict = this.dedupe.claim(key);
    if (verdict === 'delivered') {
      this.emit('duplicate', { binding, from, messageId: message.messageId });
      return `2.0.0 Already accepted ${message.messageId ?? ''}`.trim();
    }
    if (verdict === 'in-flight') throw smtpError(451, '4.3.0 Same message is being delivered right now, try again shortly');
    try {
      // Into an MTA's queue with a trace line of this hop (RFC 5321 4.4): its unique id
      // is how a copy that goes on from here and comes back is told from a retry.
      if (this.options.onRelay) await this.options.onRelay({ ...message, raw: Buffer.concat([Buffer.from(relayTraceLine(from, this.options.directory.node, randomBytes(12).toString('base64url')), 'latin1'), raw]) });
      else await this.options.transports!.sendLocal(binding, message);
    } catch (err) {
      this.dedupe.failed(key);
      const error = err instanceof Error ? err : new Error(String(err));
      this.emit('delivery-failed', { binding, from, error });
      if (error instanceof BindingMovedError || error instanceof BindingNotLocalError) {
        // The binding left us while sending: the sender must follow the new holder.
        throw smtpError(451, `4.4.0 Binding ${binding} is not held here any more (holder is ${error.holder ?? 'nobody'})`);
      }
      throw smtpError(451, `4.3.0 Relay hand-off failed: ${error.message.replace(/[\r\n]+/g, ' ')}`);
    }
    this.dedupe.done(key);
    this.emit('relayed', message);
    return `2.0.0 Relayed via ${this.options.directory.node} ${message.messageId ?? ''}`.trim();
  }
}

function smtpError(code: number, message: string): Error & { responseCode: number } {
  const err = new Error(message) as Error & { responseCode: number };
  err.responseCode = code;
  return err;
}
