// The decision at an iteration boundary, top to bottom: what the samples say (estimate.ts), the
// throttle that converges within the downtime limit (throttle.ts), why, the QEMU parameters that get
// there (throttle.ts), the phase, and whether progress stalled (stall.ts). Pure: the controller
// commits the result. Escalation (escalate.ts) follows at every sample, boundary or not.
import { measurePass, type PassMeasurement } from './estimate.js';
import { awaitsConfirmation, keepsArmed, nextPassCall, RELEASE_MARGIN, type PassCall } from './hysteresis.js';
import { judgeWithMeasurement, measurementAlone, type MeasuredJudgement } from './measured.js';
import type { ControllerMemory } from './memory.js';
import type { MigrationSample } from './sample.js';
import { trackStall, type StallTracking } from './stall.js';
import { MIN_RAISE, planThrottle, throttleNeeded, type ThrottleTarget } from './throttle.js';
import type { Action, Phase } from './types.js';

const MiB = 1024 * 1024;
const mib = (b: number): string => (b / MiB).toFixed(0);

export interface BoundaryDecision {
  pass: PassMeasurement;
  /** pass sizes including the pass that starts */
  passSizes: number[];
  /** the throttle to steer to from here */
  targetThrottle: number;
  /** the parameters that get QEMU there, or null when they hold already */
  action: Extract<Action, { type: 'set-throttle' }> | null;
  phase: Phase;
  stall: StallTracking;
  /** whether passes called for a throttle, after this boundary (hysteresis.ts) */
  passCall: PassCall | undefined;
}

export function decideAtBoundary(m: Readonly<ControllerMemory>, prev: MigrationSample, cur: MigrationSample): BoundaryDecision {
  const measuredPass = measurePass(m, prev, cur);
  const passSizes = [...m.passSizes, measuredPass.passBytes];
  const judged = judgeWithMeasurement(m, measuredPass, passSizes, cur.t);
  const pass = judged ? { ...measuredPass, dirty: { ...measuredPass.dirty, rate: judged.rate } } : measuredPass;
  const needed = throttleNeeded(pass.dirty.rate, pass.transferRate, pass.passBytes, m.view.downtimeMs, m.policy.convergePasses, m.ceiling);
  // the passes call for a throttle (from pass 2 on, the measurement's word against theirs)
  const saturated = saturatedAgain(m, pass);
  const calls = judged !== null && !judged.hold && passSizes.length >= 2 && (saturated || needed.throttle > 0);
  // a first such call waits for the next pass when the measurement says the guest converges alone
  const passMs = (measuredPass.boundary.t - m.lastBoundary.t) / Math.max(1, cur.iteration - m.lastBoundary.iteration);
  const withheld = calls && awaitsConfirmation(m.passCall, measurementAlone(m, measuredPass, cur.t), passMs);
  const hold = judged?.hold === true || withheld;
  const target = hold ? { ...needed, throttle: 0 } : needed;
  // holding a guest that converges alone: not even a saturated pass sends it to the ceiling
  const again = !hold && saturated;
  // a throttle the passes called for again stays armed until they release it (hysteresis.ts)
  const keepArmed = judged !== null && keepsArmed(m.passCall, hold);
  const goal = steerTo(m, pass, cur, target, again, keepArmed);
  // with a measurement the trigger may have been armed during the first pass: a guest that needs
  // no throttle after all gets it held again
  const holdTrigger = judged !== null && goal === 0 && cur.throttlePercent === 0;
  const params = planThrottle(goal, cur.throttlePercent, m.knobs, m.ceiling, holdTrigger || pass.dirty.ratio * 100 > m.knobs.threshold);
  const reason = `${measured(m, pass, again, judged)}: ${withheld ? 'the passes call for a throttle, the measured rate does not: waiting for the next pass to confirm; keeping auto-converge from triggering' : verdict(m, pass, cur, target, goal, again, keepArmed)}`;
  return {
    pass,
    passSizes,
    targetThrottle: goal,
    action: Object.keys(params).length > 0 ? { type: 'set-throttle', params, reason } : null,
    phase: phaseAfter(m.view.phase, goal, cur),
    stall: trackStall(m, passSizes, pass, cur),
    passCall: judged === null ? m.passCall : nextPassCall(m.passCall, hold, calls, withheld),
  };
}

/** Saturated although our throttle was in force: the guess was too low by an unknown factor, and
 *  more guessing costs two passes per step. */
function saturatedAgain(m: Readonly<ControllerMemory>, pass: PassMeasurement): boolean {
  return pass.dirty.saturated && m.view.targetThrottle > 0 && pass.throttleDuring >= m.view.targetThrottle - MIN_RAISE;
}

/** The ceiling when saturated again; else what converges, but never steering a running throttle
 *  down (QEMU can't lower it without a trigger anyway), nor one the passes called for and QEMU has
 *  yet to apply (`keepArmed`: re-deciding it on each pass, it would never land). */
function steerTo(m: Readonly<ControllerMemory>, pass: PassMeasurement, cur: MigrationSample, target: ThrottleTarget, again: boolean, keepArmed: boolean): number {
  const running = pass.throttleDuring > 0 || cur.throttlePercent > 0;
  return Math.max(again ? m.ceiling : target.throttle, running || keepArmed ? m.view.targetThrottle : 0);
}

/** The measurements the decision rests on, for its reason. */
function measured(m: Readonly<ControllerMemory>, pass: PassMeasurement, again: boolean, judged: MeasuredJudgement | null): string {
  const d = pass.dirty;
  const note = judged?.note ? `; ${judged.note}` : '';
  return (
    `dirty rate ${d.saturated ? '>= ' : ''}${mib(d.lowerBound)} MiB/s unthrottled` +
    `${d.saturated && !again ? ` (working set saturated, assuming ${mib(d.rate)}${note})` : ''}, payload ${mib(pass.transferRate)} MiB/s, ` +
    `pass ${mib(pass.passBytes)} MiB, downtime ${m.view.downtimeMs} ms`
  );
}

/** What the controller does about it, in words. */
function verdict(m: Readonly<ControllerMemory>, pass: PassMeasurement, cur: MigrationSample, target: ThrottleTarget, goal: number, again: boolean, keepArmed: boolean): string {
  if (again) return `working set still saturated at ${pass.throttleDuring} % throttle: going to the ceiling ${m.ceiling} %`;
  if (keepArmed && goal > Math.max(target.throttle, cur.throttlePercent)) {
    return `keeping the throttle ${goal} % armed: earlier passes called for it twice, and this one does not converge alone by a clear margin`;
  }
  if (goal > cur.throttlePercent) {
    const capped = target.wanted > m.ceiling ? ` (needs ${target.wanted} %, capped by policy at ${m.ceiling} %)` : '';
    if (target.outruns && goal === target.throttle) return `throttle ${goal} %: the guest outruns the link, and the highest throttle loses the least work${capped}`;
    return `throttle ${goal} % to shrink each pass to ~${target.ratio.toFixed(2)}${capped}`;
  }
  if (cur.throttlePercent > 0) return `hold the throttle at ${cur.throttlePercent} %`;
  if (m.passCall === 'sticky') return `converges without throttling even at ${RELEASE_MARGIN}x this rate: releasing the throttle earlier passes called for; keeping auto-converge from triggering`;
  return 'converges without throttling; keeping auto-converge from triggering';
}

/** Steering phases follow the throttle; escalation, post-copy and the end are decided elsewhere. */
function phaseAfter(phase: Phase, goal: number, cur: MigrationSample): Phase {
  if (phase !== 'first-pass' && phase !== 'converging' && phase !== 'throttling') return phase;
  return goal > 0 || cur.throttlePercent > 0 ? 'throttling' : 'converging';
}
