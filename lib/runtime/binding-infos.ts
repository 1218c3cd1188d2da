/**
 * Outbound bindings as the cluster sees them: for each binding a live node
 * declares, its holder, state and epoch. Pure: the engine passes the view,
 * the election and its own held VIPs in.
 */
import type { Assignment, ClusterView, ResolvedBinding } from '../core';
import type { BindingInfo } from '../mta/types';

/** Binding name → info, from every live declaration of the view and the election's flags. */
export function bindingInfos(
  self: string,
  view: ClusterView,
  assignment: Assignment | null,
  heldHere: ReadonlyMap<string, number>,
  settings: readonly ResolvedBinding[],
): Map<string, BindingInfo> {
  const out = new Map<string, BindingInfo>();
  const byName = new Map(settings.map((b) => [b.name, b]));
  for (const n of view.nodes) {
    if (!n.live) continue;
    for (const v of n.declaration.vips) {
      if (!v.binding || (out.has(v.binding) && n.node !== self)) continue;
      const outcome = assignment?.vips.get(v.ip);
      const ownEpoch = heldHere.get(v.ip);
      const local = ownEpoch !== undefined;
      let holder: string | null = local ? self : null;
      let epoch = ownEpoch ?? 0;
      if (!local) {
        for (const m of view.nodes) {
          const e = m.node !== self && m.live ? m.holding.get(v.ip) : undefined;
          if (e !== undefined && e >= epoch) {
            holder = m.node;
            epoch = e;
          }
        }
      }
      const broken = outcome?.flags.broken !== undefined;
      const setting = byName.get(v.binding);
      out.set(v.binding, {
        name: v.binding,
        address: v.ip,
        holder: broken ? null : holder,
        local: local && !broken,
        state: broken ? 'broken' : local ? 'owned' : holder ? 'standby' : 'unowned',
        epoch,
        ...(setting?.group ? { group: setting.group } : {}),
        ...(setting ? { weight: setting.weight } : {}),
      });
    }
  }
  return out;
}

/** The (info, before) pairs of every binding that changed from `previous` to `next`. */
export function bindingChanges(previous: ReadonlyMap<string, BindingInfo>, next: ReadonlyMap<string, BindingInfo>): Array<[BindingInfo, BindingInfo | undefined]> {
  const out: Array<[BindingInfo, BindingInfo | undefined]> = [];
  for (const [name, info] of next) {
    const before = previous.get(name);
    if (!before || before.holder !== info.holder || before.state !== info.state || before.epoch !== info.epoch || before.local !== info.local) out.push([info, before]);
  }
  for (const [name, before] of previous) {
    if (!next.has(name)) out.push([{ ...before, holder: null, local: false, state: 'unowned' }, before]);
  }
  return out;
}
