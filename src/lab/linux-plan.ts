// The Linux guest's workload plan and kernel command line (pure). The guest's /init (linux/init.sh)
// runs stress-ng's memrate stressor in windows following the plan, and reports each window's work.

/** One step: stress-ng writes `rateMB` MB/s (0 = idle) for `seconds` (0 = for ever). */
export interface PlanStep {
  rateMB: number;
  seconds: number;
}

/** steady: one rate for ever; phases: idle -> heavy -> idle; bursty: heavy and idle in turn, for ever. */
export type LinuxLoad = 'steady' | 'phases' | 'bursty';
export const LINUX_LOADS: readonly LinuxLoad[] = ['steady', 'phases', 'bursty'];

export interface LinuxWorkload {
  /** Memory stress-ng rewrites, MiB. */
  wsMiB: number;
  plan: PlanStep[];
  /** Start the plan again after its last step. */
  repeat: boolean;
  /** Window length, s (one stress-ng run and one report line each). */
  windowSec: number;
}

export interface LinuxLoadOptions {
  load?: LinuxLoad;
  wsMiB: number;
  /** Write rate of the heavy (or only) step, MB/s. */
  rateMB: number;
  /** phases: idle before and after the heavy step; bursty: idle between bursts (s). */
  idleSec?: number;
  /** phases: length of the heavy step; bursty: length of a burst (s). */
  heavySec?: number;
  windowSec?: number;
}

export class LinuxPlanError extends Error {
  override readonly name = 'LinuxPlanError';
}

/**
 * Window length: stress-ng reports a write rate only for the write methods it finished within its run,
 * and each method rewrites the whole working set, so a window must hold a few of them (3 x ws / rate).
 */
export function windowFor(wsMiB: number, plan: PlanStep[], minSec = 2): number {
  const busiest = plan.filter((s) => s.rateMB > 0).map((s) => Math.ceil((3 * wsMiB) / s.rateMB));
  return Math.max(minSec, ...busiest);
}

export function linuxWorkload(o: LinuxLoadOptions): LinuxWorkload {
  const load = o.load ?? 'steady';
  const idle = o.idleSec ?? 10;
  const heavy = o.heavySec ?? 30;
  for (const [k, v] of Object.entries({ wsMiB: o.wsMiB, rateMB: o.rateMB, idleSec: idle, heavySec: heavy })) {
    if (!Number.isInteger(v) || v < 0) throw new LinuxPlanError(`${k} must be a non-negative integer, got ${String(v)}`);
  }
  if (o.wsMiB < 1) throw new LinuxPlanError('wsMiB must be at least 1');
  let plan: PlanStep[];
  let repeat = false;
  switch (load) {
    case 'steady':
      plan = [{ rateMB: o.rateMB, seconds: 0 }];
      break;
    case 'phases':
      plan = [{ rateMB: 0, seconds: idle }, { rateMB: o.rateMB, seconds: heavy }, { rateMB: 0, seconds: 0 }];
      break;
    case 'bursty':
      plan = [{ rateMB: o.rateMB, seconds: heavy }, { rateMB: 0, seconds: idle }];
      repeat = true;
      if (heavy === 0 || idle === 0) throw new LinuxPlanError('a bursty load needs heavySec and idleSec above 0');
      break;
    default:
      throw new LinuxPlanError(`unknown load ${String(load)} (one of ${LINUX_LOADS.join(', ')})`);
  }
  const windowSec = o.windowSec ?? windowFor(o.wsMiB, plan);
  if (!Number.isInteger(windowSec) || windowSec < 1) throw new LinuxPlanError('windowSec must be a positive integer');
  return { wsMiB: o.wsMiB, plan, repeat, windowSec };
}

/** The kernel command line: serial console, no reboot on panic, and the plan for /init. */
export function linuxCmdline(w: LinuxWorkload): string {
  const plan = w.plan.map((s) => `${s.rateMB}:${s.seconds}`).join(',');
  return `console=ttyS0 panic=-1 mitigations=off vmw.ws=${w.wsMiB} vmw.plan=${plan} vmw.repeat=${w.repeat ? 1 : 0} vmw.win=${w.windowSec}`;
}
