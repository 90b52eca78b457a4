// The oracle of the convergence benchmark (pure): a sweep of fixed throttles (QEMU auto-converge with
// initial = max = T), the order it runs in, what it may skip, and which T is best in hindsight.

/** The throttles swept, %; 0 is plain pre-copy without auto-converge (QEMU takes no initial below 1). */
export const SWEEP: readonly number[] = [0, 20, 40, 60, 80, 90, 95, 99];

/** One fixed-throttle run as the sweep sees it. */
export interface SweepRun {
  throttle: number;
  /** the migration completed within the time budget */
  completed: boolean;
  seconds: number;
  workLostSec: number;
  /** stopped early because it had already lost more work than a completed lower-loss run */
  dominated?: boolean;
  /** not run: a higher throttle did not complete within the budget (see nextThrottle) */
  skipped?: boolean;
}

/**
 * Runs go from the highest throttle down. A throttle that does not complete within the budget (and
 * was not stopped for being dominated) ends the sweep: a lower throttle lets the guest dirty faster,
 * so it cannot converge sooner. Returns the next throttle to run, or null when the sweep is done.
 */
export function nextThrottle(sweep: readonly number[], done: readonly SweepRun[]): number | null {
  const order = [...sweep].sort((a, b) => b - a);
  if (done.some((r) => !r.completed && !r.dominated && !r.skipped)) return null;
  return order.find((t) => !done.some((r) => r.throttle === t)) ?? null;
}

/** The throttles left out once the sweep stopped, recorded as skipped. */
export function skippedRuns(sweep: readonly number[], done: readonly SweepRun[]): SweepRun[] {
  return sweep
    .filter((t) => !done.some((r) => r.throttle === t))
    .map((throttle) => ({ throttle, completed: false, seconds: 0, workLostSec: 0, skipped: true }));
}

/** Work lost counts within this of each other are the same: the noise of the measurement, and the
 *  additive slack of the target (controller <= 1.2 x oracle + 1 s). */
export const CUT_MARGIN_SEC = 1;

/** Work lost above which a run cannot be the oracle: the best completed run's loss so far plus the
 *  margin (a count read mid-run is noisy). Null before any run completed. */
export function cutAbove(done: readonly SweepRun[]): number | null {
  const finished = done.filter((r) => r.completed);
  return finished.length === 0 ? null : Math.min(...finished.map((r) => r.workLostSec)) + CUT_MARGIN_SEC;
}

/** The oracle: among the runs that completed within the budget, the one that lost the least guest
 *  work (ties: the faster one). Null when no fixed throttle completed. */
export function oracle(runs: readonly SweepRun[]): SweepRun | null {
  const finished = runs.filter((r) => r.completed);
  if (finished.length === 0) return null;
  return finished.reduce((best, r) => (r.workLostSec < best.workLostSec || (r.workLostSec === best.workLostSec && r.seconds < best.seconds) ? r : best));
}
