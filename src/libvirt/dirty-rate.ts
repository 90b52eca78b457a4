// Measuring a guest's dirty rate with QEMU's calc-dirty-rate through libvirt
// (virDomainStartDirtyRateCalc, read back from the "dirtyrate" domain stats group), in page-sampling
// mode: dirty-bitmap mode crashed QEMU 7.2 under TCG in the lab.
//
// What page sampling measures: QEMU hashes a random sample of pages (512 per GiB of RAM blocks of
// 128 MiB and more) at the start and at the end of the period and scales the share that changed to
// the RAM size. So it counts *distinct* pages changed over the period: a working set rewritten
// several times within the period counts once, and the result is capped at working set / period.
import { DirtyRateMode, DirtyRateStatus, type DirtyRateStats, type Domain } from './types.js';

/** One finished measurement. QEMU's "MB" is MiB (2^20 bytes). */
export interface DirtyRate {
  /** Distinct memory dirtied per second over the period, MiB/s. */
  mibPerSec: number;
  /** Length of the measurement, s. */
  periodSec: number;
  /** QEMU's start time of the measurement (s, QEMU's clock): tells one measurement from the next. */
  startTime: number;
  /** Per-vCPU rates (dirty-ring mode only; empty in page sampling). */
  vcpuMibPerSec: number[];
}

export type DirtyRateErrorKind = 'BAD_PERIOD' | 'TIMEOUT' | 'NO_RESULT';

export class DirtyRateError extends Error {
  override readonly name = 'DirtyRateError';
  constructor(
    readonly kind: DirtyRateErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/** QEMU's calc-time bounds (qapi: 1..60 s). */
export const DIRTY_RATE_MIN_SEC = 1;
export const DIRTY_RATE_MAX_SEC = 60;

export interface ParsedDirtyRate {
  status: number;
  result: DirtyRate | null;
}

/** Reads the "dirtyrate" stats group: its status, and the result once measured. Pure. */
export function parseDirtyRate(stats: DirtyRateStats): ParsedDirtyRate {
  const status = stats['dirtyrate.calc_status'] ?? DirtyRateStatus.UNSTARTED;
  const rate = stats['dirtyrate.megabytes_per_second'];
  if (status !== DirtyRateStatus.MEASURED || rate === undefined) return { status, result: null };
  const vcpus: number[] = [];
  for (const [k, v] of Object.entries(stats)) {
    const m = /^dirtyrate\.vcpu\.(\d+)\.megabytes_per_second$/.exec(k);
    if (m) vcpus[Number(m[1])] = v;
  }
  return {
    status,
    result: {
      mibPerSec: rate,
      periodSec: stats['dirtyrate.calc_period'] ?? 0,
      startTime: stats['dirtyrate.calc_start_time'] ?? 0,
      vcpuMibPerSec: vcpus.map((v) => v ?? 0),
    },
  };
}

/** Whether `after` is a measurement made after `before` was read (not the previous result). Pure. */
export function isNewMeasurement(before: ParsedDirtyRate, after: ParsedDirtyRate): boolean {
  if (!after.result) return false;
  if (!before.result) return true;
  // A calculation lasts at least 1 s, so the next one starts at a later (whole) second.
  return after.result.startTime > before.result.startTime;
}

/**
 * How the calculation is started. libvirt's API (virDomainStartDirtyRateCalc) takes the domain's
 * modify job, so during an outgoing migration it waits for the migration to end (seen on the lab:
 * `virsh domdirtyrate-calc` blocked until its timeout). QEMU's own calc-dirty-rate sent through the
 * monitor only takes a query job, and so runs beside a migration; its result is read back the same way.
 */
export type DirtyRateStart = 'libvirt' | 'monitor';

export interface MeasureDirtyRateOptions {
  /** default 'libvirt' */
  start?: DirtyRateStart;
  /** Give up this long after the period ended (default 5000 ms). */
  graceMs?: number;
  /** Poll interval once the period has passed (default 200 ms). */
  pollMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Measures the guest's dirty rate over `seconds` (integer, 1-60) in page-sampling mode: starts the
 * calculation, waits the period, then polls the stats until the new result is there. Rejects with
 * DirtyRateError (bad period, no result within the grace time) or the LibvirtError of libvirt/QEMU
 * (e.g. the domain not running). A calculation someone else started is waited for, and its result used.
 */
export async function measureDirtyRate(domain: Domain, seconds: number, opts: MeasureDirtyRateOptions = {}): Promise<DirtyRate> {
  if (!Number.isInteger(seconds) || seconds < DIRTY_RATE_MIN_SEC || seconds > DIRTY_RATE_MAX_SEC) {
    throw new DirtyRateError('BAD_PERIOD', `dirty-rate period must be an integer number of seconds in [${DIRTY_RATE_MIN_SEC}, ${DIRTY_RATE_MAX_SEC}], got ${String(seconds)}`);
  }
  // QEMU runs one calculation per guest and refuses a second meanwhile: callers of this process
  // (the agent's sampler, an estimate, a migration) take turns instead
  const before = inFlight.get(domain.uuid) ?? Promise.resolve();
  const mine = before.catch(() => undefined).then(() => measureOnce(domain, seconds, opts));
  const tail = mine.catch(() => undefined);
  inFlight.set(domain.uuid, tail);
  void tail.then(() => {
    if (inFlight.get(domain.uuid) === tail) inFlight.delete(domain.uuid);
  });
  return mine;
}

/** QEMU refuses calc-dirty-rate while one runs ("the dirty rate is already being measured"). */
function isAlreadyMeasuring(e: unknown): boolean {
  return e instanceof Error && /already being measured/i.test(e.message);
}

/** The calculation in flight (or queued last) per domain UUID. */
const inFlight = new Map<string, Promise<unknown>>();

async function measureOnce(domain: Domain, seconds: number, opts: MeasureDirtyRateOptions): Promise<DirtyRate> {
  const sleep = opts.sleep ?? defaultSleep;
  const pollMs = opts.pollMs ?? 200;
  const graceMs = opts.graceMs ?? 5_000;
  const before = parseDirtyRate(await domain.getDirtyRateStats());
  let waited = 0;
  try {
    if (opts.start === 'monitor') {
      await domain.qemuMonitorCommand(JSON.stringify({ execute: 'calc-dirty-rate', arguments: { 'calc-time': seconds, mode: 'page-sampling' } }));
    } else {
      await domain.startDirtyRateCalc(seconds, DirtyRateMode.PAGE_SAMPLING);
    }
    await sleep(seconds * 1000);
  } catch (e) {
    // Another process (a second agent on the host, virsh) or a calculation that outlived its caller
    // holds QEMU's one slot. Its result measures the same guest over a recent period: wait for it,
    // within its period (ours if it does not say) plus the grace time, rather than fail.
    if (!isAlreadyMeasuring(e)) throw e;
    const foreignSec = (await domain.getDirtyRateStats())['dirtyrate.calc_period'];
    waited = -Math.max(seconds, Math.min(foreignSec ?? 0, DIRTY_RATE_MAX_SEC)) * 1000;
  }
  for (;;) {
    const now = parseDirtyRate(await domain.getDirtyRateStats());
    if (isNewMeasurement(before, now) && now.result) return now.result;
    if (waited >= graceMs) {
      throw new DirtyRateError(
        now.status === DirtyRateStatus.MEASURING ? 'TIMEOUT' : 'NO_RESULT',
        `no dirty-rate result for ${domain.name} ${graceMs} ms after its ${seconds} s period (status ${now.status})`,
      );
    }
    await sleep(pollMs);
    waited += pollMs;
  }
}
