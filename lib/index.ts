/**
 * mta-vip: virtual-IP failover for Node.js mail servers.
 *
 *   const { createCluster, SmtpListener } = require('mta-vip');
 *
 * See README.md for the configuration and the events.
 */
export { createCluster, VipCluster } from './cluster';
export type {
  RuntimeOptions,
  ClusterEvents,
  ClusterStatus,
  VipStatus,
  AcquiredEvent,
  ReleasedEvent,
  StateEvent,
  ConflictEvent,
  ErrorEvent,
} from './cluster';
export { validateConfig, resolveConfig, elect, plan, explain } from './core';
export {
  ErrorCodes,
  ConfigError,
  PluginConfigError,
  BindingError,
  UnknownBindingError,
  BindingBrokenError,
  BindingNotLocalError,
  BindingUnownedError,
  BindingMovedError,
  NoLocalBindingError,
  RelayError,
} from './errors';
export type { ErrorCode } from './errors';
export type { ClusterConfig, ResolvedConfig, ConfigProblem, Assignment, VipOutcome, VipFlags, Evidence, Explanation } from './core';
export { SmtpListener } from './mta';
export * as net from './net';
export { createAdminServer } from './ops/admin';
export type { AdminOptions } from './ops/admin';
export { prometheusText } from './ops/metrics';
