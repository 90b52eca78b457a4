// One benchmark migration on the lab, shared by the benchmarks: boot a guest on a (the dirtying guest,
// or the real Linux guest), measure its unharmed work rate, migrate it to b through the agent under one
// mode, and measure time, data sent and guest work lost (./guest-work.ts).
import type { EstimateResult } from '../api/estimate.js';
import type { MigrateParams } from '../api/params.js';
import { isMigrationActive, type MigrationStatus } from '../api/results.js';
import { AgentClient } from '../client/client.js';
import { readTlsPaths, type TlsPaths } from '../client/tls.js';
import { completionTimeoutMs, resolvePolicy } from '../controller/index.js';
import { defineGuest, defineLinuxGuest, destroyGuest, type LabHostInfo, type LinuxLoad } from '../lab/index.js';
import { dirtyingMeter, linuxMeter, sleep, type WorkMeter } from './guest-work.js';
import type { Point, RunResult } from './report.js';

export interface Scenario {
  name: string;
  /** the dirtying guest (default) or the real Linux guest (Debian kernel, stress-ng) */
  kind?: 'dirtying' | 'linux';
  ramMiB: number;
  wsMiB: number;
  /** dirtying guest: MiB/s; Linux guest: stress-ng's write rate of its heavy steps, MB/s */
  rateMiB: number;
  bandwidth: number;
  /** Linux guest: steady, phases or bursty, with the lengths of its steps */
  load?: LinuxLoad;
  idleSec?: number;
  heavySec?: number;
  /** Linux guest: work window, s (default: linux-plan.ts's, long enough for 3 rewrites) */
  windowSec?: number;
  /** Linux guest: start the migration at the end of this work window (lines up phases and bursts
   *  in every mode); default: the next window after calibration */
  markAtWindow?: number;
  /** what the scenario shows, one line */
  about?: string;
}

export type ModeName = 'none' | 'stock' | 'controller' | 'fixed';

export interface Mode {
  name: ModeName;
  label: string;
  params: Partial<MigrateParams>;
  /** fixed: QEMU auto-converge with initial = max = this throttle, % */
  throttle?: number;
}

export const SCENARIOS: Scenario[] = [
  { name: 'light', ramMiB: 512, wsMiB: 64, rateMiB: 20, bandwidth: 100, about: 'dirtying guest, 64 MiB at 20 MiB/s: converges without a throttle' },
  { name: 'moderate', ramMiB: 1024, wsMiB: 256, rateMiB: 150, bandwidth: 100, about: 'dirtying guest, 256 MiB at 150 MiB/s' },
  { name: 'heavy', ramMiB: 1024, wsMiB: 512, rateMiB: 400, bandwidth: 100, about: 'dirtying guest, 512 MiB at 400 MiB/s' },
  { name: 'extreme', ramMiB: 1024, wsMiB: 768, rateMiB: 800, bandwidth: 50, about: 'dirtying guest, 768 MiB at 800 MiB/s over 50 MiB/s' },
  { name: 'linux-light', kind: 'linux', ramMiB: 512, wsMiB: 64, rateMiB: 25, bandwidth: 100, about: 'real Linux guest, stress-ng rewriting 64 MiB at 25 MB/s: converges without a throttle' },
  // stress-ng is rate-limited: it has CPU to spare (about 1300 MB/s unlimited here), so a throttle
  // costs it work only beyond about 70 %
  { name: 'linux-heavy', kind: 'linux', ramMiB: 512, wsMiB: 128, rateMiB: 400, bandwidth: 40, windowSec: 3, about: 'real Linux guest, stress-ng rewriting 128 MiB at 400 MB/s over a 40 MiB/s link: needs a throttle' },
  {
    name: 'linux-phases', kind: 'linux', load: 'phases', ramMiB: 1024, wsMiB: 128, rateMiB: 400, bandwidth: 40, windowSec: 3, idleSec: 18, heavySec: 40, markAtWindow: 5,
    // idle long enough for VM.estimateMigration (up to ~8 s when the agent's sampler is measuring too)
    // to finish before the mark
    about: 'real Linux guest, idle 18 s, then 400 MB/s over 128 MiB for 40 s, then idle, over a 40 MiB/s link; the migration starts about 3 s before the heavy phase, which begins within its first passes',
  },
  {
    name: 'linux-bursty', kind: 'linux', load: 'bursty', ramMiB: 512, wsMiB: 128, rateMiB: 400, bandwidth: 40, windowSec: 3, heavySec: 9, idleSec: 6, markAtWindow: 10,
    about: 'real Linux guest, bursts of 400 MB/s over 128 MiB for 9 s with 6 s idle between, over a 40 MiB/s link; the migration starts with the third burst, once the agent has watched two',
  },
];

export const MODES: Mode[] = [
  { name: 'none', label: 'no auto-converge', params: { autoConverge: false, policy: 'stock' } },
  { name: 'stock', label: 'stock auto-converge 20/10', params: { policy: 'stock' } },
  { name: 'controller', label: 'vmigrate controller', params: {} },
];

/** QEMU auto-converge held at one throttle: initial = max = T (0: plain pre-copy, as QEMU takes no
 *  initial throttle below 1). max is set with VM.migrateChangeParams right after the start, long
 *  before QEMU's first trigger (end of pass 2). */
export function fixedMode(throttle: number): Mode {
  if (throttle === 0) return { ...MODES[0]!, name: 'fixed', label: 'fixed 0 % (no auto-converge)', throttle: 0 };
  return { name: 'fixed', label: `fixed ${throttle} %`, throttle, params: { policy: 'stock', autoConvergeInitial: throttle, autoConvergeIncrement: 1 } };
}

/** The time budget the oracle is judged by: the default policy's completion timeout for this RAM, s
 *  (the agent aborts every migration, stock included, at that point). */
export function budgetSec(sc: Scenario): number {
  return completionTimeoutMs(resolvePolicy(undefined), sc.ramMiB * 1024 * 1024) / 1000;
}

/** Something watched while one migration runs (e.g. CPU time); started just before VM.migrate. */
export interface Watch {
  stop(): Promise<void>;
}

export interface RunExtras {
  /** more VM.migrate parameters (e.g. tls) */
  params?: Partial<MigrateParams>;
  /** appended to the guest's name */
  suffix?: string;
  watch?: (vmName: string) => Watch;
  /** stop the run once it has lost more guest work than this, s (it can no longer be the oracle) */
  cutAboveLossSec?: number;
  /** ask VM.estimateMigration before the migration (its forecast lands in the result) */
  estimate?: boolean;
}

/** How often a run that may be cut reads its work lost so far, ms. */
const CUT_CHECK_MS = 2000;

async function bootGuest(a: LabHostInfo, sc: Scenario, name: string): Promise<WorkMeter> {
  if (sc.kind === 'linux') {
    const info = await defineLinuxGuest({
      host: 'a', name, ramMiB: sc.ramMiB, wsMiB: sc.wsMiB, rateMiB: sc.rateMiB, load: sc.load ?? 'steady',
      ...(sc.idleSec !== undefined ? { idleSec: sc.idleSec } : {}),
      ...(sc.heavySec !== undefined ? { heavySec: sc.heavySec } : {}),
      ...(sc.windowSec !== undefined ? { windowSec: sc.windowSec } : {}),
    });
    return linuxMeter(name, info.serialLog, info.workload.windowSec, sc.markAtWindow);
  }
  await defineGuest({ host: 'a', name, ramMiB: sc.ramMiB, wsMiB: sc.wsMiB, rateMiB: sc.rateMiB });
  return dirtyingMeter(name);
}

/** Polls the migration to its end; cancels it past the limit or once it lost more than `cutAbove`. */
async function follow(client: AgentClient, name: string, meter: WorkMeter, a: LabHostInfo, t0: number, limitS: number, cutAbove?: number): Promise<{ status: MigrationStatus; dominated: boolean }> {
  let s = await client.migrateStatus({ vmId: name });
  let lastCheck = t0;
  while (isMigrationActive(s.state)) {
    const now = performance.now();
    if (now - t0 > limitS * 1000) return { status: await client.migrateCancel({ vmId: name }), dominated: false };
    if (cutAbove !== undefined && now - lastCheck >= CUT_CHECK_MS) {
      lastCheck = now;
      // the guest is on a until the migration completes
      const so = await meter.soFar(a.libvirtUri).catch(() => null);
      if (so && so.lostSec > cutAbove) {
        const status = await client.migrateCancel({ vmId: name }).catch(() => s);
        if (status.state !== 'completed') return { status, dominated: true };
        return { status, dominated: false };
      }
    }
    await sleep(500);
    s = await client.migrateStatus({ vmId: name });
  }
  return { status: s, dominated: false };
}

export async function runOne(a: LabHostInfo, b: LabHostInfo, tls: TlsPaths, sc: Scenario, mode: Mode, limitS: number, extras: RunExtras = {}): Promise<RunResult> {
  const name = `bench-${sc.name}-${mode.name}${mode.throttle !== undefined ? mode.throttle : ''}${extras.suffix ?? ''}`;
  const meter = await bootGuest(a, sc, name);
  const client = await AgentClient.connect(a.agentUrl!, { tls: readTlsPaths(tls) });
  const timeline: Point[] = [];
  let where = a;
  try {
    await meter.calibrate(a.libvirtUri);
    await client.subscribe({ topics: ['migration.progress'] });
    client.on('notification', (n) => {
      const s = n.params as MigrationStatus;
      if (s.vmName === name) timeline.push({ t: s.elapsedMs / 1000, throttle: s.throttlePercent, remainingMiB: s.dataRemaining / 1048576 });
    });
    let estimate: EstimateResult | undefined;
    if (extras.estimate) estimate = await client.estimateMigration({ vmId: name, bandwidth: sc.bandwidth });
    await meter.mark(a.libvirtUri);
    const watch = extras.watch?.(name);
    const t0 = performance.now();
    await client.migrate({ vmId: name, dst: b.agentUrl!, bandwidth: sc.bandwidth, ...mode.params, ...extras.params });
    if (mode.throttle) await client.migrateChangeParams({ vmId: name, maxThrottle: mode.throttle });
    const { status: s, dominated } = await follow(client, name, meter, a, t0, limitS, extras.cutAboveLossSec);
    const elapsed = (performance.now() - t0) / 1000;
    await watch?.stop();
    where = s.state === 'completed' ? b : a;
    const work = await meter.finish(where.libvirtUri);
    const guestFailure = await meter.failure();
    const after = guestFailure ? null : await meter.rateAfter(where.libvirtUri);
    let throttleSeconds = 0;
    for (let i = 1; i < timeline.length; i += 1) {
      throttleSeconds += (timeline[i - 1]!.throttle / 100) * (timeline[i]!.t - timeline[i - 1]!.t);
    }
    return {
      scenario: sc.name,
      mode: mode.name,
      ...(mode.throttle !== undefined ? { throttle: mode.throttle } : {}),
      completed: s.state === 'completed',
      state: s.state,
      ...(dominated ? { dominated: true } : {}),
      seconds: Number(elapsed.toFixed(1)),
      iterations: s.iteration,
      peakThrottle: Math.max(0, ...timeline.map((p) => p.throttle)),
      throttleSeconds: Number(throttleSeconds.toFixed(1)),
      guestWork: Number(work.share.toFixed(3)),
      workLostSec: Number(work.lostSec.toFixed(1)),
      baselineMiBps: Math.round(meter.rateBefore()),
      afterMiBps: after === null ? null : Math.round(after),
      downtimeMs: s.downtimeMs,
      tls: s.tls,
      ...(s.error ? { error: `${s.error.name}: ${s.error.message}` } : {}),
      ...(guestFailure ? { guestFailure } : {}),
      sentMiB: Math.round(s.dataProcessed / 1048576),
      actions: s.actions.length,
      ...(estimate ? { estimate: { predicted: estimate.prediction, stock: estimate.stock, dirtyRateMiBps: estimate.measured.dirtyRateMiBps, workingSetMiB: estimate.measured.workingSetMiB, ...(estimate.measured.residentMiB !== undefined ? { residentMiB: estimate.measured.residentMiB } : {}), convergesWithoutThrottle: estimate.convergesWithoutThrottle } } : {}),
      timeline,
    };
  } finally {
    meter.stop();
    await client.close();
    await destroyGuest(where.libvirtUri, name).catch(() => {});
    await destroyGuest((where === a ? b : a).libvirtUri, name).catch(() => {});
  }
}
