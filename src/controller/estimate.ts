// Estimates taken at iteration boundaries, never mid-pass: "data remaining" is a sawtooth inside
// a pass, and QEMU's dirty-rate statistic is capped by the working set per sync.
import type { MigrationSample } from './sample.js';
import { speedShare } from './curve.js';

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
  const zeroBytes = (cur.zeroPages - prev.zeroPages) * (cur.pageSize || 4096);
  if (dt <= 0 || sent <= 0 || zeroBytes > 0.1 * sent) return null;
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
  const lowerBound = dirtiedRate / Math.max(speedShare(throttle), 0.005);
  const saturated = ratio >= (firstPass ? SATURATED_RATIO_FIRST_PASS : SATURATED_RATIO);
  const rate = saturated ? Math.max(previous, lowerBound * saturationFactor) : lowerBound;
  return { ratio, saturated, lowerBound, rate };
}
