// A loopback SMTP next hop that hands each message to the node holding a binding.
//
// An MTA worker that must deliver from a binding held by another node cannot
// send from its IP (it is not on this host). Instead the plugin points that
// delivery's next hop at this gateway: one small smtp-server per binding on
// 127.0.0.1 (an ephemeral port), which relays every message it receives to the
// holder's relay listener over the authenticated node-to-node relay and answers
// the MTA with the holder's verdict. The MTA keeps its own queue, retries and
// bounces: a 250 from the gateway means the holder has the message (the MTA
// then drops its copy, accept-then-delete); a 451 makes the MTA retry later;
// a 5xx from the holder bounces.
//
// Only this host can reach the gateway, and it only relays to the binding it
// was opened for; it adds nothing a local client of the MTA could not do.

import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import { findMessageId } from '../mta/bindings';
import type { RelayClient } from '../mta/relay-client';
import type { BindingView } from './binding-view';

export interface RelayGatewayOptions {
  view: BindingView;
  client: RelayClient;
  /** Loopback address to listen on (default 127.0.0.1). */
  host?: string;
  /** Errors of the gateway's servers (a client dropping the connection, ...). */
  onError?: (error: Error) => void;
  /** Called after each relay attempt, for the MTA's log. */
  onRelay?: (event: { binding: string; holder: string | null; ok: boolean; response: string }) => void;
}

export class RelayGateway {
  private readonly options: RelayGatewayOptions;
  private readonly servers = new Map<string, Promise<{ server: SMTPServer; port: number }>>();
  private closed = false;

  constructor(options: RelayGatewayOptions) {
    this.options = options;
  }

  /** The loopback host and port that relays to the holder of `binding` (started on first use). */
  async endpoint(binding: string): Promise<{ host: string; port: number }> {
    if (this.closed) throw new Error('relay gateway is closed');
    let entry = this.servers.get(binding);
    if (!entry) {
      entry = this.listen(binding);
      this.servers.set(binding, entry);
      entry.catch(() => this.servers.delete(binding));
    }
    const { port } = await entry;
    return { host: this.options.host ?? '127.0.0.1', port };
  }

  /** Closes every gateway server and the relay client. */
  async close(): Promise<void> {
    this.closed = true;
    this.options.client.close();
    const entries = [...this.servers.values()];
    this.servers.clear();
    await Promise.allSettled(entries.map(async (entry) => new Promise<void>((resolve) => void entry.then(({ server }) => server.close(() => resolve()), () => resolve()))));
  }

  private listen(binding: string): Promise<{ server: SMTPServer; port: number }> {
    const server = new SMTPServer({
      disableReverseLookup: true,
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      hideSTARTTLS: true,
      logger: false,
      banner: `mta-vip relay gateway for binding ${binding}`,
      size: 100 * 1024 * 1024,
      onData: (stream, session, callback) => {
        this.relay(binding, stream, session).then(
          (response) => callback(null, response),
          (error: Error) => callback(error),
        );
      },
    });
    server.on('error', (error: Error) => this.options.onError?.(error));
    return new Promise((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(0, this.options.host ?? '127.0.0.1', () => {
        server.server.off('error', reject);
        const address = server.server.address();
        resolve({ server, port: address && typeof address === 'object' ? address.port : 0 });
      });
    });
  }

  private async relay(binding: string, stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const info = this.options.view.binding(binding);
    const holder = info?.holder ?? null;
    const peer = holder ? this.options.view.clusterAddress(holder) : undefined;
    if (!info || !holder || !peer) {
      const text = `4.4.0 Binding ${binding} has no reachable holder right now (holder ${holder ?? 'nobody'}), try again later`;
      this.options.onRelay?.({ binding, holder, ok: false, response: text });
      throw smtpError(451, text);
    }
    const mailFrom = session.envelope.mailFrom;
    try {
      const { response } = await this.options.client.relay(
        { node: holder, ...peer },
        binding,
        { envelope: { from: mailFrom ? mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address) }, raw, messageId: findMessageId(raw) },
      );
      this.options.onRelay?.({ binding, holder, ok: true, response });
      return `2.0.0 Relayed to ${holder}: ${response.replace(/^250[ -]/, '')}`;
    } catch (error) {
      const e = error as { responseCode?: number; response?: string; message?: string };
      const code = typeof e.responseCode === 'number' && e.responseCode >= 500 ? e.responseCode : 451;
      const text = (e.response ?? e.message ?? String(error)).replace(/[\r\n]+/g, ' ');
      this.options.onRelay?.({ binding, holder, ok: false, response: text });
      throw smtpError(code, `${code >= 500 ? '5.0.0' : '4.4.1'} Relay of binding ${binding} to ${holder} failed: ${text}`);
    }
  }
}

function smtpError(code: number, message: string): Error & { responseCode: number } {
  const error = new Error(message) as Error & { responseCode: number };
  error.responseCode = code;
  return error;
}
