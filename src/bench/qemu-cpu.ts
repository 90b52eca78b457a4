// CPU time the two QEMU processes of one migration spend outside the guest's vCPUs, read from /proc:
// on the source the migration thread and main loop (where the stream is written, and encrypted with
// TLS), on the destination the main loop's incoming coroutine (where it is read and decrypted).
// vCPU threads are left out so that a throttled or resumed guest does not count.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Watch } from './run-migration.js';

/** Linux reports utime/stime in USER_HZ ticks, 100 per second on every architecture's ABI. */
const TICKS_PER_SECOND = 100;
const VCPU_THREAD = /^CPU \d+\/(TCG|KVM)$/;

export interface QemuCpu {
  /** source QEMU, from just before VM.migrate to its last reading before it exited */
  sourceSec: number;
  /** destination QEMU, from its start (incoming) to the end of the migration */
  destinationSec: number;
}

/** utime + stime in seconds from a /proc stat line (fields after the parenthesised comm). */
function cpuSeconds(stat: string): number {
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND;
}

/**
 * The process's CPU time (its exited threads included) minus that of its vCPU threads. null when it is
 * gone, or when a vCPU thread seen before has exited: the process is shutting down and the vCPU's time
 * now sits in the total, where it can no longer be told apart.
 */
async function nonVcpuSeconds(pid: number, vcpus: Set<string>): Promise<number | null> {
  try {
    let total = cpuSeconds(await readFile(`/proc/${pid}/stat`, 'utf8'));
    const tids = await readdir(`/proc/${pid}/task`);
    if ([...vcpus].some((tid) => !tids.includes(tid))) return null;
    for (const tid of tids) {
      const task = join('/proc', String(pid), 'task', tid);
      const comm = (await readFile(join(task, 'comm'), 'utf8').catch(() => '')).trim();
      if (!VCPU_THREAD.test(comm)) continue;
      const stat = await readFile(join(task, 'stat'), 'utf8').catch(() => null);
      if (stat === null) return null; // it exited between the two reads
      vcpus.add(tid);
      total -= cpuSeconds(stat);
    }
    return total;
  } catch {
    return null;
  }
}

async function pidFrom(file: string): Promise<number | null> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return /^\d+$/.test(text.trim()) ? Number(text.trim()) : null;
}

/**
 * Samples both QEMUs every `intervalMs` until stopped; the last reading of each counts (the source
 * exits when the migration completes, so up to one interval of its end is missed, alike in every run).
 * `pidFile` gives libvirt's pid file of the domain on a lab host.
 */
export function watchQemuCpu(sourcePidFile: string, destinationPidFile: string, intervalMs = 100): Watch & { result(): QemuCpu } {
  let sourceStart: number | null = null;
  let sourceLast: number | null = null;
  let destinationLast = 0;
  let destinationPid: number | null = null;
  const sourceVcpus = new Set<string>();
  const destinationVcpus = new Set<string>();
  let ticking: Promise<void> = Promise.resolve();
  let stopped = false;

  const tick = async (): Promise<void> => {
    const src = await pidFrom(sourcePidFile);
    const s = src === null ? null : await nonVcpuSeconds(src, sourceVcpus);
    if (s !== null) {
      sourceStart ??= s;
      sourceLast = s;
    }
    destinationPid ??= await pidFrom(destinationPidFile);
    const d = destinationPid === null ? null : await nonVcpuSeconds(destinationPid, destinationVcpus);
    if (d !== null) destinationLast = d;
  };
  ticking = tick();
  const timer = setInterval(() => {
    ticking = ticking.then(() => (stopped ? undefined : tick()));
  }, intervalMs);
  timer.unref();

  return {
    async stop() {
      clearInterval(timer);
      await ticking;
      await tick(); // the destination's final state; the source is usually gone by now
      stopped = true;
    },
    result: () => ({
      sourceSec: Number(((sourceLast ?? 0) - (sourceStart ?? 0)).toFixed(2)),
      destinationSec: Number(destinationLast.toFixed(2)),
    }),
  };
}
