// A loopback SMTP next hop that hands each message to the node holding a binding.
//
// An MTA worker that must deliver from a binding held by another node cannot
// send from its IP (it is not on this host). Instead the plugin points that
// delivery's next hop at this gateway: a small smtp-server on 127.0.0.1 (an
// ephemeral port), which relays every message it receives to the holder's
// relay listener over the authenticated node-to-node relay and answers the
// MTA with the holder's verdict. The MTA keeps its own queue, retries and
// bounces: a 250 from the gateway means the holder has the message (the MTA
// then drops its copy, accept-then-delete); a 451 makes the MTA retry later;
// a 5xx from the holder bounces.
//
// The binding travels with each delivery, in the EHLO name the MTA introduces
// itself with (gatewayHelo: the binding's name, hex-encoded, under a reserved
// .invalid suffix), and the gateway relays a message for the binding its
// client's EHLO names — never for the binding a port was opened for. A port
// cannot be trusted to mean one binding: under Node's cluster module (Haraka's
// `nodes=N`) the n-th listen(0) of every worker is one shared port whose
// connections the master hands out round robin, so worker A's port for one
// binding was worker B's for another, and mail left from the wrong IP. The
// server also listens `exclusive`, so each process has its own port anyway.
//
// Only this host can reach the gateway; it adds nothing a local client of the
// MTA could not do.

import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import { findMessageId } from '../mta/bindings';
import type { RelayClient } from '../mta/relay-client';
import { waitForHolder, type BindingView } from './binding-view';

const HELO_SUFFIX = '.mta-vip-gateway.invalid';
const LABEL_HEX = 62;

/** The EHLO name an MTA must use towards the gateway for mail of `binding`. */
export function gatewayHelo(binding: string): string {
  const hex = Buffer.from(binding, 'utf8').toString('hex');
  if (hex.length === 0 || hex.length > 3 * LABEL_HEX) {
    throw new RangeError(`binding name ${JSON.stringify(binding)} must be 1 to ${(3 * LABEL_HEX) / 2} bytes to be relayed through the gateway`);
  }
  const labels: string[] = [];
  for (let i = 0; i < hex.length; i += LABEL_HEX) labels.push(`b${hex.slice(i, i + LABEL_HEX)}`);
  return `${labels.join('.')}${HELO_SUFFIX}`;
}

/** The binding an EHLO name of gatewayHelo() names, or null for any other name. */
export function bindingOfHelo(helo: string | undefined): string | null {
  const name = (helo ?? '').toLowerCase();
  if (!name.endsWith(HELO_SUFFIX)) return null;
  const labels = name.slice(0, -HELO_SUFFIX.length).split('.');
  if (!labels.every((label) => /^b(?:[0-9a-f]{2})+$/.test(label) && label.length <= LABEL_HEX + 1)) return null;
  return Buffer.from(labels.map((label) => label.slice(1)).join(''), 'hex').toString('utf8');
}

export interface RelayGatewayOptions {
  view: BindingView;
  client: RelayClient;
  /** Loopback address to listen on (default 127.0.0.1). */
  host?: string;
  /** Errors of the gateway's servers (a client dropping the connection, ...). */
  onError?: (error: Error) => void;
  /** Called after each relay attempt, for the MTA's log. */
  onRelay?: (event: { binding: string; holder: string | null; ok: boolean; response: string }) => void;
  /** How long a message waits for a holder and is retried before the MTA gets 451; default 10,000 ms. */
  retryMs?: number;
}

const DEFAULT_RETRY_MS = 10_000;

/** Where an MTA delivers mail of one binding held elsewhere, and the EHLO name it must use there. */
export interface GatewayEndpoint {
  host: string;
  port: number;
  helo: string;
}

export class RelayGateway {
  private readonly options: RelayGatewayOptions;
  private server: Promise<{ server: SMTPServer; port: number }> | null = null;
  private closed = false;

  constructor(options: RelayGatewayOptions) {
    this.options = options;
  }

  /** The loopback next hop for mail of `binding` (the server starts on first use). */
  async endpoint(binding: string): Promise<GatewayEndpoint> {
    if (this.closed) throw new Error('relay gateway is closed');
    const helo = gatewayHelo(binding);
    if (!this.server) {
      const starting = this.listen();
      this.server = starting;
      starting.catch(() => {
        if (this.server === starting) this.server = null;
      });
    }
    const { port } = await this.server;
    return { host: this.options.host ?? '127.0.0.1', port, helo };
  }

  /** Closes the gateway server and the relay client. */
  async close(): Promise<void> {
    this.closed = true;
    this.options.client.close();
    const entry = this.server;
    this.server = null;
    if (entry) await new Promise<void>((resolve) => void entry.then(({ server }) => server.close(() => resolve()), () => resolve()));
  }

  private listen(): Promise<{ server: SMTPServer; port: number }> {
    const server = new SMTPServer({
      disableReverseLookup: true,
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      hideSTARTTLS: true,
      logger: false,
      banner: 'mta-vip relay gateway',
      size: 100 * 1024 * 1024,
      onMailFrom: (_address, session, callback) => {
        // Refused before any data: an MTA that does not name the binding in its EHLO
        // (a misconfiguration) gets a temporary error and keeps the message.
        if (bindingOfHelo(session.hostNameAppearsAs) === null) {
          return callback(smtpError(451, `4.7.0 EHLO ${session.hostNameAppearsAs || '(none)'} names no binding; the gateway relays for the binding the EHLO name gives (${gatewayHelo('example')} for binding "example")`));
        }
        callback();
      },
      onData: (stream, session, callback) => {
        const binding = bindingOfHelo(session.hostNameAppearsAs) as string;
        this.relay(binding, stream, session).then(
          (response) => callback(null, response),
          (error: Error) => callback(error),
        );
      },
    });
    server.on('error', (error: Error) => this.options.onError?.(error));
    return new Promise((resolve, reject) => {
      server.server.once('error', reject);
      // exclusive: this process's own port, never one shared by a cluster master with other workers.
      server.server.listen({ port: 0, host: this.options.host ?? '127.0.0.1', exclusive: true }, () => {
        server.server.off('error', reject);
        const address = server.server.address();
        resolve({ server, port: address && typeof address === 'object' ? address.port : 0 });
      });
    });
  }

  /**
   * Relays to the binding's holder. A binding between holders, or a holder
   * that just died or is draining, is waited out and tried again (up to
   * retryMs): answering 451 would make the MTA retry only on its own schedule
   * (Haraka 64 s, ZoneMTA 5 min). A retry after a relay that failed late is
   * safe: the holder de-duplicates by Message-ID and envelope.
   */
  private async relay(binding: string, stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const mailFrom = session.envelope.mailFrom;
    const message = { envelope: { from: mailFrom ? mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address) }, raw, messageId: findMessageId(raw) };
    const deadline = Date.now() + (this.options.retryMs ?? DEFAULT_RETRY_MS);
    for (let attempt = 1; ; attempt++) {
      const info = await waitForHolder(this.options.view, binding, Math.max(0, deadline - Date.now()));
      const holder = info?.holder ?? null;
      const peer = holder ? this.options.view.clusterAddress(holder) : undefined;
      if (!info || !holder || !peer) {
        const text = `4.4.0 Binding ${binding} has no reachable holder right now (holder ${holder ?? 'nobody'}), try again later`;
        this.options.onRelay?.({ binding, holder, ok: false, response: text });
        throw smtpError(451, text);
      }
      try {
        const { response } = await this.options.client.relay({ node: holder, ...peer }, binding, message);
        this.options.onRelay?.({ binding, holder, ok: true, response: attempt > 1 ? `${response} (attempt ${attempt})` : response });
        return `2.0.0 Relayed to ${holder}: ${response.replace(/^250[ -]/, '')}`;
      } catch (error) {
        const e = error as { responseCode?: number; response?: string; message?: string };
        const permanent = typeof e.responseCode === 'number' && e.responseCode >= 500;
        const text = (e.response ?? e.message ?? String(error)).replace(/[\r\n]+/g, ' ');
        this.options.onRelay?.({ binding, holder, ok: false, response: text });
        if (permanent) throw smtpError(e.responseCode as number, `5.0.0 Relay of binding ${binding} to ${holder} failed: ${text}`);
        if (Date.now() >= deadline) throw smtpError(451, `4.4.1 Relay of binding ${binding} to ${holder} failed: ${text}`);
        await new Promise((resolve) => setTimeout(resolve, Math.min(100 * attempt, 500)));
      }
    }
  }
}

function smtpError(code: number, message: string): Error & { responseCode: number } {
  const error = new Error(message) as Error & { responseCode: number };
  error.responseCode = code;
  return error;
}
