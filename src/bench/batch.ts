// N guests migrated from a to b, either all at once or one at a time, for the concurrency benchmark.
// All N guests are booted before either way starts and run throughout, so the CPU they compete for is
// the same in both; each guest's work lost is counted over its own migration, against its rate
// measured just before the batch (with the other guests running).
import type { MigrateParams } from '../api/params.js';
import { isMigrationActive, type MigrationStatus } from '../api/results.js';
import { AgentClient } from '../client/client.js';
import { readTlsPaths, type TlsPaths } from '../client/tls.js';
import { defineGuest, destroyGuest, type LabHostInfo } from '../lab/index.js';
import { baselineRate, reading, sleep, type Reading } from './guest-work.js';
import type { Scenario } from './run-migration.js';

export type BatchMode = 'sequential' | 'concurrent';

export interface GuestRun {
  vm: string;
  state: string;
  seconds: number;
  workLostSec: number;
  downtimeMs: number | null;
  /** time it waited in the agent's queue (state queued), s */
  queuedSec: number;
}

export interface BatchResult {
  guests: number;
  mode: BatchMode;
  /** from the first VM.migrate to the last end */
  totalSec: number;
  /** summed over the guests */
  workLostSec: number;
  completed: number;
  runs: GuestRun[];
}

export interface BatchOptions {
  a: LabHostInfo;
  b: LabHostInfo;
  tls: TlsPaths;
  scenario: Scenario;
  guests: number;
  mode: BatchMode;
  /** a guest not done after this long is cancelled, s */
  limitS: number;
  tag: string;
  params?: Partial<MigrateParams>;
  /** called once every migration of a concurrent batch has been asked for, with the VM names */
  onStarted?: (vms: string[]) => void;
  /** called as each guest's migration ends */
  onGuestEnd?: (run: GuestRun) => void;
}

interface Guest {
  vm: string;
  rate: number;
}

/** One guest's migration, followed to its end by polling (the probe measures the agent meanwhile). */
async function migrateOne(client: AgentClient, o: BatchOptions, g: Guest, r0: Reading, t0: number): Promise<GuestRun> {
  await client.migrate({ vmId: g.vm, dst: o.b.agentUrl!, bandwidth: o.scenario.bandwidth, ...o.params });
  let s: MigrationStatus = await client.migrateStatus({ vmId: g.vm });
  let queuedMs = 0;
  let last = performance.now();
  while (isMigrationActive(s.state)) {
    if (performance.now() - t0 > o.limitS * 1000) {
      s = await client.migrateCancel({ vmId: g.vm });
      break;
    }
    await sleep(250);
    if (s.state === 'queued') queuedMs += performance.now() - last;
    last = performance.now();
    s = await client.migrateStatus({ vmId: g.vm });
  }
  const seconds = (performance.now() - t0) / 1000;
  const where = s.state === 'completed' ? o.b : o.a;
  const r1 = await reading(where.libvirtUri, g.vm);
  const span = (r1.t - r0.t) / 1000;
  const work = Number(r1.pages - r0.pages) / (g.rate * span);
  return {
    vm: g.vm,
    state: s.state,
    seconds: Number(seconds.toFixed(1)),
    workLostSec: Number((span * (1 - work)).toFixed(1)),
    downtimeMs: s.downtimeMs,
    queuedSec: Number((queuedMs / 1000).toFixed(1)),
  };
}

export async function runBatch(o: BatchOptions): Promise<BatchResult> {
  const sc = o.scenario;
  const names = Array.from({ length: o.guests }, (_, i) => `conc-${o.tag}-${i + 1}`);
  await Promise.all(names.map((vm) => defineGuest({ host: 'a', name: vm, ramMiB: sc.ramMiB, wsMiB: sc.wsMiB, rateMiB: sc.rateMiB })));
  const client = await AgentClient.connect(o.a.agentUrl!, { tls: readTlsPaths(o.tls) });
  const runs: GuestRun[] = [];
  try {
    // one after the other: each measured while all the others run
    const guests: Guest[] = [];
    for (const vm of names) guests.push({ vm, rate: await baselineRate(o.a.libvirtUri, vm, 3000) });
    const t0 = performance.now();
    if (o.mode === 'concurrent') {
      const starts = await Promise.all(guests.map((g) => reading(o.a.libvirtUri, g.vm)));
      const batch = guests.map((g, i) => migrateOne(client, o, g, starts[i]!, performance.now()).then((r) => (o.onGuestEnd?.(r), r)));
      o.onStarted?.(names);
      runs.push(...(await Promise.all(batch)));
    } else {
      for (const g of guests) runs.push(await migrateOne(client, o, g, await reading(o.a.libvirtUri, g.vm), performance.now()));
    }
    const totalSec = (performance.now() - t0) / 1000;
    return {
      guests: o.guests,
      mode: o.mode,
      totalSec: Number(totalSec.toFixed(1)),
      workLostSec: Number(runs.reduce((sum, r) => sum + r.workLostSec, 0).toFixed(1)),
      completed: runs.filter((r) => r.state === 'completed').length,
      runs,
    };
  } finally {
    await client.close();
    for (const vm of names) {
      await destroyGuest(o.a.libvirtUri, vm).catch(() => {});
      await destroyGuest(o.b.libvirtUri, vm).catch(() => {});
    }
  }
}
