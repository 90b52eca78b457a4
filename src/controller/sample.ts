import type { JobStats } from '../libvirt/types.js';

/**
 * One observation of a running migration, normalised from libvirt's job statistics.
 * Sizes in bytes, rates in bytes/s, times in ms. This is the controller's input type.
 */
export interface MigrationSample {
  /** ms since the migration started (agent clock) */
  t: number;
  /** libvirt job type (1 bounded = running, 3 completed, ...) */
  jobType: number;
  /** memory pass number, 0 before the first pass finished setup, 1 during the first pass */
  iteration: number;
  dataTotal: number;
  dataProcessed: number;
  dataRemaining: number;
  memTotal: number;
  memProcessed: number;
  memRemaining: number;
  /** pages QEMU skipped as all-zero so far */
  zeroPages: number;
  normalPages: number;
  pageSize: number;
  /** bytes/s dirtied, as QEMU measured at its last sync (capped by the working set per sync) */
  dirtyRate: number;
  /** bytes/s sent, QEMU's estimate */
  transferRate: number;
  /** current auto-converge throttle percent (0 when not throttling) */
  throttlePercent: number;
  /** post-copy page requests so far (>0 means post-copy is active) */
  postcopyRequests: number;
  /** total downtime in ms, known once completed */
  downtimeMs?: number;
}

function num(stats: JobStats, key: string): number {
  const v = stats[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

/** Turn libvirt's flat job statistics into a sample. */
export function sampleFromJobStats(stats: JobStats, t: number): MigrationSample {
  const pageSize = num(stats, 'memory_page_size') || 4096;
  const sample: MigrationSample = {
    t,
    jobType: stats.type,
    iteration: num(stats, 'memory_iteration'),
    dataTotal: num(stats, 'data_total'),
    dataProcessed: num(stats, 'data_processed'),
    dataRemaining: num(stats, 'data_remaining'),
    memTotal: num(stats, 'memory_total'),
    memProcessed: num(stats, 'memory_processed'),
    memRemaining: num(stats, 'memory_remaining'),
    zeroPages: num(stats, 'memory_constant'),
    normalPages: num(stats, 'memory_normal'),
    pageSize,
    // libvirt reports the dirty rate in pages per second
    dirtyRate: num(stats, 'memory_dirty_rate') * pageSize,
    transferRate: num(stats, 'memory_bps'),
    throttlePercent: num(stats, 'auto_converge_throttle'),
    postcopyRequests: num(stats, 'memory_postcopy_requests'),
  };
  if (stats.downtime !== undefined) sample.downtimeMs = num(stats, 'downtime');
  return sample;
}
