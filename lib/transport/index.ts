/** Membership transport: authenticated UDP heartbeats, peer table, failure detection. */
export { Membership } from './membership';
export type { MembershipOptions, MembershipEvents, LocalState, PeerState } from './membership';
export { PacketAuthenticator, MIN_SECRET_BYTES, MAC_BYTES } from './auth';
export { Counters, DROP_REASONS } from './counters';
export type { DropReason } from './counters';
export {
  PROTOCOL_VERSION,
  MAX_PACKET_BYTES,
  MAX_DECLARED_VIPS,
  CHUNK_DATA_BYTES,
  PacketType,
  DocumentKind,
} from './codec';
export { newIncarnation } from './incarnation';
export { parseEndpoint } from './address';
export { MAX_MOVES, MAX_MOVE_SEQ } from './documents';
export type { Move } from './documents';
export type { Endpoint } from './address';
