// Steering from the dirty rate measured as the migration starts (page sampling over 1 s, see
// ../libvirt/dirty-rate.ts). A pass that re-dirtied the whole working set only bounds the guest's
// rate from below, and the saturation guess (bound x policy.saturationFactor) throttled a real Linux
// guest to 88 % that converged alone. The measurement says what the rate is: a guest that converges
// alone within the time budget is held (auto-converge kept from triggering) until its passes stop
// shrinking, and a guest that needs a throttle gets it armed during the first pass, so that QEMU's
// first trigger (end of pass 2) lands at the target. Pure.
import { transferEstimate, type PassMeasurement } from './estimate.js';
export { convergesAlone } from './alone.js';
import type { ControllerMemory } from './memory.js';
import { ALONE_BUDGET_SHARE, convergesAlone } from './alone.js';
import { quietNote, waitingForQuiet } from './quiet.js';
import { aloneMargin } from './hysteresis.js';
import { isStalled } from './stall.js';
import { planThrottle, throttleNeeded } from './throttle.js';
import type { Action } from './types.js';

/** Time the guest may take to converge alone from `elapsedMs`, s. */
function aloneBudgetSec(m: Readonly<ControllerMemory>, elapsedMs: number): number {
  return (Math.max(0, m.view.timeoutMs - elapsedMs) / 1000) * ALONE_BUDGET_SHARE;
}

export interface MeasuredArming {
  action: Extract<Action, { type: 'set-throttle' }> | null;
  targetThrottle: number;
  reason: string;
}

/**
 * During the first pass, once a payload rate is known: the plan from the measured rate. QEMU counts
 * its first high sync at the end of pass 1, so the trigger must be armed (or held) before then.
 */
export function armFromMeasurement(m: Readonly<ControllerMemory>, elapsedMs: number): MeasuredArming | null {
  const rate = m.measuredDirtyRate;
  if (rate === undefined || m.measuredArmed || m.ceiling <= 0) return null;
  const transfer = transferEstimate(m);
  if (!(transfer > 0) || !Number.isFinite(transfer)) return null;
  // pass 2 holds what the guest dirtied while pass 1 sent all RAM, at most all RAM
  const pass2 = Math.min(m.guestRamBytes, (rate * m.guestRamBytes) / transfer);
  const mib = (b: number): string => (b / 1024 / 1024).toFixed(0);
  const seen = `measured dirty rate ${mib(rate)} MiB/s, payload ${mib(transfer)} MiB/s`;
  const alone = convergesAlone(rate, transfer, pass2, m.view.downtimeMs, aloneBudgetSec(m, elapsedMs));
  const waiting = !alone && waitingForQuiet(m, transfer, pass2, elapsedMs);
  const needed = alone || waiting ? null : throttleNeeded(rate, transfer, pass2, m.view.downtimeMs, m.policy.convergePasses, m.ceiling);
  const target = needed?.throttle ?? 0;
  const params = planThrottle(target, 0, m.knobs, m.ceiling, true);
  const why = needed?.outruns ? ' (the guest outruns the link: the highest throttle loses the least work)' : '';
  const reason =
    target > 0
      ? `${seen}: throttle ${target} % armed for QEMU's first trigger${why}`
      : waiting
        ? `${seen}; ${quietNote(m)}; keeping auto-converge from triggering`
        : `${seen}: converges without throttling; keeping auto-converge from triggering`;
  return { action: Object.keys(params).length > 0 ? { type: 'set-throttle', params, reason } : null, targetThrottle: target, reason };
}

/** The measured rate alone converges within the budget (pass 2 on: the pass sizes are exact). */
export function measurementAlone(m: Readonly<ControllerMemory>, pass: PassMeasurement, elapsedMs: number): boolean {
  const measured = m.measuredDirtyRate;
  return measured !== undefined && convergesAlone(measured, pass.transferRate, pass.passBytes, m.view.downtimeMs, aloneBudgetSec(m, elapsedMs));
}

/** What the measurement changes at an iteration boundary. */
export interface MeasuredJudgement {
  /** the dirty rate to steer by, bytes/s */
  rate: number;
  /** converges alone within the budget: hold, whatever the target */
  hold: boolean;
  /** words for the reason */
  note: string;
}

/**
 * With a measurement, at a boundary: a saturated pass no longer needs the guess while the measured
 * rate converges alone and the passes go on shrinking. When they stopped shrinking, or the measured
 * rate is near or above the link, the old rule (the saturation guess, at least the measurement).
 * Null without a measurement.
 */
export function judgeWithMeasurement(m: Readonly<ControllerMemory>, pass: PassMeasurement, passSizes: readonly number[], elapsedMs: number): MeasuredJudgement | null {
  const measured = m.measuredDirtyRate;
  if (measured === undefined && m.quietDirtyRate === undefined) return null;
  const d = pass.dirty;
  // a quiet spell may come: waiting costs time, not guest work (quiet.ts); not once the passes'
  // call for a throttle stuck (hysteresis.ts)
  if (m.passCall !== 'sticky' && waitingForQuiet(m, pass.transferRate, pass.passBytes, elapsedMs)) return { rate: d.rate, hold: true, note: quietNote(m) };
  if (measured === undefined) return null;
  // a saturated pass bounds the rate below, the measurement says it unless the guest has since got
  // busier than the bound (a phase change: the bound wins); an unsaturated pass is exact
  // — but not at the end of pass 1, whose bound is QEMU's own rate over a pass of mostly zero pages
  // (on the lab it read 51 MiB/s for a guest measured at 8, and throttled it to 99 %); pass sizes are
  // exact from pass 2 on
  const firstBoundary = passSizes.length <= 1;
  const evidence = d.saturated ? (firstBoundary ? measured : Math.max(measured, d.lowerBound)) : d.rate;
  const shrinking = !isStalled(passSizes, m.policy.stallWindowIterations, m.policy.minProgress);
  // a throttle the passes called for again is released only by a clear margin (hysteresis.ts)
  const alone = shrinking && convergesAlone(evidence * aloneMargin(m.passCall), pass.transferRate, pass.passBytes, m.view.downtimeMs, aloneBudgetSec(m, elapsedMs));
  if (alone) return { rate: evidence, hold: true, note: `measured ${(measured / 1024 / 1024).toFixed(0)} MiB/s during the first pass` };
  if (!d.saturated) return { rate: d.rate, hold: false, note: '' };
  // Near or above the link the guess stays: page sampling is capped at working set / period, and in
  // the simulator the guess (at least the measured rate) lost less guest work than the measured rate
  // alone (medium, heavy-4g, slow-link, heavy under finish-at-any-cost; see docs/bench/measured.md).
  return { rate: Math.max(d.rate, measured), hold: false, note: shrinking ? '' : 'passes stopped shrinking' };
}
