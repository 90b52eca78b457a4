// One outgoing migration: starts libvirt's peer-to-peer migration, samples it, feeds the controller,
// applies its actions, and keeps the status that VM.migrateStatus returns after the end too.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Action, ControllerPort } from '../controller/types.js';
import { AgentError, type ErrorName, ErrorCodes } from '../api/errors.js';
import { isMigrationActive } from '../api/results.js';
import type { Domain, JobStats, MigrateParams as LibvirtMigrateParams } from '../libvirt/types.js';
import { isJobActive, JobStatsFlags, MigrateFlags } from '../libvirt/types.js';
import { applyAction } from './effects.js';
import { startMonitor, type Monitor } from './monitor.js';
import { progressPercent } from './progress.js';
import { sampleFromJobStats, type MigrationSample } from '../controller/sample.js';
import type { ActionRecord, MigrationEventMap, MigrationState, MigrationStatus } from './status.js';

export interface MigrationPlan {
  migrationId: string;
  domain: Domain;
  vmUuid: string;
  vmName: string;
  source: string;
  destination: string;
  dconnuri: string;
  params: LibvirtMigrateParams;
  flags: number;
  policyName: string;
  controller: ControllerPort | null;
  /** without a controller (stock policy): abort after this long, so nothing runs throttled for ever */
  completionTimeoutMs?: number;
  intervalMs: number;
  sampleTimeoutMs: number;
  logger: Logger;
  /** when the migration started, if before this object (adopted from a predecessor agent); epoch ms */
  startedAtMs?: number;
}

export class Migration extends EventEmitter<MigrationEventMap> {
  readonly status: MigrationStatus;
  readonly done: Promise<MigrationStatus>;
  private readonly plan: MigrationPlan;
  private readonly log: Logger;
  private readonly startedMs: number;
  private monitor: Monitor | null = null;
  private cancelRequested = false;
  private policyAbort: string | null = null;
  private actionChain: Promise<void> = Promise.resolve();
  private resolveDone!: (s: MigrationStatus) => void;
  /** libvirt's job-completed event; may arrive just before or just after the migrate call returns */
  private completedStats: JobStats | null = null;
  private completedWaiter: (() => void) | null = null;

  constructor(plan: MigrationPlan) {
    super();
    this.plan = plan;
    this.startedMs = plan.startedAtMs ?? Date.now();
    this.log = plan.logger.child({ migrationId: plan.migrationId, vmId: plan.vmUuid, vmName: plan.vmName });
    this.status = {
      migrationId: plan.migrationId,
      vmId: plan.vmUuid,
      vmName: plan.vmName,
      source: plan.source,
      destination: plan.destination,
      state: 'pending',
      progress: 0,
      dataTotal: 0,
      dataProcessed: 0,
      dataRemaining: 0,
      iteration: 0,
      dirtyRate: 0,
      transferRate: 0,
      throttlePercent: 0,
      postcopy: false,
      // libvirt fails the migration rather than fall back to plain text, so the flag is the truth
      tls: (plan.flags & MigrateFlags.TLS) !== 0,
      downtimeMs: null,
      startedAt: new Date(this.startedMs).toISOString(),
      endedAt: null,
      elapsedMs: 0,
      policy: plan.policyName,
      actions: [],
      error: null,
    };
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  get active(): boolean {
    return isMigrationActive(this.status.state);
  }

  /** Start in the background; the outcome arrives through events and `done`. `follow`: the job
   *  already runs (a predecessor agent started it): wait for its end instead of starting it. */
  start(follow?: () => Promise<void>): void {
    if (!follow) this.log.info({ event: 'migration.start', destination: this.plan.destination, flags: this.plan.flags }, 'migration starting');
    this.emit('state', this.snapshot());
    this.monitor = startMonitor({
      intervalMs: this.plan.intervalMs,
      timeoutMs: this.plan.sampleTimeoutMs,
      sample: () => this.plan.domain.getJobStats(),
      onSample: (stats) => this.onSample(sampleFromJobStats(stats, Date.now() - this.startedMs)),
      onError: (err) => this.log.debug({ event: 'migration.sample_error', err: err.message }, 'job statistics unavailable'),
    });
    (follow ? follow() : this.plan.domain.migrateToUri3(this.plan.dconnuri, this.plan.params, this.plan.flags))
      .then(
        () => this.finish('completed', null),
        (err: unknown) => this.finishWithError(err),
      )
      .catch((err: unknown) => {
        // A bug in the bookkeeping above must not leave the migration "running" for ever.
        this.log.error({ event: 'migration.internal_error', err: String(err) }, 'internal error');
        if (!this.active) return;
        this.status.error = { code: ErrorCodes.MIGRATION_FAILED, name: 'MIGRATION_FAILED', message: `internal error: ${String(err)}` };
        this.status.endedAt = new Date().toISOString();
        this.setState('failed');
        this.resolveDone(this.snapshot());
      });
  }

  onJobCompleted(stats: JobStats): void {
    this.completedStats = stats;
    this.completedWaiter?.();
  }

  private waitCompletedEvent(ms: number): Promise<JobStats | null> {
    if (this.completedStats) return Promise.resolve(this.completedStats);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(this.completedStats), ms);
      this.completedWaiter = () => {
        clearTimeout(timer);
        resolve(this.completedStats);
      };
    });
  }

  /** Take a sample now (libvirt announced an iteration boundary). */
  poke(): void {
    this.monitor?.poke();
  }

  async cancel(): Promise<void> {
    if (!this.active) {
      throw new AgentError('NOT_CANCELLABLE', `migration of ${this.plan.vmName} already ended (${this.status.state})`);
    }
    this.cancelRequested = true;
    this.log.info({ event: 'migration.cancel' }, 'cancel requested');
    await this.abortUntilGone();
  }

  /** The convergence controller steering this migration, if any (VM.migrateChangeParams goes through it). */
  get controller(): ControllerPort | null {
    return this.plan.controller;
  }

  setPolicyName(name: string): void {
    this.status.policy = name;
  }

  /** Apply an action that came from outside the controller (VM.migrateChangeParams). */
  applyExternal(action: Action): Promise<void> {
    return this.runAction(action);
  }

  // libvirt may not have created its job yet when a cancel arrives: retry the abort briefly.
  private async abortUntilGone(): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await this.plan.domain.abortJob();
        return;
      } catch (err) {
        if (!this.active) return;
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  private onSample(sample: MigrationSample): void {
    if (!this.active) return;
    if (!isJobActive(sample.jobType)) return;
    if (this.status.state === 'pending') this.setState('running');
    const s = this.status;
    s.progress = progressPercent(s.progress, sample);
    s.dataTotal = sample.dataTotal;
    s.dataProcessed = sample.dataProcessed;
    s.dataRemaining = sample.dataRemaining;
    s.iteration = sample.iteration;
    s.dirtyRate = sample.dirtyRate;
    s.transferRate = sample.transferRate;
    s.throttlePercent = sample.throttlePercent;
    s.postcopy = s.postcopy || sample.postcopyRequests > 0;
    s.elapsedMs = Date.now() - this.startedMs;
    this.emit('progress', this.snapshot());
    if (this.plan.controller && !this.cancelRequested && this.policyAbort === null) {
      for (const action of this.plan.controller.observe(sample)) void this.runAction(action);
    }
    const timeout = this.plan.completionTimeoutMs;
    if (!this.plan.controller && timeout !== undefined && s.elapsedMs > timeout && !this.cancelRequested && this.policyAbort === null) {
      void this.runAction({ type: 'abort', reason: `completion timeout of ${Math.round(timeout / 1000)} s reached (policy ${this.status.policy})` });
    }
  }

  // Actions are applied one at a time, in the order decided.
  private runAction(action: Action): Promise<void> {
    const next = this.actionChain.then(async () => {
      if (!this.active) return;
      if (action.type === 'abort') this.policyAbort = action.reason;
      if (action.type === 'postcopy') this.status.postcopy = true;
      const record: ActionRecord = {
        at: new Date().toISOString(),
        t: Date.now() - this.startedMs,
        action,
        applied: true,
      };
      try {
        await applyAction(this.plan.domain, action);
      } catch (err) {
        record.applied = false;
        record.error = err instanceof Error ? err.message : String(err);
        if (action.type === 'abort') this.policyAbort = null;
        this.plan.controller?.rejected(action);
      }
      this.status.actions.push(record);
      const level = record.applied ? 'info' : 'warn';
      this.log[level]({ event: 'migration.action', action: action.type, reason: action.reason, applied: record.applied, error: record.error }, `controller: ${action.type}: ${action.reason}`);
      this.emit('action', this.snapshot(), record);
    });
    this.actionChain = next.catch(() => {});
    return next;
  }

  private finishWithError(err: unknown): Promise<void> {
    const message = err instanceof Error ? err.message : String(err);
    if (this.policyAbort !== null) {
      return this.finish('failed', { name: 'ABORTED_BY_POLICY', message: `aborted by policy: ${this.policyAbort}` });
    }
    if (this.cancelRequested) return this.finish('cancelled', null);
    return this.finish('failed', { name: 'MIGRATION_FAILED', message });
  }

  private async finish(state: MigrationState, error: { name: ErrorName; message: string } | null): Promise<void> {
    await this.monitor?.stop();
    await this.actionChain;
    const s = this.status;
    if (state === 'completed') {
      s.progress = 100;
      s.dataRemaining = 0;
      await this.readCompletedStats();
    } else if (this.plan.controller) {
      // The source QEMU lives on: put back what the controller changed.
      for (const action of this.plan.controller.finish()) {
        await applyAction(this.plan.domain, action).catch((e: unknown) =>
          this.log.warn({ event: 'migration.restore_failed', err: String(e) }, 'could not restore a parameter'),
        );
      }
    }
    s.error = error ? { code: ErrorCodes[error.name], name: error.name, message: error.message } : null;
    s.endedAt = new Date().toISOString();
    s.elapsedMs = Date.now() - this.startedMs;
    this.setState(state);
    this.resolveDone(this.snapshot());
  }

  private async readCompletedStats(): Promise<void> {
    try {
      const stats = (await this.waitCompletedEvent(2000)) ?? (await this.plan.domain.getJobStats(JobStatsFlags.COMPLETED));
      const sample = sampleFromJobStats(stats, Date.now() - this.startedMs);
      this.status.downtimeMs = sample.downtimeMs ?? null;
      if (sample.dataTotal > 0) this.status.dataTotal = sample.dataTotal;
      if (sample.dataProcessed > 0) this.status.dataProcessed = sample.dataProcessed;
      if (sample.iteration > 0) this.status.iteration = sample.iteration;
    } catch (err) {
      this.log.debug({ event: 'migration.completed_stats_unavailable', err: String(err) }, 'no completed job statistics');
    }
  }

  private setState(state: MigrationState): void {
    this.status.state = state;
    const level = state === 'failed' ? 'error' : 'info';
    this.log[level]({ event: 'migration.state', state, error: this.status.error ?? undefined, progress: this.status.progress }, `migration ${state}`);
    this.emit('state', this.snapshot());
  }

  snapshot(): MigrationStatus {
    const s = this.status;
    return { ...s, elapsedMs: s.endedAt ? s.elapsedMs : Date.now() - this.startedMs, actions: [...s.actions] };
  }
}
