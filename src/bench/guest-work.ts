// Guest work lost during a benchmark migration, counted the same way in every mode: seconds of
// unharmed work the guest did not do between a mark just before the migration and a reading after.
//  - dirtying guest: pages written (its progress block) against its unthrottled rate;
//  - Linux guest: stress-ng's own work windows on the serial console, each against the rate of its
//    step (a rate-limited stress-ng with CPU headroom loses nothing to a throttle that only eats idle
//    time; one that needs the CPU does). Windows are timed on the host as their lines appear.
import { kernelFailure, readGuestProgress, readGuestStatus, readLinuxWork, type WorkWindow } from '../lab/index.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A progress reading timed at the middle of its monitor round trip. */
export interface Reading {
  pages: bigint;
  t: number;
}

export async function reading(uri: string, name: string): Promise<Reading> {
  const a = performance.now();
  const pages = await readGuestProgress(uri, name);
  return { pages, t: (a + performance.now()) / 2 };
}

/** Pages per second the guest writes when nothing slows it, measured over `ms` once it runs and has
 *  touched its whole working set once (first writes fault host memory in and run slower). */
export async function baselineRate(uri: string, name: string, ms: number): Promise<number> {
  const deadline = performance.now() + 60_000;
  // the progress block appears once the kernel is up: read errors before that are expected
  for (;;) {
    const st = await readGuestStatus(uri, name).catch(() => null);
    if (st?.state === 'running' && st.passes >= 1) break;
    if (performance.now() > deadline) throw new Error(`${name}: guest never completed a pass over its working set`);
    await sleep(250);
  }
  const r0 = await reading(uri, name);
  await sleep(ms);
  const r1 = await reading(uri, name);
  return Number(r1.pages - r0.pages) / ((r1.t - r0.t) / 1000);
}

export interface WorkSoFar {
  /** host time covered, s */
  spanSec: number;
  /** seconds of unharmed work not done over the span */
  lostSec: number;
  /** work done / unharmed work, over the span */
  share: number;
}

export interface WorkMeter {
  /** Waits until the guest's workload runs, then measures its unharmed rate where it runs now. */
  calibrate(uri: string): Promise<void>;
  /** Marks the start of the span (at a work-window boundary for the Linux guest). */
  mark(uri: string): Promise<void>;
  /** Work lost since the mark, read on the host that runs the guest now. */
  soFar(uri: string): Promise<WorkSoFar>;
  /** The final count: for the Linux guest, waits for the window that holds the end. */
  finish(uri: string): Promise<WorkSoFar>;
  /** The unharmed rate measured again where the guest runs now (units of rateBefore), or null. */
  rateAfter(uri: string): Promise<number | null>;
  /** What went wrong inside the guest (a kernel panic after the migration), or null. */
  failure(): Promise<string | null>;
  /** The unharmed rate measured by calibrate(), MiB/s (dirtying) or MB/s (Linux). */
  rateBefore(): number;
  stop(): void;
}

const PAGES_PER_MIB = 256;

export function dirtyingMeter(name: string): WorkMeter {
  let rate = 0;
  let after: number | null = null;
  let r0: Reading | null = null;
  const count = async (uri: string, unharmed: number): Promise<WorkSoFar> => {
    if (!r0 || unharmed <= 0) throw new Error(`${name}: work meter not marked`);
    const r1 = await reading(uri, name);
    const span = (r1.t - r0.t) / 1000;
    const share = Number(r1.pages - r0.pages) / (unharmed * span);
    return { spanSec: span, lostSec: span * (1 - share), share };
  };
  return {
    async calibrate(uri) {
      rate = await baselineRate(uri, name, 3000);
    },
    async mark(uri) {
      r0 = await reading(uri, name);
    },
    soFar: (uri) => count(uri, rate),
    // A TCG guest's unthrottled rate is CPU-bound and drifts with the machine's load (seen: 411 before
    // and 693 MiB/s after one migration): the final count is against the mean of the rates measured
    // just before and just after, not the one before alone.
    async finish(uri) {
      const r = await count(uri, rate);
      after = await baselineRate(uri, name, 3000);
      const unharmed = (rate + after) / 2;
      const share = (r.share * rate) / unharmed;
      return { spanSec: r.spanSec, lostSec: r.spanSec * (1 - share), share };
    },
    async rateAfter(uri) {
      return (after ?? (await baselineRate(uri, name, 3000))) / PAGES_PER_MIB;
    },
    rateBefore: () => rate / PAGES_PER_MIB,
    failure: async () => null,
    stop() {},
  };
}

/** Poll interval of the serial log, ms: the error it adds to a window's host time. */
const POLL_MS = 100;
/** Windows of heavy steps needed before the mark to know the guest's unharmed share of its target. */
const CALIBRATION_WINDOWS = 2;

/** Below this share of its target, unharmed, stress-ng's reports say nothing about work. */
const MIN_UNHARMED_SHARE = 0.5;

interface SeenWindow extends WorkWindow {
  /** host time the line was first seen, performance.now() ms */
  seenAt: number;
}

/** Unharmed seconds a window's work stands for: an idle window counts its (guest) length; a heavy
 *  one its work at the step's unharmed rate (target x the share stress-ng reaches when unharmed). */
export function unharmedSeconds(w: WorkWindow, unharmedShare: number): number {
  if (w.targetMB <= 0) return w.durationSec;
  return w.workMB / (w.targetMB * unharmedShare);
}

/** Work lost over windows (after a mark) ending by host time `endAt`, counted from `markAt`. */
export function linuxLoss(windows: readonly SeenWindow[], markAt: number, endAt: number, unharmedShare: number): WorkSoFar {
  const span = Math.max(0, (endAt - markAt) / 1000);
  const done = windows.reduce((s, w) => s + unharmedSeconds(w, unharmedShare), 0);
  const expected = windows.reduce((s, w) => s + (w.targetMB > 0 ? w.durationSec : 0), 0);
  const heavyDone = windows.reduce((s, w) => s + (w.targetMB > 0 ? unharmedSeconds(w, unharmedShare) : 0), 0);
  return { spanSec: span, lostSec: span - done, share: expected > 0 ? heavyDone / expected : 1 };
}

/**
 * @param windowSec the guest's work window, s
 * @param markAtWindow mark at the end of this window (phases and bursts line up in every mode)
 */
export function linuxMeter(name: string, serialLog: string, windowSec: number, markAtWindow?: number): WorkMeter {
  const seen: SeenWindow[] = [];
  let share = 1;
  let calibrated = 0;
  let markAt = 0;
  let markSeq = -1;
  let stopped = false;
  const poll = async (): Promise<void> => {
    const { windows } = await readLinuxWork(serialLog);
    const now = performance.now();
    for (const w of windows) if (!seen.some((s) => s.seq === w.seq)) seen.push({ ...w, seenAt: now });
  };
  let timer: NodeJS.Timeout | null = null;
  const loop = (): void => {
    if (stopped) return;
    void poll().finally(() => {
      if (!stopped) timer = setTimeout(loop, POLL_MS);
    });
  };
  const after = (): SeenWindow[] => seen.filter((w) => w.seq > markSeq);
  const waitFor = async (test: () => boolean, what: string, ms: number): Promise<void> => {
    const deadline = performance.now() + ms;
    while (!test()) {
      if (performance.now() > deadline) throw new Error(`${name}: ${what} within ${ms / 1000} s`);
      await sleep(POLL_MS);
    }
  };
  return {
    async calibrate() {
      loop();
      await waitFor(() => seen.length >= 1, 'no work window', 120_000);
      // the share of its target stress-ng reaches unharmed, from steady heavy windows (1 when the
      // plan starts idle: rate-limited stress-ng reaches its target, measured at 30.0 of 30 MB/s)
      const first = seen[0]!;
      if (first.targetMB > 0) {
        await waitFor(() => seen.filter((w) => w.targetMB > 0).length >= CALIBRATION_WINDOWS + 1, 'too few work windows', 120_000);
        const heavy = seen.filter((w) => w.targetMB > 0).slice(1);
        const shares = heavy.map((w) => w.rateMB / w.targetMB).sort((a, b) => a - b);
        share = Math.min(1, shares[shares.length >> 1]!);
        // stress-ng reports 0 for methods it did not finish within the window
        if (share < MIN_UNHARMED_SHARE) throw new Error(`${name}: stress-ng reached only ${(share * 100).toFixed(0)} % of its target rate unharmed (window too short for the working set?)`);
      }
      calibrated = heavyRate(seen);
    },
    async mark() {
      // at a window boundary, so every window counted lies inside the span
      const last = seen.at(-1)?.seq ?? 0;
      const at = markAtWindow ?? last + 1;
      if (last >= at) throw new Error(`${name}: window ${at} to start at had passed before the mark (at ${last})`);
      await waitFor(() => (seen.at(-1)?.seq ?? 0) >= at, `no work window ${at}`, 120_000);
      const w = seen.at(-1)!;
      markSeq = w.seq;
      markAt = w.seenAt;
    },
    async soFar() {
      const ws = after();
      const endAt = ws.at(-1)?.seenAt ?? markAt;
      return linuxLoss(ws, markAt, endAt, share);
    },
    async finish() {
      // up to the window that holds the end; when the guest never reports again (it panicked on the
      // destination), up to the last window it completed before the end
      const end = performance.now();
      await waitFor(() => seen.some((w) => w.seenAt > end), '', (windowSec + 5) * 1000).catch(() => {});
      const ws = after();
      const last = ws.find((w) => w.seenAt > end) ?? ws.filter((w) => w.seenAt <= end).at(-1);
      if (!last) return { spanSec: 0, lostSec: 0, share: 1 };
      return linuxLoss(ws.filter((w) => w.seq <= last.seq), markAt, last.seenAt, share);
    },
    async failure() {
      // the log holds this boot only (the lab starts it afresh per guest)
      return kernelFailure(serialLog);
    },
    async rateAfter() {
      return heavyRate(after().slice(-3)) || null;
    },
    rateBefore: () => calibrated,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}

/** Mean write rate of the heavy windows, MB/s (0 when none). */
function heavyRate(windows: readonly WorkWindow[]): number {
  const heavy = windows.filter((w) => w.targetMB > 0);
  return heavy.length === 0 ? 0 : heavy.reduce((s, w) => s + w.rateMB, 0) / heavy.length;
}
