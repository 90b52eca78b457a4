// The agent samples each running guest's dirty rate now and then, so that a migration knows how the
// guest behaved in the minutes before it: a guest seen quiet may be waited for rather than throttled
// (../controller/quiet.ts), and an evacuation can plan at once from a fresh pair of samples instead of
// measuring first. Page sampling over a short period (the rate), and now and then a long one (whether
// the working set is smaller: see ../simulator/predict.ts workingSetFrom). All guests side by side: a
// calculation hashes 512 sampled pages per GiB at its start and its end and sleeps in between, so a
// round costs next to nothing and takes one period. Guests being migrated are skipped (they are
// measured then).
import type { Logger } from 'pino';
import { measureDirtyRate } from '../libvirt/dirty-rate.js';
import { DomainState } from '../libvirt/types.js';
import type { LibvirtLink } from './libvirt-link.js';
// the pair of periods workingSetFrom reads
import { LONG_PERIOD_SEC, SHORT_PERIOD_SEC } from '../simulator/predict.js';

/** a long sample when the last one is older than this, ms; short ones otherwise (quiet spells show
 *  in the short ones) */
const LONG_EVERY_MS = 20_000;
/** how long a sample counts, ms: a quiet spell further back says little about the next minutes */
export const HISTORY_WINDOW_MS = 120_000;

interface Sample {
  atMs: number;
  mibPerSec: number;
  periodSec: number;
}

/** The latest short and long samples, both within `maxAgeMs` of `nowMs` (pure). */
export function freshPair(samples: readonly Sample[], nowMs: number, maxAgeMs: number): { shortMiBps: number; longMiBps: number } | null {
  const fresh = samples.filter((s) => nowMs - s.atMs <= maxAgeMs && s.atMs <= nowMs);
  const latest = (sec: number) => fresh.filter((s) => s.periodSec === sec).at(-1);
  const short = latest(SHORT_PERIOD_SEC);
  const long = latest(LONG_PERIOD_SEC);
  return short && long ? { shortMiBps: short.mibPerSec, longMiBps: long.mibPerSec } : null;
}

/** The samples within the window before `nowMs`, oldest first (pure). */
export function withinWindow(samples: readonly Sample[], nowMs: number, windowMs = HISTORY_WINDOW_MS): Sample[] {
  return samples.filter((s) => nowMs - s.atMs <= windowMs && s.atMs <= nowMs);
}

export class DirtyRateHistory {
  private readonly samples = new Map<string, Sample[]>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly libvirt: LibvirtLink,
    /** a migration of this VM (by UUID) is in flight: don't sample it */
    private readonly migrating: (vmUuid: string) => boolean,
    private readonly log: Logger,
    /** pause between rounds over all guests, ms */
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.schedule(0);
  }

  /** The rates sampled on this VM over the short period within the window, MiB/s, oldest first (a
   *  long period reads at most working set / period, which is no rate). */
  recent(vmUuid: string, nowMs = Date.now()): number[] {
    return withinWindow(this.samples.get(vmUuid) ?? [], nowMs)
      .filter((s) => s.periodSec === SHORT_PERIOD_SEC)
      .map((s) => s.mibPerSec);
  }

  /** The latest short and long rates of this VM, MiB/s, if both are younger than `maxAgeMs`. */
  pair(vmUuid: string, maxAgeMs: number, nowMs = Date.now()): { shortMiBps: number; longMiBps: number } | null {
    return freshPair(this.samples.get(vmUuid) ?? [], nowMs, maxAgeMs);
  }

  /** No more samples. A calculation in flight is not waited for: QEMU ends it by itself, and its
   *  reading fails quietly once the connection is closed. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.sampleAll().finally(() => this.schedule(this.intervalMs));
    }, ms);
    this.timer.unref();
  }

  private async sampleAll(): Promise<void> {
    let domains;
    try {
      domains = await (await this.libvirt.get()).listAllDomains();
    } catch {
      return; // libvirt down: the link reports it; try again next round
    }
    const running = domains.filter((d) => d.state === DomainState.RUNNING);
    const alive = new Set(running.map((d) => d.uuid));
    for (const uuid of this.samples.keys()) if (!alive.has(uuid)) this.samples.delete(uuid);
    await Promise.all(running.filter((d) => !this.migrating(d.uuid)).map((d) => this.sampleOne(d.uuid)));
  }

  private async sampleOne(uuid: string): Promise<void> {
    if (this.stopped) return;
    try {
      const domain = await (await this.libvirt.get()).lookupByUuid(uuid);
      const kept = withinWindow(this.samples.get(uuid) ?? [], Date.now());
      // short ones, and a long one now and then; the first is short
      const lastLong = kept.filter((s) => s.periodSec === LONG_PERIOD_SEC).at(-1);
      const longDue = kept.length > 0 && (!lastLong || Date.now() - lastLong.atMs >= LONG_EVERY_MS);
      const periodSec = longDue ? LONG_PERIOD_SEC : SHORT_PERIOD_SEC;
      const r = await measureDirtyRate(domain, periodSec, { graceMs: 2_000 });
      const now = Date.now();
      this.samples.set(uuid, [...withinWindow(this.samples.get(uuid) ?? [], now), { atMs: now, mibPerSec: r.mibPerSec, periodSec }]);
    } catch (err) {
      // gone, paused meanwhile, or a migration began: the next round tells
      this.log.debug({ event: 'dirty_history.sample_failed', vmId: uuid, err: err instanceof Error ? err.message : String(err) }, 'dirty-rate sample failed');
    }
  }
}
