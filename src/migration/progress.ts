import type { MigrationSample } from '../controller/sample.js';

/**
 * Progress percent for a running migration. Pre-copy re-sends dirtied memory, so "remaining" can grow;
 * the caller keeps the maximum so the figure shown never goes backwards. Stays below 100 until done.
 */
export function progressPercent(previous: number, sample: MigrationSample): number {
  if (sample.dataTotal <= 0) return previous;
  const raw = 100 * (1 - sample.dataRemaining / sample.dataTotal);
  const bounded = Math.min(99, Math.max(0, Math.floor(raw)));
  return Math.max(previous, bounded);
}
