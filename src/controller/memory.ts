// Everything the controller remembers between samples, in one record. The decision functions read
// it; only controller.ts (through commit.ts) writes it.
import { completionTimeoutMs } from './escalate.js';
import { qemuParams, type QemuParams, type ThrottleKnobs } from './knobs.js';
import type { PassCall } from './hysteresis.js';
import type { Policy } from './policy.js';
import { quietRateFields } from './quiet.js';
import type { MigrationSample } from './sample.js';
import type { ControllerContext, ControllerState } from './types.js';

const MiB = 1024 * 1024;

/** A parameter the controller changed, which finish() must put back. */
export type ChangedParam = keyof ThrottleKnobs | 'downtime' | 'bandwidth';

export interface ControllerMemory {
  readonly guestRamBytes: number;
  /** the migration was started with post-copy enabled */
  readonly postcopyEnabled: boolean;
  /** QEMU's parameters before the migration */
  readonly original: QemuParams;

  /** the policy in force (changes only in changePolicy) */
  policy: Policy;
  /** the throttle ceiling QEMU is guarded to: the steering policy's maxThrottle */
  ceiling: number;
  /** payload rate cap the policy set, bytes/s (Infinity: none) */
  bandwidthCap: number;

  /** the throttle knobs QEMU holds, as far as the controller knows */
  knobs: ThrottleKnobs;
  /** what finish() must put back */
  changed: Set<ChangedParam>;
  /** the runner could not switch to post-copy: don't ask again */
  postcopyRefused: boolean;

  /** the guest's unthrottled dirty rate measured by page sampling before the migration, bytes/s
   *  (absent: steer from the passes alone) */
  measuredDirtyRate?: number;
  /** the throttle plan from the measured rate was set during the first pass */
  measuredArmed?: boolean;
  /** whether passes called for a throttle over the measurement, and were released since (absent:
   *  never called); see hysteresis.ts */
  passCall?: PassCall;
  /** the lowest dirty rate the agent sampled on this guest in the minutes before the migration,
   *  bytes/s (absent: none sampled); see quiet.ts */
  quietDirtyRate?: number;

  /** the previous sample observed while steering */
  previous: MigrationSample | undefined;
  /** recent payload rates, bytes/s, oldest first */
  payloadRates: number[];
  /** pass sizes at successive iteration boundaries, bytes, from pass 2 on */
  passSizes: number[];
  /** the last iteration boundary as placed in time: ms, bytes processed, iteration */
  lastBoundary: { t: number; processed: number; iteration: number };

  /** index in passSizes the stall window is measured from */
  stallWindowStart: number;
  /** the throttle reached the ceiling (since the last policy change that raised it) */
  reachedCeiling: boolean;
  /** consecutive boundaries that re-dirtied the whole working set at the ceiling */
  saturatedAtCeiling: number;

  /** beliefs and decisions that state() shows */
  view: ControllerState;
}

/** The memory fields that hold a dirty rate measured before the migration (MiB/s given), not yet
 *  acted on; none for a value that is no measurement. */
export function measuredRateFields(mibPerSec: number | undefined): Pick<ControllerMemory, 'measuredDirtyRate' | 'measuredArmed'> {
  if (mibPerSec === undefined || !Number.isFinite(mibPerSec) || mibPerSec < 0) return {};
  return { measuredDirtyRate: mibPerSec * MiB, measuredArmed: false };
}

export function initialMemory(policy: Policy, ctx: ControllerContext): ControllerMemory {
  const original = qemuParams(ctx.original);
  return {
    guestRamBytes: ctx.guestRamBytes,
    postcopyEnabled: ctx.postcopyEnabled,
    original,
    policy,
    ceiling: policy.maxThrottle,
    bandwidthCap: policy.bandwidthMiBps !== undefined ? policy.bandwidthMiBps * MiB : Infinity,
    knobs: { ...original.throttle },
    changed: new Set(),
    postcopyRefused: false,
    // only when measured: a controller without the measurement keeps its memory (and snapshots) as before
    ...measuredRateFields(ctx.measuredDirtyMiBps),
    ...quietRateFields(ctx.recentDirtyMiBps),
    previous: undefined,
    payloadRates: [],
    passSizes: [],
    lastBoundary: { t: 0, processed: 0, iteration: 1 },
    stallWindowStart: 0,
    reachedCeiling: false,
    saturatedAtCeiling: 0,
    view: {
      phase: policy.steer ? 'first-pass' : 'stock',
      iteration: 0,
      elapsedMs: 0,
      dirtyRate: 0,
      dirtyRateLowerBound: 0,
      saturated: false,
      passRatio: 0,
      transferRate: (ctx.bandwidthMiBps ?? 0) * MiB,
      passBytes: ctx.guestRamBytes,
      targetThrottle: 0,
      throttle: 0,
      stalled: false,
      downtimeMs: original.downtimeMs,
      timeoutMs: completionTimeoutMs(policy, ctx.guestRamBytes),
      lastReason: '',
    },
  };
}

/** The steering is over: the migration ended, or the controller aborted it. */
export const ended = (m: ControllerMemory): boolean => m.view.phase === 'aborted' || m.view.phase === 'completed';
