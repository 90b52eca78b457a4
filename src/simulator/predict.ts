// Predicting a migration before it starts (VM.estimateMigration): the guest's measured dirty rate and
// working set go into the calibrated simulator, once for the chosen policy and once for QEMU's stock
// schedule, and once without auto-converge to tell whether the guest converges without a throttle.
import { completionTimeoutMs } from '../controller/escalate.js';
import { builtinPolicy, type Policy } from '../controller/policy.js';
import type { Scenario } from './scenario.js';
import { simulate, type SimResult } from './simulate.js';

export interface PredictInput {
  ramMiB: number;
  /** unthrottled dirty rate, MiB/s */
  dirtyMiBps: number;
  /** memory the guest keeps re-dirtying, MiB */
  workingSetMiB: number;
  /** payload throughput, MiB/s (the bandwidth cap, or the lab's CPU-bound rate) */
  bandwidthMiBps: number;
}

export interface Prediction {
  policy: string;
  completed: boolean;
  /** switched to post-copy */
  postcopy: boolean;
  /** time to completion (or to the abort / the simulated limit), s */
  timeSec: number;
  iterations: number;
  peakThrottle: number;
  /** guest progress lost to throttling and pauses, in seconds of unthrottled guest time */
  guestWorkLostSec: number;
  downtimeMs: number | null;
}

export interface MigrationForecast {
  convergesWithoutThrottle: boolean;
  prediction: Prediction;
  stock: Prediction;
}

function prediction(name: string, r: SimResult): Prediction {
  const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
  return {
    policy: name,
    completed: r.completed,
    postcopy: r.postcopy,
    timeSec: round(r.timeSec),
    iterations: r.iterations,
    peakThrottle: r.peakThrottle,
    guestWorkLostSec: round(r.guestWorkLostSec),
    downtimeMs: r.downtimeMs === null ? null : Math.round(r.downtimeMs),
  };
}

/** Pure: the forecast for a policy (a `steer: false` policy is QEMU's own schedule). */
export function predictMigration(input: PredictInput, policy: Policy): MigrationForecast {
  const scn: Scenario = {
    name: 'estimate',
    description: 'measured before the migration',
    ramMiB: input.ramMiB,
    workingSetMiB: Math.max(1, Math.min(input.workingSetMiB, input.ramMiB)),
    dirtyMiBps: Math.max(0, input.dirtyMiBps),
    bandwidthMiBps: input.bandwidthMiBps,
    postcopyEnabled: policy.allowPostcopy,
  };
  // simulate as long as the policy would let the migration run
  const limitSec = (p: Policy) => completionTimeoutMs(p, input.ramMiB * 1024 * 1024) / 1000;
  const stockPolicy = builtinPolicy('stock');
  const stock = simulate(scn, { mode: 'stock', timeLimitSec: limitSec(stockPolicy) });
  // the agent measures the rate before a steered migration too, and hands it to the controller
  const chosen = policy.steer ? simulate(scn, { mode: 'controller', policy, timeLimitSec: limitSec(policy), measuredDirtyMiBps: scn.dirtyMiBps }) : stock;
  const none = simulate(scn, { mode: 'none', timeLimitSec: limitSec(policy) });
  return {
    convergesWithoutThrottle: none.completed && !none.postcopy,
    prediction: prediction(policy.name, chosen),
    stock: prediction(stockPolicy.name, stock),
  };
}

export const MIN_SATURATION_SIGNAL_MIBPS = 8;

/**
 * The working set from two page-sampling measurements (pure). Page sampling counts distinct pages, so
 * over a long period a working set smaller than rate x period shows as its size / period. When the
 * long period is not saturated either, the working set is at least what it saw; assume the whole RAM
 * (the cautious choice: a larger working set only makes passes larger).
 */
export function workingSetFrom(m: { shortMiBps: number; longMiBps: number; longSec: number; ramMiB: number }): { workingSetMiB: number; bounded: boolean } {
  // Below a few MiB/s page sampling sees a handful of changed pages (512 sampled per GiB): too few to
  // tell a saturated period from noise; such a guest converges whatever its working set.
  if (m.shortMiBps < MIN_SATURATION_SIGNAL_MIBPS) return { workingSetMiB: m.ramMiB, bounded: false };
  const seenLong = m.longMiBps * m.longSec;
  const wouldSee = m.shortMiBps * m.longSec;
  // saturated: the long period saw clearly less than the short rate would have written
  if (wouldSee > 0 && seenLong < 0.75 * wouldSee) return { workingSetMiB: Math.max(1, Math.round(seenLong)), bounded: true };
  return { workingSetMiB: m.ramMiB, bounded: false };
}
