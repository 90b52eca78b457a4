// The host's CPU load as the evacuation plan needs it (src/evacuation/host-load.ts): how many threads
// want a CPU (the kernel's procs_running, sampled), and each guest's part of that (its CPU time).
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { guestDemand, type HostLoad, type HostLoadSample } from '../evacuation/host-load.js';
import type { Domain } from '../libvirt/types.js';

/** How long the load is sampled, and how often: procs_running is an instant reading. */
export const LOAD_SAMPLE_MS = 2000;
const LOAD_EVERY_MS = 100;

/** procs_running from /proc/stat's text (pure); null when absent. */
export function procsRunning(stat: string): number | null {
  const m = /^procs_running\s+(\d+)$/m.exec(stat);
  return m ? Number(m[1]) : null;
}

/**
 * Samples the host for `ms`: the average number of runnable threads (less this one, which is running
 * as it reads), and each domain's part of it (guestDemand, from its CPU time). Null when /proc/stat
 * gives no reading.
 */
export async function sampleHostLoad(domains: readonly Domain[], ms = LOAD_SAMPLE_MS): Promise<HostLoadSample | null> {
  const cpuNs = async () => Promise.all(domains.map((d) => d.getInfo().then((i) => i.cpuTimeNs, () => null)));
  const t0 = performance.now();
  const before = await cpuNs();
  const readings: number[] = [];
  while (performance.now() - t0 < ms) {
    const n = procsRunning(await readFile('/proc/stat', 'utf8').catch(() => ''));
    if (n !== null) readings.push(Math.max(0, n - 1));
    await sleep(LOAD_EVERY_MS);
  }
  const after = await cpuNs();
  const sec = (performance.now() - t0) / 1000;
  if (readings.length === 0) return null;
  const load: HostLoad = { cores: availableParallelism(), runnable: readings.reduce((a, b) => a + b, 0) / readings.length };
  const demand = new Map<string, number>();
  domains.forEach((d, i) => {
    const a = before[i];
    const b = after[i];
    if (a != null && b != null) demand.set(d.uuid, guestDemand((b - a) / 1e9 / sec, load));
  });
  return { load, demand };
}
