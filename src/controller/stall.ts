// "Is progress stalled?" Judged only on pass sizes at iteration boundaries (the sawtooth inside a
// pass is normal), never on the first pass (it sends all RAM), and never on a near-zero transfer
// rate while zero pages are being skipped. Only a throttle at the policy ceiling can stall: below
// it, the throttle can still help.
import type { PassMeasurement } from './estimate.js';
import type { ControllerMemory } from './memory.js';
import type { MigrationSample } from './sample.js';

/** Boundaries in a row that re-dirtied the whole working set at the ceiling: proof enough of a
 *  stall without waiting out the window (the pass cannot shrink when all of it is re-dirtied). */
const SATURATED_BOUNDARIES_FOR_STALL = 2;

/**
 * @param passBytes pass sizes at successive boundaries, oldest first, from pass 2 on
 * @param window boundaries that must show no progress
 * @param minProgress fraction by which the smallest recent pass must undercut the earlier best
 */
export function isStalled(passBytes: readonly number[], window: number, minProgress: number): boolean {
  if (passBytes.length < window + 1) return false;
  const before = Math.min(...passBytes.slice(0, passBytes.length - window));
  const recent = Math.min(...passBytes.slice(-window));
  return recent > (1 - minProgress) * before;
}

export type StallTracking = Pick<ControllerMemory, 'reachedCeiling' | 'stallWindowStart' | 'saturatedAtCeiling'> & { stalled: boolean };

/**
 * Stall tracking after a boundary; `passSizes` ends with the pass that starts there. The window
 * starts when the throttle reaches the ceiling (it can't help more), and again after each escalation.
 */
export function trackStall(m: Readonly<ControllerMemory>, passSizes: readonly number[], pass: PassMeasurement, cur: MigrationSample): StallTracking {
  let { reachedCeiling, stallWindowStart } = m;
  const atCeiling = m.ceiling <= 0 || cur.throttlePercent >= m.ceiling;
  if (atCeiling && !reachedCeiling) {
    reachedCeiling = true;
    stallWindowStart = passSizes.length - 1;
  }
  const saturatedAtCeiling = pass.dirty.saturated && (m.ceiling <= 0 || pass.throttleDuring >= m.ceiling) ? m.saturatedAtCeiling + 1 : 0;
  const stalled =
    reachedCeiling &&
    (saturatedAtCeiling >= SATURATED_BOUNDARIES_FOR_STALL ||
      isStalled(passSizes.slice(stallWindowStart), m.policy.stallWindowIterations, m.policy.minProgress));
  return { reachedCeiling, stallWindowStart, saturatedAtCeiling, stalled };
}
