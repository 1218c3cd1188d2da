// An SMTP listener on one address, started and stopped by the cluster runtime.
//
// smtp-server cannot be reused after close(): re-listened, it answers 421 to every
// command. So every start() builds a fresh SMTPServer from the options (or the
// factory) and stop() throws it away. Built from options, servers share their TLS
// contexts (shared-tls-server.ts): building those is most of a server's cost.

import EventEmitter from 'eventemitter3';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { formatHostPort } from '../core/ip';
import type { VipService } from './types';
import { buildSmtpServer } from './shared-tls-server';
import { ErrorCodes } from '../errors';

/** Builds a fresh, not yet listening SMTPServer. Called once per start(). */
export type SmtpServerFactory = () => SMTPServer;

export interface SmtpListenerOptions {
  /**
   * How long stop() lets sessions in flight finish before it closes them
   * (smtp-server's `closeTimeout`). Default: the server options' closeTimeout, else 30000.
   */
  drainMs?: number;
  /**
   * On stop, end sessions that are not in the middle of DATA at once (421) instead of
   * waiting for them up to drainMs (default true). An idle pooled client would
   * otherwise hold the VIP, and so the failover, for the whole drain time.
   */
  closeIdleSessions?: boolean;
}

/** An error from listen(), with the errno code and a message naming cause and fix. */
export interface ListenError extends Error {
  code: 'EADDRINUSE' | 'EADDRNOTAVAIL' | 'EACCES' | string;
  address: string;
  port: number;
}

export interface SmtpListenerEvents {
  /** Every server and per-connection error of the current SMTPServer. */
  error: [err: Error];
  listening: [address: { address: string; port: number }];
  /** The server closed after stop(). */
  close: [];
}

type ListenerState = 'stopped' | 'starting' | 'listening' | 'stopping';

/**
 * An SMTP listener on `ip:port` that implements VipService. The same class serves
 * failover listeners (started on every acquisition) and plain ones (started once).
 */
export class SmtpListener extends EventEmitter<SmtpListenerEvents> implements VipService {
  readonly ip: string;
  readonly description: string;
  readonly drainMs: number;
  private readonly closeIdleSessions: boolean;
  private readonly requestedPort: number;
  private readonly makeServer: SmtpServerFactory;
  private server: SMTPServer | null = null;
  private boundPort: number | null = null;
  private current: ListenerState = 'stopped';
  // start() and stop() run one after another, in call order, so a stop() issued
  // while start() is still binding waits for it instead of racing it.
  private queue: Promise<unknown> = Promise.resolve();
  private startsTotal = 0;

  /**
   * @param ip address to listen on (a VIP, or any local address for a plain listener)
   * @param port port to listen on; 0 picks a free one (see `port` once started)
   * @param server smtp-server options, or a factory returning a new SMTPServer each call
   */
  constructor(ip: string, port: number, server: SMTPServerOptions | SmtpServerFactory, options: SmtpListenerOptions = {}) {
    super();
    this.ip = ip;
    this.requestedPort = port;
    this.makeServer = typeof server === 'function' ? server : () => buildSmtpServer(server);
    const optionsTimeout = typeof server === 'function' ? undefined : server.closeTimeout;
    this.drainMs = options.drainMs ?? optionsTimeout ?? 30000;
    this.closeIdleSessions = options.closeIdleSessions ?? true;
    this.description = `smtp ${formatHostPort(ip, port)}`;
  }

  /** Current lifecycle state. */
  get state(): ListenerState {
    return this.current;
  }

  /** The port actually bound while listening, else the configured one. */
  get port(): number {
    return this.boundPort ?? this.requestedPort;
  }

  /** Open SMTP sessions on the current server (0 when stopped). */
  get sessions(): number {
    return this.server?.connections.size ?? 0;
  }

  /** For status: state, address and open sessions. */
  status(): { description: string; ip: string; port: number; state: ListenerState; sessions: number; starts: number } {
    return {
      description: this.description,
      ip: this.ip,
      port: this.port,
      state: this.current,
      sessions: this.sessions,
      starts: this.startsTotal,
    };
  }

  /** Starts a fresh SMTPServer on ip:port; resolves once listening (no-op if already listening). */
  start(): Promise<void> {
    return this.serialize(() => this.doStart());
  }

  /**
   * Stops accepting, lets sessions in flight finish for up to `drainMs` (new commands
   * get 421), then closes what is left. Resolves once the server is closed.
   */
  stop(): Promise<void> {
    return this.serialize(() => this.doStop());
  }

  private serialize(task: () => Promise<void>): Promise<void> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async doStart(): Promise<void> {
    if (this.current === 'listening') return;
    this.current = 'starting';
    const server = this.makeServer();
    // The listener owns the drain policy, whatever the factory configured.
    server.options.closeTimeout = this.drainMs;
    // Without an 'error' listener a single bad client would crash the process.
    server.on('error', (err: Error) => this.emit('error', err));
    try {
      await new Promise<void>((resolve, reject) => {
        const onError = (err: NodeJS.ErrnoException): void => {
          server.server.off('listening', onListening);
          reject(describeListenError(err, this.ip, this.requestedPort));
        };
        const onListening = (): void => {
          server.server.off('error', onError);
          resolve();
        };
        server.server.once('error', onError);
        server.server.once('listening', onListening);
        server.listen(this.requestedPort, this.ip);
      });
    } catch (err) {
      this.current = 'stopped';
      server.server.close();
      throw err;
    }
    const address = server.server.address();
    this.boundPort = address && typeof address === 'object' ? address.port : this.requestedPort;
    this.server = server;
    this.current = 'listening';
    this.startsTotal++;
    this.emit('listening', { address: this.ip, port: this.boundPort });
  }

  private async doStop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.current = 'stopping';
    await new Promise<void>((resolve) => {
      let sweeper: NodeJS.Timeout | undefined;
      server.close(() => {
        clearInterval(sweeper);
        resolve();
      });
      if (this.closeIdleSessions) {
        closeIdle(server);
        // A session that finishes its DATA becomes idle: end it too, rather than
        // waiting for its client to send another command.
        sweeper = setInterval(() => closeIdle(server), IDLE_SWEEP_MS);
        sweeper.unref();
      }
    });
    this.server = null;
    this.boundPort = null;
    this.current = 'stopped';
    this.emit('close');
  }
}

const IDLE_SWEEP_MS = 50;

/**
 * Ends the sessions of a closing server that are not receiving a message. smtp-server
 * keeps `_dataStream` set from DATA until the onData callback ran; a connection
 * without that field (another smtp-server version) is left to the drain timeout,
 * never cut mid-message.
 */
function closeIdle(server: SMTPServer): void {
  for (const connection of server.connections) {
    const state = connection as unknown as { _dataStream?: unknown };
    if (!('_dataStream' in state) || state._dataStream) continue;
    connection.send(421, 'Server shutting down, try another MX or later');
    connection.close();
  }
}

/** Turns a listen() errno into an error that says what is wrong and how to fix it. */
export function describeListenError(err: NodeJS.ErrnoException, ip: string, port: number): ListenError {
  const where = formatHostPort(ip, port);
  let message: string;
  switch (err.code) {
    case 'EADDRNOTAVAIL':
      message =
        `cannot listen on ${where}: address ${ip} is not on this host (EADDRNOTAVAIL). ` +
        'A failover listener starts only once its VIP has been added; for a plain listener add the address ' +
        'to an interface, or set net.ipv4.ip_nonlocal_bind=1 (net.ipv6.ip_nonlocal_bind=1) to listen before it arrives';
      break;
    case 'EADDRINUSE':
      message = `cannot listen on ${where}: the port is already in use (EADDRINUSE); stop the other listener on it or choose another port`;
      break;
    case 'EACCES':
      message =
        `cannot listen on ${where}: permission denied (EACCES); ports below 1024 need CAP_NET_BIND_SERVICE: ` +
        'run with AmbientCapabilities=CAP_NET_BIND_SERVICE (systemd), `setcap cap_net_bind_service=+ep "$(command -v node)"`, ' +
        'or lower net.ipv4.ip_unprivileged_port_start';
      break;
    default:
      message = `cannot listen on ${where}: ${err.message}`;
  }
  const out = new Error(message, { cause: err }) as ListenError;
  out.code = err.code ?? ErrorCodes.LISTEN;
  out.address = ip;
  out.port = port;
  return out;
}
