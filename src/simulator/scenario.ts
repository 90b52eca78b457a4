// Guest/link scenarios for the simulator. `heavy-lab` is the lab's measured case (docs/lab.md).
import { speedShare } from '../controller/curve.js';

export interface Scenario {
  name: string;
  description: string;
  ramMiB: number;
  /** memory the guest keeps re-dirtying */
  workingSetMiB: number;
  /** unthrottled dirtying rate ceiling, MiB/s */
  dirtyMiBps: number;
  /** payload throughput (link cap or CPU bound), MiB/s */
  bandwidthMiBps: number;
  /** all-zero pages, skipped fast in the first pass; default ram - workingSet - 32 MiB */
  zeroMiB?: number;
  /** zero-page scan rate, MiB/s (default 1024) */
  zeroScanMiBps?: number;
  /** a bursty guest (stress-ng --memrate with a rate, as in the lab's Linux guest): it rewrites the
   *  whole working set at this speed, MiB/s, then sleeps so that it averages dirtyMiBps; absent: it
   *  dirties evenly at dirtyMiBps */
  burstMiBps?: number;
  /** a guest that works in spells by the wall clock: dirtying for busySec, then quiet for quietSec,
   *  from busy at the start (absent: always busy) */
  spells?: { busySec: number; quietSec: number };
  /** migration started with post-copy enabled (default true) */
  postcopyEnabled?: boolean;
}

/** The lab's heavy guest ran at 16-19 % of its speed at 90 % throttle (the progress curve says 11 %),
 *  which is why stock auto-converge went on to 99 % there. Pass as `shareAt` to reproduce that run. */
export function labHeavyGuestShare(p: number): number {
  if (p <= 80) return speedShare(p);
  if (p <= 90) return 0.25 + ((0.175 - 0.25) * (p - 80)) / 10;
  return 0.175 + ((0.005 - 0.175) * (Math.min(p, 99) - 90)) / 9;
}

export const HEAVY_LAB: Scenario = {
  name: 'heavy-lab',
  description: '1 GiB, 512 MiB dirtied at 400 MiB/s, 100 MiB/s link (lab)',
  ramMiB: 1024,
  workingSetMiB: 512,
  dirtyMiBps: 400,
  bandwidthMiBps: 100,
};

export const SCENARIOS: readonly Scenario[] = [
  { name: 'idle', description: '1 GiB, 64 MiB at 5 MiB/s', ramMiB: 1024, workingSetMiB: 64, dirtyMiBps: 5, bandwidthMiBps: 100 },
  { name: 'light', description: '1 GiB, 256 MiB at 20 MiB/s', ramMiB: 1024, workingSetMiB: 256, dirtyMiBps: 20, bandwidthMiBps: 100 },
  { name: 'moderate', description: '2 GiB, 1 GiB at 60 MiB/s (converges unthrottled)', ramMiB: 2048, workingSetMiB: 1024, dirtyMiBps: 60, bandwidthMiBps: 100 },
  { name: 'medium', description: '2 GiB, 512 MiB at 150 MiB/s', ramMiB: 2048, workingSetMiB: 512, dirtyMiBps: 150, bandwidthMiBps: 100 },
  HEAVY_LAB,
  { name: 'heavy-4g', description: '4 GiB, 1 GiB at 300 MiB/s, 120 MiB/s link', ramMiB: 4096, workingSetMiB: 1024, dirtyMiBps: 300, bandwidthMiBps: 120 },
  { name: 'slow-link', description: '2 GiB, 256 MiB at 60 MiB/s over 40 MiB/s', ramMiB: 2048, workingSetMiB: 256, dirtyMiBps: 60, bandwidthMiBps: 40 },
  { name: 'hot-small', description: '2 GiB, 96 MiB at 50 GiB/s (unthrottled TCG speed)', ramMiB: 2048, workingSetMiB: 96, dirtyMiBps: 51200, bandwidthMiBps: 100 },
  { name: 'runaway', description: '1 GiB, 512 MiB at 50 GiB/s: only post-copy finishes', ramMiB: 1024, workingSetMiB: 512, dirtyMiBps: 51200, bandwidthMiBps: 100 },
  { name: 'runaway-nopostcopy', description: 'runaway, started without post-copy', ramMiB: 1024, workingSetMiB: 512, dirtyMiBps: 51200, bandwidthMiBps: 100, postcopyEnabled: false },
];

/** What page sampling over `periodSec` reads on this guest before the migration: distinct pages
 *  dirtied over the period, so at most the working set / period (../libvirt/dirty-rate.ts). */
export function sampledDirtyMiBps(scn: Scenario, periodSec = 1): number {
  return Math.min(scn.dirtyMiBps, scn.workingSetMiB / periodSec);
}
