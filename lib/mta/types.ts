// The contract between the cluster runtime (lib/cluster.ts) and the MTA-facing
// building blocks in this folder. The runtime elects owners and moves addresses;
// everything here only reacts to what the runtime tells it.

/**
 * A service that lives on one VIP. On the owning node the runtime calls `start()`
 * after adding and announcing the address, and `stop()` before removing it.
 */
export interface VipService {
  /** The VIP this service binds to. */
  readonly ip: string;
  /** Human-readable, for status and logs (e.g. "smtp 203.0.113.25:25"). */
  readonly description: string;
  /**
   * Starts serving. Rejects on listen failure with an error whose `code` is
   * `EADDRINUSE`, `EADDRNOTAVAIL` or `EACCES` and whose message names the cause and fix.
   */
  start(): Promise<void>;
  /** Stops accepting, drains sessions in flight, resolves once closed. */
  stop(): Promise<void>;
  /**
   * Longest the runtime then waits, after stop(), for this VIP's sessions in
   * any process on the host to end before it resets them and removes the
   * address (see runtime/session-drain.ts). Default 0.
   */
  readonly drainMs?: number;
}

/** How a binding looks from this node. */
export type BindingState = 'owned' | 'standby' | 'unowned' | 'broken';

/** One outbound binding (a named source IP) as the runtime reports it. */
export interface BindingInfo {
  /** Binding name, e.g. "acme". */
  name: string;
  /** The binding's source IP. */
  address: string;
  /** Node currently holding the address, null when nobody does. */
  holder: string | null;
  /** True when this node holds the address. */
  local: boolean;
  state: BindingState;
  /** Holder epoch: strictly increases with every change of holder. */
  epoch: number;
  /** Pool the binding belongs to, for `pick(group)`. */
  group?: string;
  /** Relative weight inside its group for weighted picks (default 1). */
  weight?: number;
}

/** Listener for directory changes: the new info and what it was before (undefined when new). */
export type BindingListener = (info: BindingInfo, previous: BindingInfo | undefined) => void;

/**
 * Where bindings are and where every node's relay listener is. Implemented by the
 * cluster runtime; an EventEmitter-like source of 'binding' events.
 */
export interface BindingDirectory {
  binding(name: string): BindingInfo | undefined;
  bindings(): BindingInfo[];
  /** Where `node`'s relay listener is (its cluster address, never a VIP). */
  clusterAddress(node: string): { host: string; port: number } | undefined;
  on(event: 'binding', listener: BindingListener): unknown;
  off(event: 'binding', listener: BindingListener): unknown;
  /** This node's name. */
  readonly node: string;
}

/** A message already compiled to bytes, with its SMTP envelope. */
export interface RawMessage {
  envelope: { from: string; to: string[] };
  raw: Buffer;
  /** Message-ID header value, if the message has one (used for de-duplication). */
  messageId?: string;
}

/** What a relay receiver hands to the MTA's delivery hook. */
export interface RelayedMessage extends RawMessage {
  /** Binding the message must leave from; held by this node when the hook runs. */
  binding: string;
  /** Node that relayed the message to us (the authenticated relay user). */
  from: string;
}
