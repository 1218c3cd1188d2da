// MTA-facing building blocks: listeners on VIPs, outbound bindings, and the
// node-to-node relay. The cluster runtime wires them to elections.

export type { VipService, BindingState, BindingInfo, BindingDirectory, BindingListener, RawMessage, RelayedMessage } from './types';
export { SmtpListener, describeListenError } from './listener';
export type { SmtpListenerOptions, SmtpServerFactory, ListenError, SmtpListenerEvents } from './listener';
export { BindingTransports, compileMessage, findMessageId } from './bindings';
export type { BindingTransportsOptions, BindingSettings, SendResult } from './bindings';
export { BindingTransport } from './binding-transport';
export type { BindingTransportOptions } from './binding-transport';
// The binding errors: lib/errors.ts (exported from the package's index).
export { pickBinding, seededRandom } from './pick';
export type { PickStrategy, RandomSource } from './pick';
export { deriveRelayKey, relayPassword, relayCredentials, checkRelayPassword } from './relay-auth';
export { addBindingHeader, takeBindingHeader } from './relay-header';
export { RelayDedupe, relayKey } from './dedupe';
export type { RelayDedupeOptions, DedupeVerdict } from './dedupe';
export { RelayServer } from './relay-server';
export type { RelayServerOptions, RelayServerEvents } from './relay-server';
export { RelayClient } from './relay-client';
export type { RelayClientOptions, RelayPeer } from './relay-client';
