// Waiting for a quiet spell instead of throttling. The agent samples each guest's dirty rate now and
// then (../daemon/dirty-history.ts). A guest seen going quiet on this host within the last minutes
// (busy, then at a rate that converges alone) is likely to go quiet again, and in a quiet spell
// pre-copy finishes with no throttle at all. Quiet before busy does not count: every guest boots. Waiting costs time, not guest work: the controller waits, up to a share of the
// time budget, then throttles as it would have. A guest never seen quiet is not kept waiting. Pure.
import { convergesAlone } from './alone.js';
import type { ControllerMemory } from './memory.js';

const MiB = 1024 * 1024;

/** Share of the completion timeout spent waiting for a quiet spell at most; the rest is room to
 *  throttle if none comes. */
export const QUIET_WAIT_SHARE = 0.4;

/** A sample counts as a quiet spell when an earlier one was at least this many times busier. */
export const QUIET_DROP = 2;

/** The memory field for the rates sampled before the migration (MiB/s, oldest first): the quietest
 *  rate the guest dropped to after being busy; none if it never did. */
export function quietRateFields(recentMiBps: readonly number[] | undefined): Pick<ControllerMemory, 'quietDirtyRate'> {
  let busiest = 0;
  let quiet: number | undefined;
  for (const r of recentMiBps ?? []) {
    if (!Number.isFinite(r) || r < 0) continue;
    if (busiest > 0 && busiest >= QUIET_DROP * r) quiet = Math.min(quiet ?? r, r);
    busiest = Math.max(busiest, r);
  }
  return quiet === undefined ? {} : { quietDirtyRate: quiet * MiB };
}

/**
 * Whether to hold the throttle and wait: the guest was seen quiet enough to converge alone from a
 * pass of `passBytes`, and the wait has not used its share of the budget. Within a quiet spell the
 * passes must then fit the downtime limit by the end of the wait.
 */
export function waitingForQuiet(m: Readonly<ControllerMemory>, transferRate: number, passBytes: number, elapsedMs: number): boolean {
  const quiet = m.quietDirtyRate;
  if (quiet === undefined || !(transferRate > 0)) return false;
  const waitEndMs = m.view.timeoutMs * QUIET_WAIT_SHARE;
  if (elapsedMs >= waitEndMs) return false;
  return convergesAlone(quiet, transferRate, passBytes, m.view.downtimeMs, (waitEndMs - elapsedMs) / 1000);
}

/** Words for a reason. */
export function quietNote(m: Readonly<ControllerMemory>): string {
  const waitSec = (m.view.timeoutMs * QUIET_WAIT_SHARE) / 1000;
  return `seen quiet at ${((m.quietDirtyRate ?? 0) / MiB).toFixed(0)} MiB/s on this host before the migration: waiting for a quiet spell, up to ${waitSec.toFixed(0)} s, rather than throttling`;
}
