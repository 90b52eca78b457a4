// What to do when throttling (within the policy ceiling) cannot finish the migration:
// raise the downtime limit step by step, switch to post-copy if allowed, abort at the timeout.
import { MAX_COMPLETION_TIMEOUT_SEC } from './bounds.js';
import type { ControllerMemory } from './memory.js';
import type { Policy } from './policy.js';
import type { MigrationSample } from './sample.js';

const GiB = 1024 ** 3;
/** Room on top of the downtime the smallest recent pass needs at the estimated payload rate: the
 *  final stop-and-copy also sends device state and the last dirtied pages, and the rate is a median. */
const DOWNTIME_FIT_MARGIN = 1.15;

/** Downtime limits escalation may set, ascending, linear from downtimeMs to maxDowntimeMs. */
export function downtimeSchedule(p: Pick<Policy, 'downtimeMs' | 'maxDowntimeMs' | 'downtimeSteps'>): number[] {
  const steps: number[] = [];
  for (let i = 1; i <= p.downtimeSteps; i++) {
    steps.push(Math.round(p.downtimeMs + ((p.maxDowntimeMs - p.downtimeMs) * i) / p.downtimeSteps));
  }
  return steps.filter((s, i) => s > p.downtimeMs && s !== steps[i - 1]);
}

/** Abort deadline, ms after the start: proportional to guest RAM, with a floor. */
export function completionTimeoutMs(
  p: Pick<Policy, 'completionTimeoutSecPerGiB' | 'completionTimeoutMinSec'>,
  ramBytes: number,
): number {
  return 1000 * Math.min(MAX_COMPLETION_TIMEOUT_SEC, Math.max(p.completionTimeoutMinSec, (p.completionTimeoutSecPerGiB * ramBytes) / GiB));
}

export interface EscalateInput {
  elapsedMs: number;
  timeoutMs: number;
  postcopyActive: boolean;
  /** the migration was started with post-copy enabled, and QEMU has not refused it */
  postcopyPossible: boolean;
  preferPostcopy: boolean;
  /** no progress over the stall window since the last escalation */
  stalled: boolean;
  /** the throttle is at the ceiling (or the ceiling is 0): it can't help more */
  throttleExhausted: boolean;
  downtimeMs: number;
  schedule: readonly number[];
  /** downtime that the smallest recent pass would need, ms */
  neededDowntimeMs: number;
}

/** The escalation inputs from the controller's memory at a sample. */
export function escalationInput(m: Readonly<ControllerMemory>, cur: MigrationSample): EscalateInput {
  const recent = m.passSizes.slice(-m.policy.stallWindowIterations);
  const smallest = recent.length ? Math.min(...recent) : m.view.passBytes;
  return {
    elapsedMs: cur.t,
    timeoutMs: m.view.timeoutMs,
    postcopyActive: m.view.phase === 'postcopy',
    // started with post-copy = asked for it (VM.migrate `postcopy`, or the policy's allowPostcopy)
    postcopyPossible: m.postcopyEnabled && !m.postcopyRefused,
    preferPostcopy: m.policy.preferPostcopy,
    stalled: m.view.stalled,
    throttleExhausted: m.reachedCeiling,
    downtimeMs: m.view.downtimeMs,
    schedule: downtimeSchedule(m.policy),
    neededDowntimeMs: m.view.transferRate > 0 ? (smallest / m.view.transferRate) * 1000 * DOWNTIME_FIT_MARGIN : Infinity,
  };
}

export type Escalation =
  | { kind: 'abort'; reason: string }
  | { kind: 'downtime'; ms: number; reason: string }
  | { kind: 'postcopy'; reason: string };

export function escalate(i: EscalateInput): Escalation | null {
  if (i.postcopyActive) return null; // aborting now would lose the guest; post-copy must finish
  if (i.elapsedMs >= i.timeoutMs) {
    return {
      kind: 'abort',
      reason: `completion timeout ${(i.timeoutMs / 1000).toFixed(0)} s reached at ${(i.elapsedMs / 1000).toFixed(1)} s; the guest keeps running on the source`,
    };
  }
  if (!i.stalled || !i.throttleExhausted) return null;
  if (i.preferPostcopy && i.postcopyPossible) {
    return { kind: 'postcopy', reason: 'stalled at the throttle ceiling; policy prefers post-copy' };
  }
  const higher = i.schedule.filter((s) => s > i.downtimeMs);
  const fitsAny = higher.some((s) => s >= i.neededDowntimeMs);
  // a downtime step that can't fit the pass only burns a stall window when post-copy is available
  if (higher.length > 0 && (fitsAny || !i.postcopyPossible)) {
    // the first step that fits the smallest recent pass; if none fits, the largest (one step,
    // then post-copy or the timeout): smaller steps would only burn stall windows
    const fits = higher.find((s) => s >= i.neededDowntimeMs);
    const ms = fits ?? (higher[higher.length - 1] as number);
    return {
      kind: 'downtime',
      ms,
      reason: `stalled at the throttle ceiling; the smallest recent pass needs ~${Math.round(i.neededDowntimeMs)} ms of downtime: raising the limit ${i.downtimeMs} -> ${ms} ms`,
    };
  }
  if (i.postcopyPossible) {
    return {
      kind: 'postcopy',
      reason: `stalled at the throttle ceiling; ${higher.length > 0 ? `the smallest recent pass needs ~${Math.round(i.neededDowntimeMs)} ms, more than the ${i.schedule[i.schedule.length - 1] ?? i.downtimeMs} ms allowed` : 'downtime already at the policy maximum'}: switching to post-copy`,
    };
  }
  return null; // nothing left but waiting for the timeout
}
