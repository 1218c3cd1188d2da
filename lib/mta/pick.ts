// Choosing one binding of a group. Pure: the random source is injected so tests
// (and simulations) can use a seeded one and assert exact outcomes.

import type { BindingInfo } from './types';

/** A source of uniform numbers in [0, 1), like Math.random. */
export type RandomSource = () => number;

export type PickStrategy = 'random' | 'weighted';

/**
 * Picks one of `candidates`: uniformly ('random') or in proportion to `weight`
 * ('weighted', default weight 1; a weight of 0 or less is never picked).
 * Candidates are ordered by name first so the result depends only on the set and
 * the random source, not on the directory's iteration order.
 * Returns undefined when there is nothing to pick from.
 */
export function pickBinding(candidates: readonly BindingInfo[], strategy: PickStrategy, random: RandomSource): BindingInfo | undefined {
  const sorted = [...candidates].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (strategy === 'random') {
    return sorted[Math.min(sorted.length - 1, Math.floor(random() * sorted.length))];
  }
  const weighted = sorted.filter((b) => weightOf(b) > 0);
  const total = weighted.reduce((sum, b) => sum + weightOf(b), 0);
  if (total <= 0) return undefined;
  let point = random() * total;
  for (const binding of weighted) {
    point -= weightOf(binding);
    if (point < 0) return binding;
  }
  // Only reachable through floating-point rounding at the very top of the range.
  return weighted[weighted.length - 1];
}

function weightOf(binding: BindingInfo): number {
  const weight = binding.weight ?? 1;
  return Number.isFinite(weight) ? weight : 0;
}

/**
 * A small deterministic random source (mulberry32) for tests and simulations.
 * Not for anything security related.
 */
export function seededRandom(seed: number): RandomSource {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
