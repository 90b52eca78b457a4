// Human-readable figures for the CLI.
import type { EstimateResult } from '../api/estimate.js';
import type { MigrationStatus } from '../api/results.js';

export function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(0)} MiB`;
}

export function mibps(bytesPerSec: number): string {
  return `${(bytesPerSec / 1048576).toFixed(1)} MiB/s`;
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** One line describing a migration, for logs and non-terminal output. */
export function statusLine(s: MigrationStatus): string {
  const parts = [
    `${s.vmName}: ${s.state}${s.queuePosition !== undefined ? ` (position ${s.queuePosition})` : ''}`,
    `${s.progress}%`,
    `iter ${s.iteration}`,
    `remaining ${mib(s.dataRemaining)}`,
    `dirty ${mibps(s.dirtyRate)}`,
    `xfer ${mibps(s.transferRate)}`,
    `throttle ${s.throttlePercent}%`,
    seconds(s.elapsedMs),
  ];
  if (s.downtimeMs !== null) parts.push(`downtime ${s.downtimeMs} ms`);
  if (s.error) parts.push(`error ${s.error.name}: ${s.error.message}`);
  return parts.join('  ');
}

/** One paragraph for `vmigrate estimate`: what was measured, and the forecast for the policy and stock. */
export function estimateLines(e: EstimateResult): string {
  const m = e.measured;
  const one = (p: EstimateResult['prediction']) =>
    `${p.policy}: ${p.completed ? `done in ${p.timeSec} s${p.postcopy ? ' (post-copy)' : ''}` : `not done after ${p.timeSec} s`}, ` +
    `${p.iterations} passes, peak throttle ${p.peakThrottle} %, guest work lost ${p.guestWorkLostSec} s, downtime ${p.downtimeMs ?? '-'} ms`;
  return [
    `${e.vmName}: dirties ${m.dirtyRateMiBps} MiB/s${m.dirtyRateMiBps !== m.sampledDirtyRateMiBps ? ` (sampled ${m.sampledDirtyRateMiBps} now; the upper quartile of ${m.recentSamples} recent samples)` : ''}, working set ${m.workingSetMeasured ? `${m.workingSetMiB} MiB` : `over ${m.workingSetMiB} MiB assumed (not bounded by the measurement)`} of ${m.ramMiB} MiB; at ${m.bandwidthMiBps} MiB/s (measured in ${(m.measureMs / 1000).toFixed(1)} s)`,
    `  ${e.convergesWithoutThrottle ? 'converges without a throttle' : 'needs a throttle (or post-copy) to converge'}`,
    `  ${one(e.prediction)}`,
    `  ${one(e.stock)}`,
  ].join('\n');
}
