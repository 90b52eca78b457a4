// How fast a migration stream can go on a busy source host (pure). QEMU's migration thread scans,
// encrypts and sends pages on one core; on a host whose cores are all taken by guests it gets only
// its fair part of a core, and the stream then moves less than its share of the link. Several
// streams side by side each bring a thread of their own, so together they get more of the host's
// CPU: on a loaded host, running migrations in parallel is faster even on one link. The evacuation
// plan (./plan.ts) forecasts each migration at the rate this gives.

/** The source host as measured before the evacuation. */
export interface HostLoad {
  /** CPUs the host schedules on */
  cores: number;
  /** threads that wanted a CPU, on average over the measurement (the measuring thread not counted) */
  runnable: number;
}

/** The load as sampled, and each guest's part of it (threads wanting a CPU, by VM id). */
export interface HostLoadSample {
  load: HostLoad;
  demand: Map<string, number>;
}

/**
 * MiB/s one migration stream moves on a whole core of its own. Calibrated on the lab (TCG, TLS
 * streams): a plain migration read 60-130 MiB/s CPU-bound with one guest on two cores (docs/lab.md),
 * and in the evacuation benchmark a 256 MiB guest's first pass ran at 35 MiB/s with six guests on two
 * cores, that is 2/7 of a core: 122 MiB/s per core. The plan takes a stream on a core of its own to
 * fill the link when the link is faster than this (as it did before it knew the load): this is a
 * floor, and only crowded cores slow a stream below its share of the link.
 */
export const STREAM_CORE_MIBPS = 120;

/** The part of a core each of `streams` migration threads gets beside the host's load (fair share). */
export function streamCpuShare(load: HostLoad, streams: number): number {
  const s = Math.max(1, streams);
  return Math.min(1, Math.max(1, load.cores) / (Math.max(0, load.runnable) + s));
}

/** What one of `streams` concurrent migrations can move, MiB/s, when its link share allows more. */
export function streamRateMiBps(load: HostLoad, streams: number, coreMiBps = STREAM_CORE_MIBPS): number {
  return coreMiBps * streamCpuShare(load, streams);
}

/**
 * How much faster (above 1) or slower a guest dirties its memory beside `streams` migration threads on
 * `load` than it did when measured on `measuredOn` (with no migration running): a busy vCPU thread
 * gets the same fair part of a core as any other thread, and a guest that writes memory as fast as
 * its vCPU runs writes in proportion to it. On a host with cores to spare it stays 1.
 */
export function dirtyScale(measuredOn: HostLoad, load: HostLoad, streams: number): number {
  const then = Math.min(1, Math.max(1, measuredOn.cores) / Math.max(1, measuredOn.runnable));
  return streamCpuShare(load, streams) / then;
}

/**
 * A guest's own part of the load, in threads that want a CPU, from the CPU time it used over the
 * measurement (`usedCores`: CPU seconds per second). When the host is saturated every runnable
 * thread got cores/runnable of a CPU, so a guest that used u cores wanted u x runnable / cores.
 */
export function guestDemand(usedCores: number, load: HostLoad): number {
  const u = Math.max(0, usedCores);
  return u * Math.max(1, load.runnable / Math.max(1, load.cores));
}

/** The load once the guests with these demands have left the host. */
export function without(load: HostLoad, demands: readonly number[]): HostLoad {
  const gone = demands.reduce((a, d) => a + Math.max(0, d), 0);
  return { cores: load.cores, runnable: Math.max(0, load.runnable - gone) };
}
