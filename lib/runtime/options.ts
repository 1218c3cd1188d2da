/**
 * The options of createCluster that are about this process rather than the
 * cluster's config (which every node shares).
 */
import type { ConnectionOptions } from 'node:tls';
import type { BindingTransportOptions } from '../mta/binding-transport';
import type { RelayedMessage } from '../mta/types';
import type { Logger } from './driver';
import type { Clock, NetPort } from './ports';

/** Options that are about this process rather than the cluster's config. */
export interface RuntimeOptions {
  /** Node name default and config validation input; default os.hostname(). */
  hostname?: string;
  /** After a listen or address failure, the VIP is tried again this much later. Default 10,000 ms. */
  retryUnhealthyMs?: number;
  /** How often neighbour tables are read and shared with peers. Default 1,000 ms; 0 disables. */
  shareNeighboursMs?: number;
  /** Most neighbour entries shared. Default 256. */
  maxSharedNeighbours?: number;
  /**
   * Declare a peer dead as soon as its host answers our heartbeat with ICMP
   * port unreachable (its process died, its host lives): one heartbeat instead
   * of dead-after. Default true. ICMP is not authenticated: a host that can
   * forge it can force one false failover per peer boot (see lib/transport).
   */
  fastCrashDetection?: boolean;
  /**
   * Run a tiny child process that removes this node's VIP aliases the moment
   * this process dies without closing (crash, OOM kill, SIGKILL of the process
   * alone), so the dead node's kernel stops answering for them. Default true.
   */
  aliasReaper?: boolean;
  /**
   * The alias reaper is also this node's guardian, outside its event loop: when the node
   * process has not checked in for this long (SIGSTOP, a long GC pause, a blocked loop), the
   * guardian resets the sockets on the node's VIPs and removes them, so a stalled node's kernel
   * no longer answers for VIPs its peers are about to take over. Default deadAfterMs minus one
   * heartbeat: peers declare the node dead after deadAfterMs and acquire after a probe, so the
   * addresses are gone first with one heartbeat to spare. A node that resumes before its peers
   * noticed restores them; one that resumes later rejoins as standby. 0 disables the guard.
   */
  stallToleranceMs?: number;
  /**
   * Longest a live peer whose declaration has not arrived holds up this node's
   * acquisitions: long enough to fetch a 4,096-VIP declaration from a busy
   * peer, short enough that a peer whose declaration never decodes cannot stop
   * a takeover for good. Default 3,000 ms.
   */
  declarationWaitMs?: number;
  /**
   * Node-to-node relay (Momentum's #mmove): an SMTP listener on this node's
   * cluster address that takes messages for bindings held here. On by default
   * when the config has bindings.
   */
  relay?: {
    enabled?: boolean;
    /** TCP port; default the cluster's (UDP) port number, e.g. 7946. */
    port?: number;
    /** The MTA's delivery hook; without it a relayed message is sent through the binding's transport. */
    onRelay?: (message: RelayedMessage) => Promise<void>;
    /** TLS for the relay listener (STARTTLS, required before AUTH). */
    tls?: { key: string | Buffer; cert: string | Buffer };
    /** TLS options towards peers' relay listeners (e.g. { ca }). */
    clientTls?: ConnectionOptions;
  };
  /**
   * Longest a release of a binding's VIP waits for outbound sessions of any
   * process on this host (an MTA's senders included) that are waiting for
   * their peer, before it resets them; idle pooled connections are reset
   * after 1 s. Listener VIPs wait for their services' own drainMs. Default 30,000 ms.
   */
  sessionDrainMs?: number;
  /** Defaults for the nodemailer transports of bindings (pooling, timeouts, EHLO names per binding). */
  transports?: { defaults?: BindingTransportOptions; names?: Record<string, { hostname?: string }> };
  /**
   * Where an 'error' event goes when the application listens to none (a pino-compatible
   * logger; only `error` is called). Default: process.emitWarning.
   */
  logger?: Logger;
  /** The addon and the clock the runtime drives; for tests. Default the real addon and the process clock. */
  ports?: { net?: NetPort; clock?: Clock };
}
