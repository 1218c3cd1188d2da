/**
 * The pure core of mta-vip: config validation, declarations, the election and
 * the plan of address changes. No I/O: time, the host's interfaces and the
 * cluster view come in as arguments.
 */
export * from './ip';
export * from './config';
export * from './declaration';
export * from './view';
export * from './claim';
export { fnv1a, rendezvousScore } from './hash';
export { elect, nextWakeup, vipState } from './elect';
export type { Assignment, ElectOptions, Evidence, Rule, VipFlags, VipOutcome } from './elect';
export * from './plan';
export * from './explain';
