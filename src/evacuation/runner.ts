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
import { fairShare, planEvacuation, predictRemainingSec, rebalanceShares, sentAll, startable, type VmFacts } from './plan.js';
import { chooseDestination, type DestinationUse, type DestinationView } from './placement.js';
import type { HostLoadSample } from './host-load.js';
import type { RunnerState, StartIntent } from './record.js';
import { countedAttempts, excludedByAttempts } from './resume.js';

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
  /** the running migration's bandwidth from now on, MiB/s (as VM.migrateChangeParams `bandwidth`);
   *  throws when it cannot be changed (e.g. the migration is ending) */
  setBandwidth(vmId: string, bandwidthMiBps: number): Promise<void>;
  /** the source host's load over a short while, and each VM's part of it (threads wanting a CPU, by
   *  VM id); null or absent: unknown, the plan then takes every stream to get its share of the link */
  hostLoad?(vmIds: string[]): Promise<HostLoadSample | null>;
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

/** Persistence and resumption (./record.ts, ./resume.ts); none: the evacuation lives in memory only. */
export interface EvacuationHooks {
  /** what a successor needs, at creation and at each change. Throwing at creation fails the
   *  request; before a migration starts, that VM is not started (write-ahead) */
  save?(state: RunnerState): void;
  /** a save after a change failed (the evacuation goes on; a successor would resume from the older record) */
  onSaveError?(err: unknown): void;
  /** a running migration's share could not be changed (the evacuation goes on; tried again at the next
   *  look, reported once per VM and bandwidth) */
  onRebalanceError?(vmId: string, bandwidthMiBps: number, err: unknown): void;
  /** go on from where a predecessor left it: the status (./resume.ts resumedStatus) and the plan's parallelism */
  from?: { status: EvacuationStatus; parallel: number | null; cancelRequested: boolean };
}

/** A plan's measurement is handed to a migration started within this long of it; later the guest may
 *  have changed, and the migration measures afresh. */
export const MEASUREMENT_FRESH_MS = 30_000;

/** A failed migration is retried once, on another destination. */
export const MAX_ATTEMPTS = 2;

type ErrorInfo = { code: number; name: string; message: string };
const errorInfo = (e: unknown): ErrorInfo => errorRecord(e, { code: -32603, name: 'INTERNAL_ERROR', message: String((e as Error)?.message ?? e) });


/** A VM whose migration has sent all its data: only libvirt's handover is left (./plan.ts sentAll). */
const handingOver = (v: EvacuationVm): boolean => v.state === 'migrating' && sentAll(v.migration);

export class Evacuation extends EventEmitter<{ change: [EvacuationStatus] }> {
  readonly status: EvacuationStatus;
  readonly done: Promise<EvacuationStatus>;
  private readonly started: number;
  private parallel = 1;
  private views: DestinationView[] = [];
  private readonly use = new Map<string, DestinationUse>();
  private readonly excluded: Map<string, Set<string>>;
  private cancelled = false;
  /** the agent is stopping: nothing more is started, followed or recorded */
  private halted = false;
  /** migrations being started (write-ahead, for a successor) */
  private starting: StartIntent[] = [];
  private wake: (() => void) | null = null;
  /** dirty rates measured while planning, and when */
  private readonly measured = new Map<string, { mibPerSec: number; atMs: number }>();
  /** the bandwidth a VM's share could not be changed to (reported once) */
  private readonly rebalanceFailed = new Map<string, number>();

  constructor(
    private readonly opts: EvacuationOptions,
    private readonly ports: EvacuationPorts,
    private readonly hooks: EvacuationHooks = {},
  ) {
    super();
    const from = hooks.from;
    this.started = from ? Date.parse(from.status.startedAt) : Date.now();
    this.excluded = from ? excludedByAttempts(from.status.vms) : new Map();
    this.cancelled = from?.cancelRequested ?? false;
    if (from?.parallel) this.parallel = from.parallel;
    this.status = from ? structuredClone(from.status) : {
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
    hooks.save?.(this.state()); // before the id is handed out
    this.done = this.run();
  }

  /** The agent stops: the evacuation is left as last recorded, for the next agent to go on with. */
  halt(): void {
    this.halted = true;
    this.wake?.();
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
      if (this.status.state === 'planning') {
        await this.plan();
        this.status.state = this.cancelled ? 'cancelled' : 'running';
      } else await this.resumeDestinations();
      this.changed();
      while (!this.halted && this.status.vms.some((v) => v.state === 'waiting' || v.state === 'migrating')) {
        this.follow();
        if (!this.cancelled) await this.startWhatMay();
        await this.rebalance();
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, this.opts.tickMs ?? 250);
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
    if (this.halted) return this.snapshot();
    this.status.state = this.cancelled ? 'cancelled' : 'finished';
    this.status.endedAt = new Date().toISOString();
    this.changed();
    return this.snapshot();
  }

  private async plan(): Promise<void> {
    const [vms, dests] = await Promise.all([this.ports.vms(), this.askDestinations()]);
    this.setDestinations(dests);
    // measured side by side: page sampling of one guest does not disturb another's; the host's load
    // meanwhile (the sampling itself costs QEMU little)
    const [facts, host] = await Promise.all([
      Promise.all(vms.map(async (v): Promise<VmFacts> => ({ ...v, measured: await this.ports.measure(v.vmId).catch(() => null) }))),
      this.ports.hostLoad?.(vms.map((v) => v.vmId)).catch(() => null) ?? Promise.resolve(null),
    ]);
    if (host) for (const f of facts) f.cpuDemand = host.demand.get(f.vmId) ?? 0;
    for (const f of facts) if (f.measured) this.measured.set(f.vmId, { mibPerSec: f.measured.dirtyRateMiBps, atMs: Date.now() });
    const plan = planEvacuation({ vms: facts, bandwidthMiBps: this.opts.bandwidthMiBps, maxParallel: this.opts.maxParallel, policy: this.opts.policy, ...(host ? { load: host.load } : {}) });
    this.parallel = plan.parallel;
    if (this.halted) return;
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

  private setDestinations(dests: EvacuationDestination[]): void {
    this.status.destinations = dests;
    this.views = dests.map((d) => ({
      key: d.destination,
      usable: d.state !== 'unreachable',
      memoryFreeMiB: d.memoryFreeMiB,
      incomingSlotsFree: d.incomingSlotsFree,
    }));
  }

  /** Resumed: the plan stands; the destinations are asked again (one found unreachable stays
   *  skipped), and the migrations still running hold their place on theirs. */
  private async resumeDestinations(): Promise<void> {
    const before = new Map(this.status.destinations.map((d) => [d.destination, d]));
    const asked = await this.askDestinations();
    this.setDestinations(asked.map((d) => (before.get(d.destination)?.state === 'unreachable' ? before.get(d.destination)! : d)));
    for (const v of this.status.vms) {
      if (v.state !== 'migrating') continue;
      const u = this.useOf(v.attempts[v.attempts.length - 1]!.destination);
      u.inFlight += 1;
      u.memoryMiB += v.ramMiB;
    }
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
    else if (this.cancelled || countedAttempts(v) >= MAX_ATTEMPTS) v.state = this.cancelled ? 'cancelled' : 'failed';
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
    const order = startable(this.status.vms.map((v) => ({ exclusive: v.exclusive, state: v.state, sentAll: handingOver(v) })), this.parallel);
    // a shared migration starts with its part of the link beside those running and those starting now
    const sharing = [...this.usingLink(), ...order.map((i) => this.status.vms[i]!)].filter((v) => !v.exclusive).length;
    for (const i of order) {
      if (this.halted) return;
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
      const bw = v.exclusive ? this.opts.bandwidthMiBps : fairShare(this.opts.bandwidthMiBps, sharing);
      v.destination = place.key;
      v.placementReason = place.reason;
      // write-ahead: a successor looks for a migration of this VM started from now on
      const intent: StartIntent = { vmId: v.vmId, destination: place.key, atMs: Date.now() };
      this.starting.push(intent);
      try {
        this.hooks.save?.(this.state());
      } catch (err) {
        this.starting = this.starting.filter((x) => x !== intent);
        v.state = 'failed';
        v.error = { ...errorInfo(err), message: `${(err as Error).message}; the migration was not started` };
        this.changed();
        continue;
      }
      try {
        const { migrationId } = await this.ports.migrate(v.vmId, dst, bw, this.freshMeasurement(v.vmId)).finally(() => {
          this.starting = this.starting.filter((x) => x !== intent);
        });
        if (this.halted) return; // the record keeps the intent; the successor finds the migration
        v.state = 'migrating';
        v.bandwidthMiBps = bw;
        v.attempts.push({ destination: place.key, migrationId, state: 'running', error: null });
        const u = this.useOf(place.key);
        u.inFlight += 1;
        u.memoryMiB += v.ramMiB;
        v.migration = this.ports.status(v.vmId);
      } catch (err) {
        if (this.halted) return;
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

  /** The migrations still sending: one in its handover leaves its part of the link to the others. */
  private usingLink(): EvacuationVm[] {
    return this.status.vms.filter((v) => v.state === 'migrating' && !handingOver(v));
  }

  /** The running shared migrations split the link equally (./plan.ts rebalanceShares); one that cannot
   *  be changed keeps its share, and the evacuation goes on. */
  private async rebalance(): Promise<void> {
    const running = this.usingLink();
    const changes = rebalanceShares(running.map((v) => ({ vmId: v.vmId, exclusive: v.exclusive, bandwidthMiBps: v.bandwidthMiBps ?? this.opts.bandwidthMiBps })), this.opts.bandwidthMiBps);
    let changed = false;
    for (const c of changes) {
      if (this.halted) return;
      const v = running.find((x) => x.vmId === c.vmId)!;
      try {
        await this.ports.setBandwidth(c.vmId, c.bandwidthMiBps);
        this.rebalanceFailed.delete(c.vmId);
        if (v.state !== 'migrating') continue;
        v.bandwidthMiBps = c.bandwidthMiBps;
        changed = true;
      } catch (err) {
        if (this.rebalanceFailed.get(c.vmId) !== c.bandwidthMiBps) this.hooks.onRebalanceError?.(c.vmId, c.bandwidthMiBps, err);
        this.rebalanceFailed.set(c.vmId, c.bandwidthMiBps);
      }
    }
    if (changed) this.changed();
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

  private state(): RunnerState {
    return { status: this.snapshot(), parallel: this.status.state === 'planning' ? null : this.parallel, cancelRequested: this.cancelled, starting: [...this.starting] };
  }

  private changed(): void {
    if (this.halted) return;
    const state = this.state();
    this.emit('change', structuredClone(state.status));
    try {
      this.hooks.save?.(state);
    } catch (err) {
      this.hooks.onSaveError?.(err);
    }
  }
}
