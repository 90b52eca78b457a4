// Contract between the pure convergence controller and those who drive it: the migration runner
// feeds samples and applies actions, the daemon builds controllers and changes their policy.
import type { KnownParams } from './knobs.js';
import type { Policy, PolicyPatch } from './policy.js';
import type { MigrationSample } from './sample.js';
import type { ControllerSnapshot } from './snapshot.js';

/** QEMU migrate-set-parameters fields the controller may set (QMP names; see knobs.ts). */
export interface ThrottleParams {
  'cpu-throttle-initial'?: number;
  'cpu-throttle-increment'?: number;
  'max-cpu-throttle'?: number;
  'cpu-throttle-tailslow'?: boolean;
  'throttle-trigger-threshold'?: number;
}

export type Action =
  | { type: 'set-throttle'; params: ThrottleParams; reason: string }
  | { type: 'set-downtime'; ms: number; reason: string }
  | { type: 'set-bandwidth'; mibPerSec: number; reason: string }
  | { type: 'postcopy'; reason: string }
  | { type: 'abort'; reason: string };

export interface ControllerContext {
  guestRamBytes: number;
  /** the migration was started with post-copy enabled (VIR_MIGRATE_POSTCOPY) */
  postcopyEnabled: boolean;
  /** expected payload rate, MiB/s: used until one is measured */
  bandwidthMiBps?: number;
  /** the guest's unthrottled dirty rate measured just before the migration by page sampling (distinct
   *  pages over a 1 s period, MiB/s): with it the controller holds a guest that converges alone and
   *  arms a needed throttle from the first pass; without it, it steers from the passes alone */
  measuredDirtyMiBps?: number;
  /** the guest's dirty rates the agent sampled in the minutes before the migration, MiB/s: a guest
   *  seen quiet is given time to go quiet again before it is throttled (quiet.ts) */
  recentDirtyMiBps?: number[];
  /** QEMU's parameters before the migration where they are not QEMU's defaults; finish() restores them */
  original?: KnownParams;
}

export type Phase =
  | 'stock'
  | 'first-pass'
  | 'converging'
  | 'throttling'
  | 'escalating'
  | 'postcopy'
  /** aborted by us, or the job failed / was cancelled */
  | 'aborted'
  | 'completed';

/** The controller's beliefs and decisions, as state() shows them. */
export interface ControllerState {
  phase: Phase;
  iteration: number;
  elapsedMs: number;
  /** estimated unthrottled dirty rate, bytes/s */
  dirtyRate: number;
  /** dirty rate the measurements prove, bytes/s */
  dirtyRateLowerBound: number;
  /** last pass re-dirtied the whole working set (rate only bounded below) */
  saturated: boolean;
  /** dirtied / sent over the last pass */
  passRatio: number;
  /** payload rate estimate, bytes/s */
  transferRate: number;
  /** size of the current pass at its start, bytes */
  passBytes: number;
  /** throttle the controller is steering to */
  targetThrottle: number;
  /** throttle QEMU reported last */
  throttle: number;
  /** no progress over the stall window at the throttle ceiling */
  stalled: boolean;
  /** the downtime limit in force, ms */
  downtimeMs: number;
  /** completion timeout, ms after the start */
  timeoutMs: number;
  lastReason: string;
}

export interface Controller {
  observe(sample: MigrationSample): Action[];
  /** The dirty rate measured while the first pass runs (or before: ControllerContext.measuredDirtyMiBps),
   *  when it arrives after the controller was made; the first measurement counts, none after the end. */
  useMeasuredDirtyRate(mibPerSec: number): void;
  /** The runner failed to apply `action` (one this controller returned): forget its effect. */
  rejected(action: Action): void;
  /**
   * Switch policy mid-flight: a whole policy replaces the current one, a patch is merged over it
   * (throws PolicyError). Returns the actions that bring QEMU in line now; the rest (ceiling,
   * escalation, timeout) applies from the next decision.
   */
  changePolicy(next: PolicyPatch): Action[];
  /** the policy in force */
  policy(): Readonly<Policy>;
  /** Actions that put back every parameter changed so far (call when the migration ended, any way). */
  finish(): Action[];
  state(): Readonly<ControllerState>;
  /** Everything the controller remembers, as JSON, for resumeController() in a restarted agent. */
  snapshot(): ControllerSnapshot;
}

/** What a migration and the daemon need from a convergence controller. */
export type ControllerPort = Pick<Controller, 'observe' | 'rejected' | 'changePolicy' | 'policy' | 'finish'> & Partial<Pick<Controller, 'snapshot' | 'useMeasuredDirtyRate'>>;
