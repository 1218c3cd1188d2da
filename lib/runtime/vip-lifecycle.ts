/**
 * One VIP's lifecycle on this node, as one explicit state and a transition
 * table (in the spirit of keepalived's VRRP state handlers): what the address
 * on our interface is doing, never a combination of flags.
 *
 *   idle ──acquire──▶ probing ──probed──▶ acquiring ──acquired──▶ held ──release──▶ releasing ──released──▶ idle
 *                       │                    │                    │  ▲
 *                       └──acquire-failed──▶ idle ◀──acquire-failed┘  address-lost ▼  │ restored / restore-failed
 *                                                                    restoring ───────┘
 *
 * While probing, nothing is claimed: the VIP is in neither our heartbeats nor the alias
 * reaper's list, so a node whose probe is answered (a holder it cannot hear) never shows a
 * claim that would make that holder yield.
 *
 * A state other than idle and held has exactly one operation in flight; the
 * engine starts nothing else on the VIP until that operation reports back.
 */
export type VipState = 'idle' | 'probing' | 'acquiring' | 'held' | 'releasing' | 'restoring';

export type VipTransition = 'acquire' | 'probed' | 'acquired' | 'acquire-failed' | 'release' | 'released' | 'address-lost' | 'restored' | 'restore-failed';

const TABLE: Readonly<Record<VipState, Partial<Record<VipTransition, VipState>>>> = {
  idle: { acquire: 'probing' },
  probing: { probed: 'acquiring', 'acquire-failed': 'idle' },
  acquiring: { acquired: 'held', 'acquire-failed': 'idle' },
  held: { release: 'releasing', 'address-lost': 'restoring' },
  // A failed restore leaves the VIP held but unhealthy here: the next election releases it.
  restoring: { restored: 'held', 'restore-failed': 'held' },
  releasing: { released: 'idle' },
};

/** The state after `transition`; throws on a transition the table does not have (a bug, never input). */
export function nextState(state: VipState, transition: VipTransition, ip: string): VipState {
  const next = TABLE[state][transition];
  if (next === undefined) throw new Error(`mta-vip engine: ${ip}: no transition '${transition}' from '${state}'`);
  return next;
}

/** True when an operation is in flight on the VIP (nothing new may start on it). */
export function isBusy(state: VipState): boolean {
  return state === 'probing' || state === 'acquiring' || state === 'releasing' || state === 'restoring';
}

/** True when the address is, or may be, on our interface (what peers and the alias reaper are told). */
export function mayHaveAddress(state: VipState): boolean {
  return state !== 'idle' && state !== 'probing';
}
