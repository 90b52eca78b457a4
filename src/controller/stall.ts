// "Is progress stalled?" Judged only on pass sizes at iteration boundaries (the sawtooth inside a
// pass is normal), never on the first pass (it sends all RAM), and never on a near-zero transfer
// rate while zero pages are being skipped.
import type { MigrationSample } from './sample.js';

/**
 * @param passBytes pass sizes at successive boundaries, oldest first, from pass 2 on
 * @param window boundaries that must show no progress
 * @param minProgress fraction by which the smallest recent pass must undercut the earlier best
 */
export function isStalled(passBytes: readonly number[], window: number, minProgress: number): boolean {
  if (passBytes.length < window + 1) return false;
  const before = Math.min(...passBytes.slice(0, passBytes.length - window));
  const recent = Math.min(...passBytes.slice(-window));
  return recent > (1 - minProgress) * before;
}

/** The link moved (almost) nothing for `forMs` though no zero pages were skipped and no pass ended:
 *  a transfer stall (network or destination), distinct from a dirtying stall. */
export function isTransferStalled(samples: readonly MigrationSample[], forMs: number, minBytes = 1 << 20): boolean {
  const last = samples[samples.length - 1];
  if (!last) return false;
  let first: MigrationSample | undefined;
  for (let i = samples.length - 1; i >= 0; i--) {
    const s = samples[i] as MigrationSample;
    if (s.iteration !== last.iteration) break;
    first = s;
    if (last.t - s.t >= forMs) break;
  }
  if (!first || last.t - first.t < forMs) return false;
  return last.dataProcessed - first.dataProcessed < minBytes && last.zeroPages === first.zeroPages;
}
