// Predicting a migration before it starts (VM.estimateMigration): the guest's measured dirty rate and
// working set go into the calibrated simulator, once for the chosen policy and once for QEMU's stock
// schedule, and once without auto-converge to tell whether the guest converges without a throttle.
import { completionTimeoutMs } from '../controller/escalate.js';
import { median } from '../controller/estimate.js';
import { builtinPolicy, type Policy } from '../controller/policy.js';
import type { Scenario } from './scenario.js';
import { simulate, type SimResult } from './simulate.js';

export interface PredictInput {
  ramMiB: number;
  /** unthrottled dirty rate, MiB/s */
  dirtyMiBps: number;
  /** memory the guest keeps re-dirtying, MiB */
  workingSetMiB: number;
  /** payload throughput, MiB/s (the bandwidth cap, or the lab's CPU-bound rate) */
  bandwidthMiBps: number;
  /** the QEMU process's resident set, MiB (virDomainMemoryStats "rss"); absent: unknown, and the
   *  simulator's default zero-page share is used */
  residentMiB?: number;
  /** guest RAM in zero pages, MiB, sampled from QEMU's memory (../libvirt/guest-zero.ts); when given
   *  it replaces the resident set's bound */
  zeroMiB?: number;
  /** zero-page scan rate of the first pass, MiB/s; absent: LAB_ZERO_SCAN_MIBPS (a migration thread
   *  with a core to itself) */
  zeroScanMiBps?: number;
  /** the agent's short samples of the guest before now, MiB/s, oldest first: the controller reads
   *  them too (a guest seen going quiet may be waited for) */
  recentDirtyMiBps?: number[];
}

export interface Prediction {
  policy: string;
  completed: boolean;
  /** switched to post-copy */
  postcopy: boolean;
  /** time to completion (or to the abort / the simulated limit), s */
  timeSec: number;
  iterations: number;
  peakThrottle: number;
  /** guest progress lost to throttling and pauses, in seconds of unthrottled guest time */
  guestWorkLostSec: number;
  downtimeMs: number | null;
}

export interface MigrationForecast {
  convergesWithoutThrottle: boolean;
  prediction: Prediction;
  stock: Prediction;
}

/** What a migration takes beside copying memory, s: libvirt preparing the destination (its QEMU
 *  started) before the first byte, and the handover after the last (the destination resumed, the
 *  source cleaned up). Measured on the lab: 0.4-1.2 s before the first progress sample, 1.4-2.6 s
 *  after the last byte (up to 0.5 s of that the benchmark's polling). */
export const SETUP_AND_HANDOVER_SEC = 2;

function prediction(name: string, r: SimResult): Prediction {
  const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
  return {
    policy: name,
    completed: r.completed,
    postcopy: r.postcopy,
    timeSec: round(r.completed ? r.timeSec + SETUP_AND_HANDOVER_SEC : r.timeSec),
    iterations: r.iterations,
    peakThrottle: r.peakThrottle,
    guestWorkLostSec: round(r.guestWorkLostSec),
    downtimeMs: r.downtimeMs === null ? null : Math.round(r.downtimeMs),
  };
}

/** Pure: the forecast for a policy (a `steer: false` policy is QEMU's own schedule). */
export function predictMigration(input: PredictInput, policy: Policy): MigrationForecast {
  const scn: Scenario = {
    name: 'estimate',
    description: 'measured before the migration',
    ramMiB: input.ramMiB,
    workingSetMiB: Math.max(1, Math.min(input.workingSetMiB, input.ramMiB)),
    dirtyMiBps: Math.max(0, input.dirtyMiBps),
    bandwidthMiBps: input.bandwidthMiBps,
    postcopyEnabled: policy.allowPostcopy,
    ...zeroPagesOf(input),
    zeroScanMiBps: input.zeroScanMiBps ?? LAB_ZERO_SCAN_MIBPS,
  };
  // simulate as long as the policy would let the migration run
  const limitSec = (p: Policy) => completionTimeoutMs(p, input.ramMiB * 1024 * 1024) / 1000;
  const stockPolicy = builtinPolicy('stock');
  const stock = simulate(scn, { mode: 'stock', timeLimitSec: limitSec(stockPolicy) });
  // the agent measures the rate before a steered migration too, and hands it to the controller
  const recent = input.recentDirtyMiBps !== undefined ? { recentDirtyMiBps: input.recentDirtyMiBps } : {};
  const chosen = policy.steer ? simulate(scn, { mode: 'controller', policy, timeLimitSec: limitSec(policy), measuredDirtyMiBps: scn.dirtyMiBps, ...recent }) : stock;
  const none = simulate(scn, { mode: 'none', timeLimitSec: limitSec(policy) });
  return {
    convergesWithoutThrottle: none.completed && !none.postcopy,
    prediction: prediction(policy.name, chosen),
    stock: prediction(stockPolicy.name, stock),
  };
}

/** Zero-page scan rate of pass 1, MiB/s. On the lab the source's job stats (memory_constant against
 *  time_elapsed, polled every 20 ms) read 3.8 to 6.2 GiB/s over a 3 GiB idle guest's first pass (6
 *  migrations); this is the low end, rounded. The engine's own default (1024) stays as it is: the
 *  controller's golden runs and the measured-rate tests are pinned to it. */
export const LAB_ZERO_SCAN_MIBPS = 4096;

/** QEMU's own resident memory beside guest RAM, MiB (code, heap, TCG's translation cache, device
 *  state). Measured on the lab (TCG, smaps: process RSS less the guest RAM block's): 34 MiB for the
 *  multiboot dirtying guest at 512 MiB and at 2 GiB alike, 133 MiB for the Linux guest (its -kernel
 *  and -initrd blobs, 49 MiB, and a larger translation cache). The smallest, rounded down, is
 *  subtracted: a larger overhead would count a small QEMU's touched pages as zero and promise too
 *  much; with a larger QEMU the estimate only stays cautious. */
export const QEMU_RSS_OVERHEAD_MIB = 32;

/**
 * Guest RAM that is certainly all zero, MiB (pure): a page the guest never touched was never faulted
 * into QEMU's process, so the resident set less QEMU's own memory bounds the non-zero guest memory
 * from above (pages touched and zeroed again only make it more cautious). Pre-copy skips zero pages
 * at scan speed and sends nearly nothing for them. Not a bound when guest memory is swapped out or
 * backed by hugetlbfs (neither is counted in the resident set): such a guest is predicted too fast.
 */
export function zeroMiBFrom(ramMiB: number, residentMiB: number, overheadMiB = QEMU_RSS_OVERHEAD_MIB): number {
  const touched = Math.min(ramMiB, Math.max(0, residentMiB - overheadMiB));
  return Math.max(0, ramMiB - touched);
}

/** The zero pages a forecast counts (pure): sampled when it could be, else the resident set's bound,
 *  else none given (the simulator's default). */
function zeroPagesOf(input: PredictInput): { zeroMiB?: number } {
  if (input.zeroMiB !== undefined) return { zeroMiB: Math.max(0, Math.min(input.ramMiB, input.zeroMiB)) };
  return input.residentMiB !== undefined ? { zeroMiB: zeroMiBFrom(input.ramMiB, input.residentMiB) } : {};
}

export const MIN_SATURATION_SIGNAL_MIBPS = 8;

/** Below this, MiB/s, a 1 s page-sampling reading is a handful of sampled pages (2 MiB each at 512
 *  per GiB) and its spread is counting noise. */
export const SAMPLING_NOISE_MIBPS = 16;

/**
 * The rate from several short samples taken now (pure). A reading can fall far below the guest's
 * rate (page sampling sees changed content only: a page rewritten with its own bytes, a pause between
 * bursts) but not far above it, so readings below a quarter of the highest are such drop-outs and
 * left out, and the rest averaged. Low readings are all counting noise: their median.
 */
export function freshDirtyRate(samplesMiBps: readonly number[]): number {
  const valid = samplesMiBps.filter((r) => Number.isFinite(r) && r >= 0);
  if (valid.length === 0) return 0;
  const highest = Math.max(...valid);
  if (highest < SAMPLING_NOISE_MIBPS) return median(valid);
  const kept = valid.filter((r) => r >= highest / 4);
  return Math.round(kept.reduce((a, b) => a + b, 0) / kept.length);
}

/** Share of the agent's recent samples a forecast's rate is at least as high as (their upper quartile). */
export const RECENT_RATE_QUANTILE = 0.75;

/** Fewer recent samples than this are not read: at the agent's default of one every 5 s they span
 *  under 20 s, and a guest just started shows its boot rather than its load. */
export const MIN_RECENT_SAMPLES = 4;

/**
 * The dirty rate a forecast assumes, MiB/s (pure): the fresh sample, or the upper quartile of the
 * agent's recent short samples of the guest when that is higher. Page sampling hashes pages at the
 * start and the end of its period, so it counts pages whose content changed, not pages written: a
 * guest that rewrites memory with the bytes it already holds, or pauses between bursts, reads far
 * below its write rate in one sample, while migration's dirty log counts every write. (On the lab,
 * stress-ng rewriting 128 MiB at a steady 400 MB/s, with its constant write patterns, read 0 to 142
 * MiB/s in successive 1 s samples, 0 in about a third of them.) The upper quartile, not the highest:
 * one spike minutes ago should not make a quiet guest look busy.
 */
export function forecastDirtyRate(freshMiBps: number, recentMiBps: readonly number[] = []): number {
  const valid = recentMiBps.filter((r) => Number.isFinite(r) && r >= 0).sort((a, b) => a - b);
  if (valid.length < MIN_RECENT_SAMPLES) return freshMiBps;
  const upper = valid[Math.max(0, Math.ceil(RECENT_RATE_QUANTILE * valid.length) - 1)]!;
  return Math.max(freshMiBps, upper);
}

/** Page-sampling periods, s, of the pair workingSetFrom reads: the short one gives the rate, the long
 *  one bounds the working set. */
export const SHORT_PERIOD_SEC = 1;
export const LONG_PERIOD_SEC = 3;

/**
 * The working set from two page-sampling measurements (pure). Page sampling counts distinct pages, so
 * over a long period a working set smaller than rate x period shows as its size / period. When the
 * long period is not saturated either, the working set is at least what it saw; assume the whole RAM
 * (the cautious choice: a larger working set only makes passes larger). Either way it is no smaller
 * than the pages the short period saw change: a long period that saw fewer missed writes that left
 * the bytes as they were at its start (stress-ng's patterns read 3 MiB/s over 3 s right after
 * 122 MiB/s over 1 s on a 128 MiB working set).
 */
export function workingSetFrom(m: { shortMiBps: number; longMiBps: number; longSec: number; ramMiB: number }): { workingSetMiB: number; bounded: boolean } {
  // Below a few MiB/s page sampling sees a handful of changed pages (512 sampled per GiB): too few to
  // tell a saturated period from noise; such a guest converges whatever its working set.
  if (m.shortMiBps < MIN_SATURATION_SIGNAL_MIBPS) return { workingSetMiB: m.ramMiB, bounded: false };
  const seenLong = m.longMiBps * m.longSec;
  const wouldSee = m.shortMiBps * m.longSec;
  // saturated: the long period saw clearly less than the short rate would have written
  const seenShort = m.shortMiBps * SHORT_PERIOD_SEC;
  if (wouldSee > 0 && seenLong < 0.75 * wouldSee) return { workingSetMiB: Math.max(1, Math.min(m.ramMiB, Math.round(Math.max(seenLong, seenShort)))), bounded: true };
  return { workingSetMiB: m.ramMiB, bounded: false };
}
