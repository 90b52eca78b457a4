// The agent samples each running guest's dirty rate now and then (page sampling over 1 s), so that a
// migration knows how the guest behaved in the minutes before it: a guest seen quiet may be waited
// for rather than throttled (../controller/quiet.ts). One guest at a time, so the cost stays one
// calculation in flight; guests being migrated are skipped (their migration measures them itself).
import type { Logger } from 'pino';
import { measureDirtyRate } from '../libvirt/dirty-rate.js';
import { DomainState } from '../libvirt/types.js';
import type { LibvirtLink } from './libvirt-link.js';

/** page-sampling period of one sample, s */
const SAMPLE_PERIOD_SEC = 1;
/** how long a sample counts, ms: a quiet spell further back says little about the next minutes */
export const HISTORY_WINDOW_MS = 120_000;

interface Sample {
  atMs: number;
  mibPerSec: number;
}

/** The samples within the window before `nowMs`, oldest first (pure). */
export function withinWindow(samples: readonly Sample[], nowMs: number, windowMs = HISTORY_WINDOW_MS): Sample[] {
  return samples.filter((s) => nowMs - s.atMs <= windowMs && s.atMs <= nowMs);
}

export class DirtyRateHistory {
  private readonly samples = new Map<string, Sample[]>();
  private timer: NodeJS.Timeout | null = null;
  private round: Promise<void> | null = null;
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

  /** The rates sampled on this VM within the window, MiB/s, oldest first. */
  recent(vmUuid: string, nowMs = Date.now()): number[] {
    return withinWindow(this.samples.get(vmUuid) ?? [], nowMs).map((s) => s.mibPerSec);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.round;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.round = this.sampleAll().finally(() => this.schedule(this.intervalMs));
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
    for (const d of running) {
      if (this.stopped) return;
      if (this.migrating(d.uuid)) continue;
      try {
        const domain = await (await this.libvirt.get()).lookupByUuid(d.uuid);
        const r = await measureDirtyRate(domain, SAMPLE_PERIOD_SEC, { graceMs: 2_000 });
        const now = Date.now();
        this.samples.set(d.uuid, [...withinWindow(this.samples.get(d.uuid) ?? [], now), { atMs: now, mibPerSec: r.mibPerSec }]);
      } catch (err) {
        // gone, paused meanwhile, or a migration began: the next round tells
        this.log.debug({ event: 'dirty_history.sample_failed', vmId: d.uuid, err: err instanceof Error ? err.message : String(err) }, 'dirty-rate sample failed');
      }
    }
  }
}
