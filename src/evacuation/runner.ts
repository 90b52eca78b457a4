// One evacuation's life: measure the VMs and ask the destinations (planning), then start migrations
// as ./plan.ts allows, follow them, retry a failed one once elsewhere, and keep the status. Effects
// go through ports, so the daemon wires them to its real VM.migrate machinery (and tests to fakes).
import { EventEmitter } from 'node:events';
import { AgentError, errorRecord } from '../api/errors.js';
import type { EvacuationDestination, EvacuationStatus, EvacuationVm } from '../api/evacuation.js';
import type { Destination } from '../api/params.js';
import { isMigrationActive, type MigrationStatus } from '../api/results.js';
import { destinationKey } from '../migration/destination.js';
import type { Policy } from '../controller/policy.js';
import { chooseDestination, planEvacuation, predictRemainingSec, startable, type DestinationUse, type DestinationView, type VmFacts } from './plan.js';

export interface EvacuationPorts {
  /** the VMs to move: running ones, or those named (throws VM_NOT_FOUND for an unknown name) */
  vms(): Promise<{ vmId: string; vmName: string; ramMiB: number }[]>;
  /** dirty rate and working set (throws when QEMU gives none) */
  measure(vmId: string): Promise<NonNullable<VmFacts['measured']>>;
  /** the destination agent's name and capacity; throws when it cannot be asked */
  capacity(dst: Destination): Promise<{ name: string; memoryFreeMiB: number; incomingSlotsFree: number }>;
  /** VM.migrate; throws an AgentError when it does not start. `measuredDirtyMiBps`: the plan's recent
   *  measurement, so that the migration need not measure again */
  migrate(vmId: string, dst: Destination, bandwidthMiBps: number, measuredDirtyMiBps?: number): Promise<{ migrationId: string }>;
  /** the VM's latest migration, or null */
  status(vmId: string): MigrationStatus | null;
  /** VM.migrateCancel (throws NOT_CANCELLABLE in post-copy) */
  cancel(vmId: string): Promise<void>;
}

export interface EvacuationOptions {
  evacuationId: string;
  destinations: Destination[];
  policy: Policy;
  maxParallel: number;
  bandwidthMiBps: number;
  /** how often running migrations are looked at, ms */
  tickMs?: number;
}

/** A plan's measurement is handed to a migration started within this long of it; later the guest may
 *  have changed, and the migration measures afresh. */
export const MEASUREMENT_FRESH_MS = 30_000;

/** A failed migration is retried once, on another destination. */
export const MAX_ATTEMPTS = 2;

type ErrorInfo = { code: number; name: string; message: string };
const errorInfo = (e: unknown): ErrorInfo => errorRecord(e, { code: -32603, name: 'INTERNAL_ERROR', message: String((e as Error)?.message ?? e) });


export class Evacuation extends EventEmitter<{ change: [EvacuationStatus] }> {
  readonly status: EvacuationStatus;
  readonly done: Promise<EvacuationStatus>;
  private readonly started = Date.now();
  private parallel = 1;
  private views: DestinationView[] = [];
  private readonly use = new Map<string, DestinationUse>();
  private readonly excluded = new Map<string, Set<string>>();
  private cancelled = false;
  private wake: (() => void) | null = null;
  /** dirty rates measured while planning, and when */
  private readonly measured = new Map<string, { mibPerSec: number; atMs: number }>();

  constructor(
    private readonly opts: EvacuationOptions,
    private readonly ports: EvacuationPorts,
  ) {
    super();
    this.status = {
      evacuationId: opts.evacuationId,
      state: 'planning',
      startedAt: new Date(this.started).toISOString(),
      endedAt: null,
      elapsedMs: 0,
      predictedRemainingSec: null,
      bandwidthMiBps: opts.bandwidthMiBps,
      maxParallel: opts.maxParallel,
      policy: opts.policy.name,
      totals: { vms: 0, done: 0, failed: 0, cancelled: 0, running: 0, remaining: 0 },
      destinations: [],
      vms: [],
      error: null,
    };
    this.done = this.run();
  }

  get active(): boolean {
    return this.status.state === 'planning' || this.status.state === 'running';
  }

  /** Not started VMs stay here; running migrations go on to the end, or are cancelled with abortRunning. */
  async cancel(abortRunning: boolean): Promise<void> {
    if (!this.active) throw new AgentError('NOT_CANCELLABLE', `evacuation ${this.opts.evacuationId} already ended (${this.status.state})`);
    this.cancelled = true;
    for (const v of this.status.vms) {
      if (v.state === 'waiting') {
        v.state = 'cancelled';
        v.placementReason = 'evacuation cancelled before it started';
      }
    }
    if (abortRunning) {
      await Promise.all(
        this.status.vms.filter((v) => v.state === 'migrating').map((v) => this.ports.cancel(v.vmId).catch(() => undefined)), // post-copy: goes on
      );
    }
    this.changed();
    this.wake?.();
  }

  snapshot(): EvacuationStatus {
    this.refresh();
    return structuredClone(this.status);
  }

  private async run(): Promise<EvacuationStatus> {
    try {
      await this.plan();
      this.status.state = this.cancelled ? 'cancelled' : 'running';
      this.changed();
      while (this.status.vms.some((v) => v.state === 'waiting' || v.state === 'migrating')) {
        this.follow();
        if (!this.cancelled) await this.startWhatMay();
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, this.opts.tickMs ?? 500);
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wake = null;
      }
    } catch (err) {
      this.status.error = errorInfo(err);
    }
    this.status.state = this.cancelled ? 'cancelled' : 'finished';
    this.status.endedAt = new Date().toISOString();
    this.changed();
    return this.snapshot();
  }

  private async plan(): Promise<void> {
    const [vms, dests] = await Promise.all([this.ports.vms(), this.askDestinations()]);
    this.status.destinations = dests;
    this.views = dests.map((d) => ({
      key: d.destination,
      usable: d.state !== 'unreachable',
      memoryFreeMiB: d.memoryFreeMiB,
      incomingSlotsFree: d.incomingSlotsFree,
    }));
    // measured side by side: page sampling of one guest does not disturb another's
    const facts = await Promise.all(
      vms.map(async (v): Promise<VmFacts> => ({ ...v, measured: await this.ports.measure(v.vmId).catch(() => null) })),
    );
    for (const f of facts) if (f.measured) this.measured.set(f.vmId, { mibPerSec: f.measured.dirtyRateMiBps, atMs: Date.now() });
    const plan = planEvacuation({ vms: facts, bandwidthMiBps: this.opts.bandwidthMiBps, maxParallel: this.opts.maxParallel, policy: this.opts.policy });
    this.parallel = plan.parallel;
    // tentative placement, for status: as if each went in order
    const tentative = new Map<string, DestinationUse>();
    this.status.vms = plan.vms.map((p): EvacuationVm => {
      const place = chooseDestination(p.ramMiB, this.views, tentative, new Set(), false);
      if (place.key) tentative.set(place.key, { memoryMiB: (tentative.get(place.key)?.memoryMiB ?? 0) + p.ramMiB, inFlight: 0 });
      return {
        vmId: p.vmId,
        vmName: p.vmName,
        ramMiB: p.ramMiB,
        order: p.order,
        orderReason: p.orderReason,
        exclusive: p.exclusive,
        state: this.cancelled ? 'cancelled' : 'waiting',
        destination: place.key,
        placementReason: `planned: ${place.reason}`,
        bandwidthMiBps: p.bandwidthMiBps,
        estimate: p.estimate,
        attempts: [],
        migration: null,
        error: null,
      };
    });
  }

  private async askDestinations(): Promise<EvacuationDestination[]> {
    return Promise.all(
      this.opts.destinations.map(async (d): Promise<EvacuationDestination> => {
        const key = destinationKey(d);
        if (typeof d !== 'string' && d.agent === undefined) {
          return { destination: key, name: null, state: 'unknown-capacity', memoryFreeMiB: null, incomingSlotsFree: null, reason: 'a libvirt URI without an agent: capacity not known' };
        }
        try {
          const c = await this.ports.capacity(d);
          return { destination: key, name: c.name, state: 'usable', memoryFreeMiB: c.memoryFreeMiB, incomingSlotsFree: c.incomingSlotsFree, reason: `${c.memoryFreeMiB} MiB free, ${c.incomingSlotsFree} incoming slot(s) free` };
        } catch (err) {
          return { destination: key, name: null, state: 'unreachable', memoryFreeMiB: null, incomingSlotsFree: null, reason: `skipped: ${(err as Error).message}` };
        }
      }),
    );
  }

  private useOf(key: string): DestinationUse {
    let u = this.use.get(key);
    if (!u) this.use.set(key, (u = { memoryMiB: 0, inFlight: 0 }));
    return u;
  }

  private markUnreachable(key: string, why: string): void {
    const view = this.views.find((v) => v.key === key);
    const d = this.status.destinations.find((x) => x.destination === key);
    if (view) view.usable = false;
    if (d) {
      d.state = 'unreachable';
      d.reason = `skipped from now on: ${why}`;
    }
  }

  /** Ends of running migrations: done, or retried once elsewhere, or failed. */
  private follow(): void {
    for (const v of this.status.vms) {
      if (v.state !== 'migrating') continue;
      const attempt = v.attempts[v.attempts.length - 1]!;
      const st = this.ports.status(v.vmId);
      if (!st || st.migrationId !== attempt.migrationId) continue;
      v.migration = st;
      if (isMigrationActive(st.state)) continue;
      attempt.state = st.state;
      attempt.error = st.error;
      const u = this.useOf(attempt.destination);
      u.inFlight -= 1;
      if (st.state === 'completed') {
        v.state = 'done';
      } else {
        u.memoryMiB -= v.ramMiB; // the VM stayed here
        this.failedAttempt(v, attempt.destination, st.error ?? { code: 1012, name: 'MIGRATION_FAILED', message: `migration ${st.state}` }, st.state === 'cancelled' && this.cancelled);
      }
      this.changed();
    }
  }

  private failedAttempt(v: EvacuationVm, key: string, error: ErrorInfo, byCancel: boolean): void {
    const ex = this.excluded.get(v.vmId) ?? new Set<string>();
    ex.add(key);
    this.excluded.set(v.vmId, ex);
    v.error = error;
    if (byCancel) v.state = 'cancelled';
    else if (this.cancelled || v.attempts.length >= MAX_ATTEMPTS) v.state = this.cancelled ? 'cancelled' : 'failed';
    else {
      v.state = 'waiting';
      v.placementReason = `retry on another destination: ${key} failed it (${error.name})`;
    }
  }

  /** The planning measurement of a VM while it is fresh, once (a retry measures afresh). */
  private freshMeasurement(vmId: string): number | undefined {
    const m = this.measured.get(vmId);
    this.measured.delete(vmId);
    return m && Date.now() - m.atMs <= MEASUREMENT_FRESH_MS ? m.mibPerSec : undefined;
  }

  private async startWhatMay(): Promise<void> {
    const order = startable(this.status.vms, this.parallel);
    for (const i of order) {
      const v = this.status.vms[i]!;
      const place = chooseDestination(v.ramMiB, this.views, this.use, this.excluded.get(v.vmId) ?? new Set());
      if (place.key === null) {
        v.placementReason = place.reason;
        if (!place.wait) {
          v.state = 'failed';
          v.error = { code: 1020, name: 'NO_DESTINATION', message: place.reason };
          this.changed();
        }
        if (v.exclusive) break; // the order is kept
        continue;
      }
      const dst = this.opts.destinations.find((d) => destinationKey(d) === place.key)!;
      const bw = v.bandwidthMiBps ?? this.opts.bandwidthMiBps;
      v.destination = place.key;
      v.placementReason = place.reason;
      try {
        const { migrationId } = await this.ports.migrate(v.vmId, dst, bw, this.freshMeasurement(v.vmId));
        v.state = 'migrating';
        v.attempts.push({ destination: place.key, migrationId, state: 'running', error: null });
        const u = this.useOf(place.key);
        u.inFlight += 1;
        u.memoryMiB += v.ramMiB;
        v.migration = this.ports.status(v.vmId);
      } catch (err) {
        const e = errorInfo(err);
        if (e.name === 'TOO_MANY_MIGRATIONS' && err instanceof AgentError && err.details.direction === 'outgoing') break; // this host is full: wait
        if (e.name === 'VM_NOT_FOUND' || e.name === 'VM_NOT_RUNNING' || e.name === 'MIGRATION_IN_PROGRESS') {
          v.state = 'failed';
          v.error = e;
        } else {
          // gone, or this host itself: no other VM should try it either
          if (e.name === 'DESTINATION_UNREACHABLE' || e.name === 'SAME_HOST') this.markUnreachable(place.key, e.message);
          v.attempts.push({ destination: place.key, migrationId: null, state: 'refused', error: e });
          this.failedAttempt(v, place.key, e, false);
        }
      }
      this.changed();
    }
  }

  private refresh(): void {
    const s = this.status;
    s.elapsedMs = (s.endedAt ? Date.parse(s.endedAt) : Date.now()) - this.started;
    const count = (st: EvacuationVm['state']) => s.vms.filter((v) => v.state === st).length;
    s.totals = {
      vms: s.vms.length,
      done: count('done'),
      failed: count('failed'),
      cancelled: count('cancelled'),
      running: count('migrating'),
      remaining: count('waiting') + count('migrating'),
    };
    if (s.state !== 'planning') {
      s.predictedRemainingSec = predictRemainingSec(
        s.vms.map((v) => ({
          exclusive: v.exclusive,
          state: v.state,
          timeSec: v.estimate?.timeSec ?? v.ramMiB / (v.bandwidthMiBps ?? s.bandwidthMiBps),
          elapsedSec: (v.migration?.elapsedMs ?? 0) / 1000,
        })),
        this.parallel,
      );
    }
  }

  private changed(): void {
    this.emit('change', this.snapshot());
  }
}

/** The evacuations of this host: one running at a time, the last few kept for their status. */
export class EvacuationRegistry extends EventEmitter<{ change: [EvacuationStatus] }> {
  private readonly all = new Map<string, Evacuation>();

  start(opts: EvacuationOptions, ports: EvacuationPorts): Evacuation {
    const running = [...this.all.values()].find((e) => e.active);
    if (running) throw new AgentError('EVACUATION_IN_PROGRESS', `evacuation ${running.status.evacuationId} of this host is still running`, { evacuationId: running.status.evacuationId });
    const e = new Evacuation(opts, ports);
    e.on('change', (s) => this.emit('change', s));
    this.all.set(opts.evacuationId, e);
    for (const [id, old] of this.all) if (this.all.size > 20 && !old.active) this.all.delete(id);
    return e;
  }

  get(evacuationId: string): Evacuation {
    const e = this.all.get(evacuationId);
    if (!e) throw new AgentError('NO_EVACUATION', `no evacuation ${evacuationId} on this host`, { evacuationId });
    return e;
  }
}
