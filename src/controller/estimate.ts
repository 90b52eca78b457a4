// Estimates taken at iteration boundaries, never mid-pass: "data remaining" is a sawtooth inside
// a pass, and QEMU's dirty-rate statistic is capped by the working set per sync.
import type { MigrationSample } from './sample.js';
import { speedShare } from './curve.js';
import type { ControllerMemory } from './memory.js';

/** Zero pages above this share of the bytes sent: the rate measures the zero-page scan, not the link. */
const MAX_ZERO_SHARE = 0.1;
/** The speed share at 99 %, QEMU's highest throttle: the floor that keeps the division finite. */
const MIN_SPEED_SHARE = 0.005;
const DEFAULT_PAGE_SIZE = 4096;

/** Payload rates kept for the median: enough to outvote a sample or two taken across a sync. */
export const RATE_WINDOW = 8;

/** Dirtied/sent ratio at or above this means the working set was re-dirtied completely during the
 *  pass: QEMU's dirty rate is then only a lower bound of the guest's. Later passes have exact ratios
 *  (pass sizes); after pass 1 the ratio is biased low (non-working-set pages, zero-page time). */
export const SATURATED_RATIO = 0.93;
export const SATURATED_RATIO_FIRST_PASS = 0.8;

/** Size of the pass that started between `prev` and `cur` (cur is the first sample of its iteration).
 *  Exact when one boundary lies between them: bytes sent after the boundary = sent - what was left. */
export function passStartBytes(prev: MigrationSample, cur: MigrationSample): number {
  const sentAfter = Math.max(0, cur.dataProcessed - prev.dataProcessed - prev.dataRemaining);
  const passes = Math.max(1, cur.iteration - prev.iteration);
  return cur.dataRemaining + sentAfter / passes;
}

/** Payload throughput between two samples, or null while zero pages are being skipped in bulk
 *  (the rate then reads near 0 and says nothing about the link). A few zero pages are fine. */
export function payloadRate(prev: MigrationSample, cur: MigrationSample): number | null {
  const dt = (cur.t - prev.t) / 1000;
  const sent = cur.dataProcessed - prev.dataProcessed;
  const zeroBytes = (cur.zeroPages - prev.zeroPages) * (cur.pageSize || DEFAULT_PAGE_SIZE);
  if (dt <= 0 || sent <= 0 || zeroBytes > MAX_ZERO_SHARE * sent) return null;
  return sent / dt;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export interface DirtyEstimate {
  /** dirtied bytes / sent bytes over the last pass (QEMU's own trigger ratio) */
  ratio: number;
  /** the working set was saturated: the measured rate is only a lower bound */
  saturated: boolean;
  /** unthrottled dirty rate the measurement proves, bytes/s */
  lowerBound: number;
  /** best estimate of the unthrottled dirty rate, bytes/s */
  rate: number;
}

/** Recent payload rates with the rate between `prev` and `cur` added, if it says anything. */
export function withPayloadRate(rates: readonly number[], prev: MigrationSample, cur: MigrationSample): number[] {
  const r = payloadRate(prev, cur);
  if (r === null || cur.iteration < 1) return [...rates];
  return [...rates, r].slice(-RATE_WINDOW);
}

/** Median of recent payload rates, under the policy's cap; before any, the last estimate. */
export function transferEstimate(m: Readonly<ControllerMemory>): number {
  const measured = median(m.payloadRates);
  return Math.min(measured > 0 ? measured : m.view.transferRate, m.bandwidthCap);
}

/** Per-pass shrink ratio (next pass / previous pass) from reconstructed pass sizes, per pass when
 *  `passes` boundaries lay between the two observations. */
export function passRatio(prevPassBytes: number, passBytes: number, passes: number): number {
  if (prevPassBytes <= 0) return 0;
  return (passBytes / prevPassBytes) ** (1 / Math.max(1, passes));
}

/**
 * Unthrottled dirty rate from one boundary.
 * @param ratio dirtied / sent over the pass that just ended
 * @param dirtiedRate bytes/s dirtied during that pass as observed (capped by the working set)
 * @param throttle throttle % during that pass
 * @param previous estimate before this boundary (kept when it is higher and we are saturated)
 * @param saturationFactor guess multiplier for the bound when saturated (see Policy)
 * @param firstPass the pass that ended was pass 1 (ratio from QEMU's rate, less exact)
 */
export function estimateDirty(
  ratio: number,
  dirtiedRate: number,
  throttle: number,
  previous: number,
  saturationFactor: number,
  firstPass = false,
): DirtyEstimate {
  const lowerBound = dirtiedRate / Math.max(speedShare(throttle), MIN_SPEED_SHARE);
  const saturated = ratio >= (firstPass ? SATURATED_RATIO_FIRST_PASS : SATURATED_RATIO);
  const rate = saturated ? Math.max(previous, lowerBound * saturationFactor) : lowerBound;
  return { ratio, saturated, lowerBound, rate };
}

/** What one iteration boundary tells about the pass that just ended and the one that starts. */
export interface PassMeasurement {
  /** size of the pass that starts, bytes */
  passBytes: number;
  /** payload rate estimate, bytes/s */
  transferRate: number;
  /** the boundary placed in time (between the two samples) */
  boundary: { t: number; processed: number; iteration: number };
  dirty: DirtyEstimate;
  /** the throttle in force during the pass that ended (QEMU changes it only at syncs) */
  throttleDuring: number;
}

/** Beliefs from the samples either side of an iteration boundary (`cur` is the first of its pass). */
export function measurePass(m: Readonly<ControllerMemory>, prev: MigrationSample, cur: MigrationSample): PassMeasurement {
  const passBytes = passStartBytes(prev, cur);
  // place the boundary itself: the bytes of the new pass already sent went at the payload rate
  const sentAfter = Math.max(0, passBytes - cur.dataRemaining);
  const transferRate = transferEstimate(m);
  const t = transferRate > 0 ? Math.max(prev.t, cur.t - (sentAfter / transferRate) * 1000) : cur.t;
  const processed = cur.dataProcessed - sentAfter;
  const dt = (t - m.lastBoundary.t) / 1000;
  const intervalRate = dt > 0 ? (processed - m.lastBoundary.processed) / dt : 0;
  const passes = cur.iteration - m.lastBoundary.iteration;
  const prevPass = m.passSizes[m.passSizes.length - 1];
  // pass sizes give the exact shrink ratio; after pass 1 (all RAM, zero pages) only QEMU's rate can
  const ratio = prevPass !== undefined ? passRatio(prevPass, passBytes, passes) : intervalRate > 0 ? cur.dirtyRate / intervalRate : 0;
  const dirtied = prevPass !== undefined ? ratio * transferRate : cur.dirtyRate;
  const throttleDuring = prev.throttlePercent;
  const dirty = estimateDirty(ratio, dirtied, throttleDuring, m.view.dirtyRate, m.policy.saturationFactor, prevPass === undefined);
  return { passBytes, transferRate, boundary: { t, processed, iteration: cur.iteration }, dirty, throttleDuring };
}
