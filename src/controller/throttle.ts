// "What throttle makes the next passes converge?" and "which QEMU parameters get it there".
// QEMU applies throttle parameters only at its next trigger (every second high sync), so the plan
// arms the trigger (low threshold), pins the landing point (initial / increment) and caps overshoot
// with max-cpu-throttle = target.
import type { ThrottleParams } from './types.js';
import { speedShare, throttleForShare } from './curve.js';
import { toQmpParams, type SteeredKnobs, type ThrottleKnobs } from './knobs.js';

/** QEMU takes throttle percentages from 1 to 99. */
const MIN_THROTTLE = 1;
const MAX_THROTTLE = 99;
/** Trigger threshold that fires for any guest worth throttling (target ratios are >= 0.1). */
export const ARM_THRESHOLD = 10;
/** Trigger threshold that never fires: dirtied bytes cannot exceed the bytes sent in steady state. */
export const HOLD_THRESHOLD = 100;
/** Below this a throttle barely slows the guest (share(15) ~ 0.84): not worth it for a guest that
 *  converges anyway. */
export const MIN_USEFUL_THROTTLE = 15;
/** Raises smaller than this are noise in the estimates. */
export const MIN_RAISE = 2;
/** Shrink ratios aimed at stay within these: below 0.1 no throttle gets there, above 0.9 a pass
 *  barely shrinks and convergence takes too many passes. */
const MIN_TARGET_RATIO = 0.1;
const MAX_TARGET_RATIO = 0.9;
/** A guest dirtying this close to the payload rate converges too slowly to leave unthrottled. */
const NEAR_PAYLOAD_RATE = 0.95;

/**
 * Per-pass shrink ratio (next pass / this pass) that reaches a pass fitting in the downtime limit
 * within `passes` passes, clamped to [0.1, 0.9]; when this pass already fits, whatever keeps the
 * next one fitting (>= 1).
 */
export function targetRatio(passBytes: number, transferRate: number, downtimeMs: number, passes: number): number {
  const last = (transferRate * downtimeMs) / 1000;
  if (passBytes <= last) return passBytes > 0 ? last / passBytes : Infinity;
  return Math.min(MAX_TARGET_RATIO, Math.max(MIN_TARGET_RATIO, (last / passBytes) ** (1 / passes)));
}

export interface ThrottleTarget {
  /** throttle to set, 0..ceiling */
  throttle: number;
  /** what the guest would need ignoring the ceiling */
  wanted: number;
  /** pass ratio aimed at */
  ratio: number;
  /** pass ratio predicted at the ceiling; >= 1 means throttle alone cannot converge */
  ratioAtCeiling: number;
  /** the guest dirties at least as fast as the link sends: the ceiling loses the least work */
  outruns: boolean;
}

/**
 * Whether the least guest work is lost at the ceiling. At a share s of its speed, a guest dirtying
 * `rate` over a link sending `transferRate` shrinks each pass by rate*s/transferRate, so from a pass
 * P it loses (1 - s) * P / (transferRate - rate * s) seconds of work until it converges. That falls
 * as s falls (its slope has the sign of rate - transferRate) once the guest outruns the link: the
 * highest throttle is both the fastest and the least harmful. Not when the pass fits the downtime
 * limit already: one pass is left, and it only has to keep fitting.
 */
function outrunsLink(dirtyRate: number, transferRate: number, passBytes: number, downtimeMs: number): boolean {
  return transferRate > 0 && dirtyRate >= transferRate && passBytes > (transferRate * downtimeMs) / 1000;
}

export function throttleNeeded(
  dirtyRate: number,
  transferRate: number,
  passBytes: number,
  downtimeMs: number,
  passes: number,
  ceiling: number,
): ThrottleTarget {
  const ratio = targetRatio(passBytes, transferRate, downtimeMs, passes);
  const ratioAtCeiling = transferRate > 0 ? (dirtyRate * speedShare(ceiling)) / transferRate : Infinity;
  if (transferRate <= 0 || dirtyRate <= ratio * transferRate) {
    return { throttle: 0, wanted: 0, ratio, ratioAtCeiling, outruns: false };
  }
  if (outrunsLink(dirtyRate, transferRate, passBytes, downtimeMs)) {
    return { throttle: Math.min(MAX_THROTTLE, ceiling), wanted: MAX_THROTTLE, ratio, ratioAtCeiling, outruns: true };
  }
  const wanted = throttleForShare((ratio * transferRate) / dirtyRate);
  if (wanted < MIN_USEFUL_THROTTLE && dirtyRate < NEAR_PAYLOAD_RATE * transferRate) {
    return { throttle: 0, wanted, ratio, ratioAtCeiling, outruns: false }; // converges on its own, a bit slower
  }
  return { throttle: Math.min(wanted, ceiling), wanted, ratio, ratioAtCeiling, outruns: false };
}

const clampPct = (p: number): number => Math.min(MAX_THROTTLE, Math.max(MIN_THROTTLE, Math.round(p)));
const STEERED: (keyof SteeredKnobs)[] = ['initial', 'increment', 'max', 'threshold'];

/**
 * Parameter changes that move QEMU's throttle from `current` to `target` at its next trigger,
 * or hold it (no rise) when target <= current. Never lowers a running throttle (QEMU can't
 * without a trigger, and the pass in flight was already dirtied). Returns only changed keys.
 * @param wouldTrigger QEMU's own rule would fire on this guest (dirtied > threshold% of sent)
 */
export function planThrottle(
  target: number,
  current: number,
  knobs: SteeredKnobs,
  ceiling: number,
  wouldTrigger: boolean,
): ThrottleParams {
  const want: SteeredKnobs = { ...knobs };
  if (ceiling <= 0) {
    want.threshold = HOLD_THRESHOLD;
  } else if (target > current && (current <= 0 || target - current >= MIN_RAISE || target >= ceiling)) {
    const t = Math.min(target, ceiling);
    if (current <= 0) want.initial = clampPct(t);
    else want.increment = clampPct(t - current);
    want.max = clampPct(t);
    want.threshold = Math.min(knobs.threshold, ARM_THRESHOLD);
  } else if (current > 0) {
    // hold: stop QEMU's next trigger from climbing more than a notch
    if (Math.min(current + knobs.increment, knobs.max) - current >= MIN_RAISE) want.max = clampPct(current);
  } else if (wouldTrigger) {
    // converges on its own (or waits for a quiet spell): keep QEMU's blind trigger off, and should it
    // fire anyway (a guest dirtying faster than the link can out-dirty any threshold), at 1 %
    want.threshold = HOLD_THRESHOLD;
    want.initial = MIN_THROTTLE;
    want.max = MIN_THROTTLE;
  }
  const changed: Partial<ThrottleKnobs> = {};
  for (const k of STEERED) if (want[k] !== knobs[k]) changed[k] = want[k];
  return toQmpParams(changed);
}

/**
 * Parameters that keep QEMU's own trigger under the policy ceiling: max and initial no higher than
 * it, and, for a throttle `running` above it, the trigger armed (QEMU lowers a running throttle to
 * max-cpu-throttle only when it fires next). A ceiling of 0 keeps the trigger from firing at all.
 */
export function ceilingGuard(knobs: SteeredKnobs, ceiling: number, running: number): ThrottleParams {
  const guard: Partial<ThrottleKnobs> = {};
  if (ceiling <= 0) guard.threshold = HOLD_THRESHOLD;
  else {
    if (knobs.max > ceiling) guard.max = ceiling;
    if (knobs.initial > ceiling) guard.initial = ceiling;
    if (running > ceiling) guard.threshold = Math.min(knobs.threshold, ARM_THRESHOLD);
  }
  return toQmpParams(guard);
}
