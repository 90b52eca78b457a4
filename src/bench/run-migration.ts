// One benchmark migration on the lab, shared by the benchmarks: boot a dirtying guest on a, measure its
// unthrottled rate, migrate it to b through the agent, and measure time, data sent and guest work lost.
import type { MigrateParams } from '../api/params.js';
import { isMigrationActive, type MigrationStatus } from '../api/results.js';
import { AgentClient } from '../client/client.js';
import { readTlsPaths, type TlsPaths } from '../client/tls.js';
import { defineGuest, destroyGuest, readGuestProgress, readGuestStatus, type LabHostInfo } from '../lab/index.js';
import type { Point, RunResult } from './report.js';

export interface Scenario {
  name: string;
  ramMiB: number;
  wsMiB: number;
  rateMiB: number;
  bandwidth: number;
}

export interface Mode {
  name: 'none' | 'stock' | 'controller';
  label: string;
  params: Partial<MigrateParams>;
}

export const SCENARIOS: Scenario[] = [
  { name: 'light', ramMiB: 512, wsMiB: 64, rateMiB: 20, bandwidth: 100 },
  { name: 'moderate', ramMiB: 1024, wsMiB: 256, rateMiB: 150, bandwidth: 100 },
  { name: 'heavy', ramMiB: 1024, wsMiB: 512, rateMiB: 400, bandwidth: 100 },
  { name: 'extreme', ramMiB: 1024, wsMiB: 768, rateMiB: 800, bandwidth: 50 },
];

export const MODES: Mode[] = [
  { name: 'none', label: 'no auto-converge', params: { autoConverge: false, policy: 'stock' } },
  { name: 'stock', label: 'stock auto-converge 20/10', params: { policy: 'stock' } },
  { name: 'controller', label: 'vmigrate controller', params: {} },
];

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
}

export async function runOne(a: LabHostInfo, b: LabHostInfo, tls: TlsPaths, sc: Scenario, mode: Mode, limitS: number, extras: RunExtras = {}): Promise<RunResult> {
  const name = `bench-${sc.name}-${mode.name}${extras.suffix ?? ''}`;
  await defineGuest({ host: 'a', name, ramMiB: sc.ramMiB, wsMiB: sc.wsMiB, rateMiB: sc.rateMiB });
  const rate = await baselineRate(a.libvirtUri, name, 3000);
  const client = await AgentClient.connect(a.agentUrl!, { tls: readTlsPaths(tls) });
  const timeline: Point[] = [];
  try {
    await client.subscribe({ topics: ['migration.progress'] });
    client.on('notification', (n) => {
      const s = n.params as MigrationStatus;
      if (s.vmName === name) timeline.push({ t: s.elapsedMs / 1000, throttle: s.throttlePercent, remainingMiB: s.dataRemaining / 1048576 });
    });
    const r0 = await reading(a.libvirtUri, name);
    const watch = extras.watch?.(name);
    const t0 = performance.now();
    await client.migrate({ vmId: name, dst: b.agentUrl!, bandwidth: sc.bandwidth, ...mode.params, ...extras.params });
    let s = await client.migrateStatus({ vmId: name });
    while (isMigrationActive(s.state)) {
      if (performance.now() - t0 > limitS * 1000) {
        s = await client.migrateCancel({ vmId: name });
        break;
      }
      await sleep(500);
      s = await client.migrateStatus({ vmId: name });
    }
    const elapsed = (performance.now() - t0) / 1000;
    await watch?.stop();
    const where = s.state === 'completed' ? b : a;
    // work over exactly the span between the two readings (the guest runs unthrottled after the end)
    const r1 = await reading(where.libvirtUri, name);
    const span = (r1.t - r0.t) / 1000;
    const work = Number(r1.pages - r0.pages) / (rate * span);
    const after = await baselineRate(where.libvirtUri, name, 3000);
    let throttleSeconds = 0;
    for (let i = 1; i < timeline.length; i += 1) {
      throttleSeconds += (timeline[i - 1]!.throttle / 100) * (timeline[i]!.t - timeline[i - 1]!.t);
    }
    await destroyGuest(where.libvirtUri, name);
    return {
      scenario: sc.name,
      mode: mode.name,
      completed: s.state === 'completed',
      state: s.state,
      seconds: Number(elapsed.toFixed(1)),
      iterations: s.iteration,
      peakThrottle: Math.max(0, ...timeline.map((p) => p.throttle)),
      throttleSeconds: Number(throttleSeconds.toFixed(1)),
      guestWork: Number(work.toFixed(3)),
      workLostSec: Number((span * (1 - work)).toFixed(1)),
      baselineMiBps: Math.round(rate / 256),
      afterMiBps: Math.round(after / 256),
      downtimeMs: s.downtimeMs,
      tls: s.tls,
      ...(s.error ? { error: `${s.error.name}: ${s.error.message}` } : {}),
      sentMiB: Math.round(s.dataProcessed / 1048576),
      actions: s.actions.length,
      timeline,
    };
  } finally {
    await client.close();
  }
}

