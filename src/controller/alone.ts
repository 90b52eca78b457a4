// Whether a guest converges by plain pre-copy alone, from its dirty rate: shared by the plan from the
// measured rate (measured.ts) and the wait for a quiet spell (quiet.ts). Pure.

/** Share of the time left before the completion timeout a guest may take to converge alone: the
 *  rest is room to throttle if the measurement was wrong. */
export const ALONE_BUDGET_SHARE = 0.5;
/** A guest whose passes shrink slower than this converges alone too slowly to count (and page
 *  sampling, capped at working set / period, may itself be a bound this close to the link). */
const MAX_ALONE_RATIO = 0.9;

/**
 * Whether a guest dirtying `rate` converges alone (passes shrinking by rate / transferRate each)
 * from a pass of `passBytes` to one that fits the downtime limit within `budgetSec`.
 */
export function convergesAlone(rate: number, transferRate: number, passBytes: number, downtimeMs: number, budgetSec: number): boolean {
  if (transferRate <= 0) return false;
  const last = (transferRate * downtimeMs) / 1000;
  if (passBytes <= last) return true;
  const q = rate / transferRate;
  if (q >= MAX_ALONE_RATIO) return false;
  if (q <= 0) return passBytes / transferRate <= budgetSec;
  const passes = Math.ceil(Math.log(last / passBytes) / Math.log(q));
  const seconds = (passBytes * (1 - q ** passes)) / (1 - q) / transferRate;
  return seconds <= budgetSec;
}
