/**
 * Pre-copy live-migration engine (pure, deterministic, simulated time only), driven step by step:
 *
 *   const sim = createSimulation(scenario, { autoConverge: true });
 *   for (let s = sim.next(); s; s = sim.next()) for (const a of decide(s)) sim.apply(a);
 *   sim.result();
 *
 * Model: pass 1 sends all RAM (zero pages first, scanned fast and nearly free on the wire); every
 * later pass sends the pages dirtied during the previous one (capped by the working set). A bitmap
 * sync ends each pass: QEMU's dirty-rate statistic and auto-converge trigger are evaluated when the
 * sync period exceeds 1 s (qemu-throttle.ts), then the migration completes if the new pass fits in
 * the downtime limit at the payload rate. The guest dirties at dirtyMiBps x speedShare(throttle)
 * (the lab's measured curve). Post-copy moves the guest to the destination and completes once the
 * remaining pages are pulled. Abort stops the migration; the guest stays on the source.
 */
import type { MigrationSample } from '../controller/sample.js';
import type { Action } from '../controller/types.js';
import { speedShare } from '../controller/curve.js';
import { fromQmpParams, QEMU_DEFAULTS } from '../controller/knobs.js';
import { evaluateTrigger, type ThrottleKnobs, type TriggerState } from './qemu-throttle.js';
import type { Scenario } from './scenario.js';
import { JobType } from '../libvirt/types.js';

const MiB = 1024 * 1024;
const PAGE = 4096;
/** bytes on the wire per zero page (header only) */
const ZERO_PAGE_WIRE = 9;

export interface EngineOptions {
  /** QEMU's auto-converge capability */
  autoConverge: boolean;
  /** default 1000 */
  samplePeriodMs?: number;
  /** integration step, ms (passes ending mid-step are handled exactly); default 50 */
  stepMs?: number;
  /** default 300 */
  timeLimitSec?: number;
  /** QEMU throttle parameters at the start (default: QEMU's) */
  knobs?: Partial<ThrottleKnobs>;
  /** downtime limit at the start, ms (default: QEMU's) */
  downtimeMs?: number;
  /** guest speed share while post-copy pulls pages (default 0.5) */
  postcopyGuestShare?: number;
  /** fixed part of any pause (device state), ms (default 30) */
  deviceStateMs?: number;
  /** guest speed share at a throttle %, to test a guest that doesn't follow the measured curve
   *  (default speedShare) */
  shareAt?: (throttle: number) => number;
}

export interface TimelinePoint {
  t: number;
  iteration: number;
  remainingMiB: number;
  throttle: number;
  dirtyMiBps: number;
  transferMiBps: number;
}

export interface EngineResult {
  scenario: string;
  completed: boolean;
  aborted: boolean;
  postcopy: boolean;
  /** completion/abort time, or the time limit */
  timeSec: number;
  iterations: number;
  peakThrottle: number;
  /** integral of throttle % over time / 100 */
  throttleSeconds: number;
  /** guest progress over the run relative to running unthrottled */
  guestWorkShare: number;
  /** seconds of guest progress lost (timeSec - work) */
  guestWorkLostSec: number;
  downtimeMs: number | null;
  sentMiB: number;
  /** one point per sample */
  timeline: TimelinePoint[];
  samples: MigrationSample[];
}

export interface Simulation {
  /** Run to the next sample time and return its sample; after the end, one final sample
   *  (job type 3 completed / 5 cancelled), then null. null at the time limit. */
  next(): MigrationSample | null;
  /** Apply an action as QEMU would; false when refused (post-copy not enabled, abort in post-copy). */
  apply(action: Action): boolean;
  /** true once completed, aborted, or out of time */
  readonly finished: boolean;
  result(): EngineResult;
}

export function createSimulation(scn: Scenario, opts: EngineOptions): Simulation {
  const samplePeriod = (opts.samplePeriodMs ?? 1000) / 1000;
  const step = (opts.stepMs ?? 50) / 1000;
  const limit = opts.timeLimitSec ?? 300;
  const pcShare = opts.postcopyGuestShare ?? 0.5;
  const deviceSec = (opts.deviceStateMs ?? 30) / 1000;
  const shareAt = opts.shareAt ?? speedShare;
  const postcopyEnabled = scn.postcopyEnabled ?? true;
  const ram = scn.ramMiB * MiB;
  const ws = scn.workingSetMiB * MiB;
  const rate = scn.dirtyMiBps * MiB;
  const zeroScan = (scn.zeroScanMiBps ?? 1024) * MiB;
  const zeroBytes = Math.max(0, scn.zeroMiB ?? scn.ramMiB - scn.workingSetMiB - 32) * MiB;

  const knobs: ThrottleKnobs = { ...QEMU_DEFAULTS.throttle, ...opts.knobs };
  let downtimeMs = opts.downtimeMs ?? QEMU_DEFAULTS.downtimeMs;
  let maxBandwidth = Infinity; // libvirt default: unlimited
  const bw = (): number => Math.min(scn.bandwidthMiBps, maxBandwidth) * MiB;

  type Phase = 'precopy' | 'postcopy' | 'done' | 'aborted';
  let phase = 'precopy' as Phase;
  let t = 0;
  let iteration = 1;
  let zeroLeft = zeroBytes;
  let normalLeft = ram - zeroBytes;
  let dirty = 0; // unique bytes dirtied since the last sync
  let transferred = 0;
  let zeroPages = 0;
  let normalPages = 0;
  let period = { start: 0, dirty: 0, xfer0: 0 };
  let trig: TriggerState = { highCount: 0, throttle: 0 };
  let dirtyRateStat = 0;
  let work = 0;
  let throttleSec = 0;
  let peak = 0;
  let downtimeTotal: number | null = null;
  let postcopyLeft = 0;
  let postcopyRequests = 0;
  let everPostcopy = false;
  let nextSample = 0;
  let finalEmitted = false;
  const rateWindow: { t: number; x: number }[] = [{ t: 0, x: 0 }];
  const timeline: TimelinePoint[] = [];
  const samples: MigrationSample[] = [];

  const active = (): boolean => phase === 'precopy' || phase === 'postcopy';

  // A bursty guest's writes by its own clock (its unthrottled progress, `work`): the working set at
  // burst speed at the start of each cycle of ws / rate seconds, then nothing.
  const burst = scn.burstMiBps !== undefined && rate > 0 ? Math.max(rate, scn.burstMiBps * MiB) : undefined;
  const cycle = ws / rate;
  const written = (g: number): number => {
    if (burst === undefined) return rate * g;
    const n = Math.floor(g / cycle);
    return n * ws + Math.min(ws, burst * (g - n * cycle));
  };

  const spells = scn.spells;
  const busy = (): boolean => spells === undefined || t % (spells.busySec + spells.quietSec) < spells.busySec;

  function run(tau: number): void {
    const share = phase === 'precopy' ? shareAt(trig.throttle) : pcShare;
    const before = work;
    work += share * tau;
    if (phase === 'precopy') {
      throttleSec += (trig.throttle / 100) * tau;
      if (busy()) dirty = Math.min(ws, dirty + (burst === undefined ? rate * share * tau : written(work) - written(before)));
    }
    t += tau;
  }

  function pause(sec: number): void {
    t += sec; // guest stopped: no work, no dirtying
  }

  function sync(): void {
    const newDirty = dirty;
    dirty = 0;
    iteration++;
    period.dirty += newDirty;
    if (t - period.start > 1) {
      const xfer = transferred - period.xfer0;
      dirtyRateStat = period.dirty / (t - period.start);
      if (opts.autoConverge) trig = evaluateTrigger(trig, knobs, period.dirty, xfer);
      peak = Math.max(peak, trig.throttle);
      period = { start: t, dirty: 0, xfer0: transferred };
    }
    const b = bw();
    if (newDirty <= (b * downtimeMs) / 1000) {
      const sec = newDirty / b + deviceSec;
      transferred += newDirty;
      pause(sec);
      downtimeTotal = sec * 1000;
      phase = 'done';
    } else {
      normalLeft = newDirty;
    }
  }

  function advance(dt: number): void {
    let budget = dt;
    let guard = 0;
    while (budget > 1e-9 && active() && guard++ < 10_000) {
      const b = bw();
      if (phase === 'postcopy') {
        const tau = Math.min(budget, postcopyLeft / b);
        postcopyLeft -= tau * b;
        transferred += tau * b;
        postcopyRequests += Math.ceil((tau * b) / PAGE / 64);
        run(tau);
        budget -= tau;
        if (postcopyLeft < 1) phase = 'done';
      } else if (zeroLeft >= 1) {
        const tau = Math.min(budget, zeroLeft / zeroScan);
        const pages = (tau * zeroScan) / PAGE;
        zeroLeft -= tau * zeroScan;
        zeroPages += pages;
        transferred += pages * ZERO_PAGE_WIRE;
        run(tau);
        budget -= tau;
      } else if (normalLeft >= 1) {
        const tau = Math.min(budget, normalLeft / b);
        normalLeft -= tau * b;
        transferred += tau * b;
        normalPages += (tau * b) / PAGE;
        run(tau);
        budget -= tau;
      } else {
        zeroLeft = 0;
        normalLeft = 0;
        sync();
      }
    }
  }

  function snapshot(): MigrationSample {
    while (rateWindow.length > 1 && t - (rateWindow[1] as { t: number }).t >= 0.1) rateWindow.shift();
    const w0 = rateWindow[0] as { t: number; x: number };
    const remaining = phase === 'postcopy' ? postcopyLeft : phase === 'precopy' ? zeroLeft + normalLeft : 0;
    const s: MigrationSample = {
      t: Math.round(t * 1000),
      jobType: phase === 'done' ? JobType.COMPLETED : phase === 'aborted' ? JobType.CANCELLED : JobType.UNBOUNDED,
      iteration,
      dataTotal: ram,
      dataProcessed: Math.round(transferred),
      dataRemaining: Math.round(remaining),
      memTotal: ram,
      memProcessed: Math.round(transferred),
      memRemaining: Math.round(remaining),
      zeroPages: Math.floor(zeroPages),
      normalPages: Math.floor(normalPages),
      pageSize: PAGE,
      dirtyRate: Math.round(dirtyRateStat),
      transferRate: t > w0.t ? Math.round((transferred - w0.x) / (t - w0.t)) : 0,
      throttlePercent: phase === 'precopy' ? trig.throttle : 0,
      postcopyRequests,
    };
    if (phase === 'done' && downtimeTotal !== null) s.downtimeMs = Math.round(downtimeTotal);
    samples.push(s);
    timeline.push({
      t: s.t / 1000,
      iteration,
      remainingMiB: remaining / MiB,
      throttle: s.throttlePercent,
      dirtyMiBps: dirtyRateStat / MiB,
      transferMiBps: s.transferRate / MiB,
    });
    return s;
  }

  return {
    next(): MigrationSample | null {
      if (!active()) {
        if (finalEmitted) return null;
        finalEmitted = true;
        return snapshot();
      }
      if (t >= limit) return null;
      while (t < nextSample - 1e-9 && active()) {
        advance(Math.min(step, nextSample - t));
        rateWindow.push({ t, x: transferred });
      }
      nextSample += samplePeriod;
      if (!active()) finalEmitted = true;
      return snapshot();
    },

    apply(a: Action): boolean {
      if (!active()) return false;
      switch (a.type) {
        case 'set-throttle':
          Object.assign(knobs, fromQmpParams(a.params));
          return true;
        case 'set-downtime':
          downtimeMs = a.ms;
          return true;
        case 'set-bandwidth':
          maxBandwidth = a.mibPerSec;
          return true;
        case 'postcopy':
          if (!postcopyEnabled || phase !== 'precopy') return false;
          postcopyLeft = Math.min(ram, zeroLeft > 0 ? normalLeft : normalLeft + dirty);
          phase = 'postcopy';
          everPostcopy = true;
          trig = { ...trig, throttle: 0 }; // throttling stops when the guest moves
          pause(0.05 + deviceSec);
          downtimeTotal = (0.05 + deviceSec) * 1000;
          return true;
        case 'abort':
          if (phase !== 'precopy') return false;
          phase = 'aborted';
          return true;
      }
    },

    get finished(): boolean {
      return !active() || t >= limit;
    },

    result(): EngineResult {
      const end = active() ? Math.max(t, limit) : t;
      return {
        scenario: scn.name,
        completed: phase === 'done',
        aborted: phase === 'aborted',
        postcopy: everPostcopy,
        timeSec: end,
        iterations: iteration,
        peakThrottle: peak,
        throttleSeconds: throttleSec,
        guestWorkShare: end > 0 ? work / end : 1,
        guestWorkLostSec: end - work,
        downtimeMs: phase === 'done' && downtimeTotal !== null ? Math.round(downtimeTotal) : null,
        sentMiB: transferred / MiB,
        timeline,
        samples,
      };
    },
  };
}
