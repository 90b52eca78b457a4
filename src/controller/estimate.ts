// Estimates taken at iteration boundaries, never mid-pass: "data remaining" is a sawtooth inside
// a pass, and QEMU's dirty-rate statistic is capped by the working set per sync.
import type { MigrationSample } from '../migration/sample.js';
import { speedShare } from './curve.js';

/** Dirtied/sent ratio at or above this means the working set was re-dirtied completely during the
 *  pass: QEMU's dirty rate is then only a lower bound of the guest's. */
export const SATURATED_RATIO = 0.85;

/** Size of the pass that started between `prev` and `cur` (cur is the first sample of its iteration).
 *  Exact when one boundary lies between them: bytes sent after the boundary = sent - what was left. */
export function passStartBytes(prev: MigrationSample, cur: MigrationSample): number {
  const sentAfter = Math.max(0, cur.dataProcessed - prev.dataProcessed - prev.dataRemaining);
  const passes = Math.max(1, cur.iteration - prev.iteration);
  return cur.dataRemaining + sentAfter / passes;
}

/** Payload throughput between two samples, or null while zero pages are being skipped
 *  (the rate then reads near 0 and says nothing about the link). */
export function payloadRate(prev: MigrationSample, cur: MigrationSample): number | null {
  const dt = (cur.t - prev.t) / 1000;
  const sent = cur.dataProcessed - prev.dataProcessed;
  if (dt <= 0 || sent <= 0 || cur.zeroPages !== prev.zeroPages) return null;
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

/**
 * Unthrottled dirty rate from one boundary.
 * @param reportedDirtyRate QEMU's dirty rate at this sync (bytes/s, capped by the working set)
 * @param intervalRate bytes/s processed since the previous boundary (same span as the sync period)
 * @param throttle throttle % during the pass that just ended
 * @param previous estimate before this boundary (kept when it is higher and we are saturated)
 * @param saturationFactor guess multiplier for the bound when saturated (see Policy)
 */
export function estimateDirty(
  reportedDirtyRate: number,
  intervalRate: number,
  throttle: number,
  previous: number,
  saturationFactor: number,
): DirtyEstimate {
  const ratio = intervalRate > 0 ? reportedDirtyRate / intervalRate : 0;
  const lowerBound = reportedDirtyRate / Math.max(speedShare(throttle), 0.005);
  const saturated = ratio >= SATURATED_RATIO;
  const rate = saturated ? Math.max(previous, lowerBound * saturationFactor) : lowerBound;
  return { ratio, saturated, lowerBound, rate };
}
