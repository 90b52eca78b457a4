// One outgoing migration: starts libvirt's peer-to-peer migration (or follows one already running),
// samples it, feeds the controller, applies its actions, watches the stream for a stall, resumes a
// broken post-copy, and at the end finds out where the VM runs, puts back the parameters it changed
// on the copy that remains, and keeps the status that VM.migrateStatus returns after the end too.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Action, ControllerPort } from '../controller/types.js';
import type { QemuParams } from '../controller/index.js';
import { AgentError, type ErrorName, ErrorCodes } from '../api/errors.js';
import { isMigrationActive, type VmLocation } from '../api/results.js';
import { isConnectionLost, isNoDomain } from '../libvirt/errors.js';
import type { Domain, JobStats, MigrateParams as LibvirtMigrateParams } from '../libvirt/types.js';
import { isJobActive, JobOperation, JobStatsFlags, MigrateFlags } from '../libvirt/types.js';
import { isTransferStalled, stalledForMs, watchTransfer, type TransferWatch } from '../controller/transfer.js';
import { applyAction } from './effects.js';
import { breakStuckStreams } from './stuck-stream.js';
import { destinationLost, postcopyPhase, vmLocation, type HostView } from './location.js';
import { startMonitor, SampleTimeoutError, type Monitor } from './monitor.js';
import { baselineRestoreActions, type QemuMigrationParams } from './params.js';
import { viewOf } from './probe.js';
import { progressPercent } from './progress.js';
import { putBackAndVerify } from './put-back.js';
import { readMigrationParams, restoreAndVerify, type RestoreResult } from './restore.js';
import { sampleFromJobStats, type MigrationSample } from '../controller/sample.js';
import type { ActionRecord, MigrationEventMap, MigrationState, MigrationStatus } from './status.js';
import { freshStatus } from './status.js';

export interface MigrationPlan {
  migrationId: string;
  /** the VM on the source, on the agent's libvirt connection */
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
  /** measure the guest's dirty rate (MiB/s) while the first pass runs, for the controller; a
   *  failure is logged and the migration goes on without */
  measureDirtyRate?: () => Promise<number>;
  /** without a controller (stock policy): abort after this long, so nothing runs throttled for ever */
  completionTimeoutMs?: number;
  /** abort a pre-copy migration whose stream moved no data for this long (policy transferStallSec) */
  transferStallMs: number;
  /** give up resuming a broken post-copy after this long (policy postcopyRecoverySec) */
  postcopyRecoveryMs: number;
  intervalMs: number;
  sampleTimeoutMs: number;
  /** a fresh handle on the VM by UUID, after the libvirt connection was lost (re-opens it as needed) */
  reacquire: () => Promise<Domain>;
  /** the VM as the destination host's libvirt sees it, to tell where the VM stands at the end */
  viewDestination: () => Promise<HostView>;
  logger: Logger;
  /** QEMU's max-bandwidth (bytes/s) before the migration: a libvirtd that dies mid-migration leaves
   *  libvirt's cap on it, and the agent puts it back at the end */
  bandwidthBefore?: number;
  /** when the migration started, if before this object (adopted from a predecessor agent); epoch ms */
  startedAtMs?: number;
  /** QEMU's parameters before the migration as a predecessor agent recorded them (adopted migrations:
   *  what a lost controller state cannot say is put back from these) */
  originalParams?: QemuParams;
}

/** How long a lost libvirt connection may take to come back before the agent gives up following. */
const RECONNECT_LIMIT_MS = 60_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const MiB = 1024 * 1024;
/** Delay before post-copy resume attempt `n`: 1 s doubling, at most 5 s. */
const resumeDelayMs = (n: number): number => Math.min(5_000, 1_000 * 2 ** Math.min(n, 3));
/** A policy abort that QEMU has not carried out this long after the stall limit (its monitor hangs,
 *  see stuck-stream.ts) is forced by breaking the stream. */
const STREAM_BREAK_AFTER_MS = 10_000;

export class Migration extends EventEmitter<MigrationEventMap> {
  readonly status: MigrationStatus;
  readonly done: Promise<MigrationStatus>;
  private readonly plan: MigrationPlan;
  private readonly log: Logger;
  private readonly startedMs: number;
  private domain: Domain;
  /** the handle's connection was lost: look the VM up again before the next call */
  private domainStale = false;
  private monitor: Monitor | null = null;
  private cancelRequested = false;
  private policyAbort: string | null = null;
  private actionChain: Promise<void> = Promise.resolve();
  private resolveDone!: (s: MigrationStatus) => void;
  /** a virDomainMigrateToURI3 call of ours is in flight: its return ends (or pauses) the migration */
  private callPending = false;
  /** the end is being worked out (settle) or written (finish): no new actions from now on */
  private settling = false;
  private finishing = false;
  /** post-copy switched over: the guest's state is on the destination, nothing can cancel it */
  private postcopyStarted = false;
  private transfer: TransferWatch | null = null;
  /** a stall found while QEMU did not answer: when the abort was sent, and why */
  private silentStall: { atMs: number; reason: string; broken: boolean } | null = null;
  /** parameters changed without a controller (stock policy), and their values before the first change */
  private readonly externalChanges: Action[] = [];
  private baseline: QemuMigrationParams | null = null;
  /** libvirt's job-completed event; may arrive just before or just after the migrate call returns */
  private completedStats: JobStats | null = null;
  private completedWaiter: (() => void) | null = null;

  constructor(plan: MigrationPlan) {
    super();
    this.plan = plan;
    this.startedMs = plan.startedAtMs ?? Date.now();
    this.domain = plan.domain;
    this.log = plan.logger.child({ migrationId: plan.migrationId, vmId: plan.vmUuid, vmName: plan.vmName });
    this.status = freshStatus({
      migrationId: plan.migrationId,
      vmId: plan.vmUuid,
      vmName: plan.vmName,
      source: plan.source,
      destination: plan.destination,
      state: 'pending',
      // libvirt fails the migration rather than fall back to plain text, so the flag is the truth
      tls: (plan.flags & MigrateFlags.TLS) !== 0,
      startedMs: this.startedMs,
      policy: plan.policyName,
    });
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  get active(): boolean {
    return isMigrationActive(this.status.state);
  }

  /** Start libvirt's migration in the background; the outcome arrives through events and `done`.
   *  `follow`: the job already runs (a predecessor agent started it): wait for its end instead of
   *  starting it; it resolves or rejects as the migrate call would. */
  start(follow?: () => Promise<void>): void {
    if (!follow) this.log.info({ event: 'migration.start', destination: this.plan.destination, flags: this.plan.flags }, 'migration starting');
    // an adopted job is known to run: say so before its first sample, not "pending"
    if (follow) this.status.state = 'running';
    this.emit('state', this.snapshot());
    this.startMonitoring();
    if (follow) this.awaitEnd(follow);
    else this.callMigrate(this.plan.flags);
    if (!follow && this.plan.measureDirtyRate) void this.measureAlongside(this.plan.measureDirtyRate);
  }

  /** A steered migration measures the guest's dirty rate (about a second) while its first pass runs,
   *  and hands it to the controller, which plans the throttle from it within that pass. */
  private async measureAlongside(measure: () => Promise<number>): Promise<void> {
    const started = Date.now();
    try {
      const mibPerSec = await measure();
      if (!this.active) return;
      this.plan.controller?.useMeasuredDirtyRate?.(mibPerSec);
      this.log.info({ event: 'migration.dirty_rate', mibPerSec, ms: Date.now() - started }, `dirty rate measured during the first pass: ${mibPerSec} MiB/s`);
    } catch (e) {
      const err = e instanceof Error ? e.message : String(e);
      // A migration that is ending (guest paused for the switch-over, domain gone, or failed)
      // fails the measurement too; that is no news. Give its end a moment to show.
      await Promise.race([this.done, new Promise((r) => setTimeout(r, 2_000).unref())]);
      if (!this.active) {
        this.log.debug({ event: 'migration.dirty_rate_failed', err }, 'dirty rate not measured: the migration ended');
        return;
      }
      this.log.warn({ event: 'migration.dirty_rate_failed', err }, 'dirty rate not measured; steering from the passes alone');
    }
  }

  private startMonitoring(): void {
    const watchesPostcopy = (this.plan.flags & MigrateFlags.POSTCOPY) !== 0;
    this.monitor = startMonitor({
      intervalMs: this.plan.intervalMs,
      timeoutMs: this.plan.sampleTimeoutMs,
      sample: async () => {
        const d = await this.currentDomain();
        // with post-copy enabled, the domain state tells when it switched over or broke
        const [stats, view] = await Promise.all([d.getJobStats(), watchesPostcopy ? viewOf(async () => d) : Promise.resolve(null)]);
        return { stats, view };
      },
      onSample: ({ stats, view }) => this.onSample(stats, view),
      onError: (err) => this.onSampleError(err),
    });
  }

  private callMigrate(flags: number): void {
    const d = this.domain;
    this.awaitEnd(() => d.migrateToUri3(this.plan.dconnuri, this.plan.params, flags));
  }

  /** `run` ends when the migration does (libvirt's call, or following a predecessor's job). */
  private awaitEnd(run: () => Promise<void>): void {
    this.callPending = true;
    run()
      .then(
        () => {
          this.callPending = false;
          return this.settle(null, true);
        },
        (err: unknown) => {
          this.callPending = false;
          return this.settle(err, false);
        },
      )
      .catch((err: unknown) => this.internalError(err));
  }

  private internalError(err: unknown): void {
    // A bug in the bookkeeping must not leave the migration "running" for ever.
    this.log.error({ event: 'migration.internal_error', err: String(err) }, 'internal error');
    if (!this.active) return;
    this.status.error = { code: ErrorCodes.MIGRATION_FAILED, name: 'MIGRATION_FAILED', message: `internal error: ${String(err)}` };
    this.status.endedAt = new Date().toISOString();
    this.status.vmLocation ??= 'unknown';
    this.setState('failed');
    this.resolveDone(this.snapshot());
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

  /** The libvirt connection was lost (and maybe re-opened): look the VM up again before the next call. */
  connectionLost(): void {
    this.domainStale = true;
    this.monitor?.poke();
  }

  private async currentDomain(): Promise<Domain> {
    if (this.domainStale) {
      this.domain = await this.plan.reacquire();
      this.domainStale = false;
      this.log.info({ event: 'migration.reacquired' }, 'VM looked up again on the new libvirt connection');
    }
    return this.domain;
  }

  /** currentDomain() on a connection that answers (a handle on a dropped connection is looked up
   *  again), retried with backoff while libvirt comes back (it restarts in a few seconds). */
  private async domainWithin(ms: number): Promise<Domain | null> {
    const deadline = Date.now() + ms;
    for (let attempt = 0; ; attempt++) {
      try {
        const d = await this.currentDomain();
        // the VM gone from this host is an answer too (a completed migration of a transient VM)
        const answers = await d.getState().then(() => true, (e: unknown) => (isNoDomain(e) ? true : Promise.reject(e)));
        if (answers) return d;
      } catch (err) {
        this.domainStale = true;
        if (isNoDomain(err)) return null; // gone from this host: nothing to look up
        if (Date.now() > deadline) {
          this.log.error({ event: 'migration.reacquire_failed', err: String(err) }, 'libvirt did not come back');
          return null;
        }
        await sleep(Math.min(2_000, 250 * 2 ** attempt));
      }
    }
  }

  private get inPostcopy(): boolean {
    return this.postcopyStarted || this.status.state === 'postcopy-paused';
  }

  /**
   * Cancel: the VM stays on the source. Refused at once, changing nothing, when the migration ended
   * or is in post-copy (the guest runs on the destination; cancelling would lose it).
   */
  async cancel(): Promise<void> {
    if (!this.active || this.settling || this.finishing) {
      throw new AgentError('NOT_CANCELLABLE', `migration of ${this.plan.vmName} already ended (${this.status.state})`);
    }
    if (!this.inPostcopy && (this.plan.flags & MigrateFlags.POSTCOPY) !== 0) {
      // it may have switched over since the last sample
      const phase = postcopyPhase(await viewOf(() => this.currentDomain(), 2_000));
      if (phase !== 'none') this.postcopyStarted = true;
    }
    if (this.inPostcopy) {
      throw new AgentError('NOT_CANCELLABLE', `migration of ${this.plan.vmName} is in post-copy: the guest already runs on the destination and cannot be taken back`, { state: this.status.state });
    }
    this.cancelRequested = true;
    this.log.info({ event: 'migration.cancel' }, 'cancel requested');
    try {
      await this.abortUntilGone();
    } catch (err) {
      this.cancelRequested = false;
      throw err;
    }
  }

  /** The convergence controller steering this migration, if any (VM.migrateChangeParams goes through it). */
  get controller(): ControllerPort | null {
    return this.plan.controller;
  }

  setPolicyName(name: string): void {
    this.status.policy = name;
  }

  /** Apply an action that came from outside the controller (VM.migrateChangeParams). */
  async applyExternal(action: Action): Promise<void> {
    if (this.settling || this.finishing || !this.active) {
      throw new AgentError('NO_MIGRATION', `migration of ${this.plan.vmName} is ending (${this.status.state}); nothing changed`);
    }
    if (!this.plan.controller && action.type !== 'abort' && action.type !== 'postcopy') {
      // stock policy: remember QEMU's values before the first change, to put them back at the end
      if (this.baseline === null) this.baseline = await readMigrationParams(await this.currentDomain());
      this.externalChanges.push(action);
    }
    return this.runAction(action);
  }

  // libvirt may not have created its job yet when a cancel arrives: retry the abort briefly.
  private async abortUntilGone(): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await (await this.currentDomain()).abortJob();
        return;
      } catch (err) {
        if (!this.active || this.settling) return;
        if (isConnectionLost(err)) this.domainStale = true;
        if (Date.now() > deadline) throw err;
        await sleep(200);
      }
    }
  }

  private onSampleError(err: Error): void {
    if (isNoDomain(err) && !this.callPending && this.active && !this.settling && !this.finishing) {
      // followed job (no call of ours waits for it): a transient VM that left this host has migrated
      // (libvirt finished it unattended, e.g. after a libvirtd restart in post-copy): settle now
      void this.settle(null, false).catch((e: unknown) => this.internalError(e));
      return;
    }
    if (isConnectionLost(err) || err instanceof SampleTimeoutError) {
      if (!this.domainStale) this.log.warn({ event: 'migration.libvirt_lost', err: err.message }, 'libvirt connection lost; re-acquiring the VM');
      this.domainStale = true;
      if (err instanceof SampleTimeoutError) this.onSilence();
      return;
    }
    this.log.debug({ event: 'migration.sample_error', err: err.message }, 'job statistics unavailable');
  }

  /**
   * No statistics came in time. A pre-copy stream that has moved nothing for the stall limit is
   * aborted even so; when QEMU does not carry the abort out (its monitor hangs on the stuck stream,
   * stuck-stream.ts), the stream is broken so that the migration fails and the guest runs on.
   */
  private onSilence(): void {
    if (!this.active || this.settling || this.finishing || this.inPostcopy || this.cancelRequested || this.transfer === null) return;
    const t = Date.now() - this.startedMs;
    if (!isTransferStalled(this.transfer, t, this.plan.transferStallMs)) return;
    if (this.silentStall === null) {
      const reason = this.stallReason(this.transfer, t, ' and QEMU stopped answering');
      this.silentStall = { atMs: t, reason, broken: false };
      if (this.policyAbort === null) void this.runAction({ type: 'abort', reason });
      return;
    }
    if (this.silentStall.broken || t - this.silentStall.atMs < STREAM_BREAK_AFTER_MS) return;
    this.silentStall.broken = true;
    void this.breakStream();
  }

  /** Why a stalled pre-copy stream is aborted (`also`: what else was seen). */
  private stallReason(transfer: TransferWatch, t: number, also: string): string {
    const secs = Math.round(stalledForMs(transfer, t) / 1000);
    return `no data moved for ${secs} s${also} (a cut link or a hung destination; policy limit ${Math.round(this.plan.transferStallMs / 1000)} s); the guest keeps running on the source`;
  }

  private async breakStream(): Promise<void> {
    try {
      const { pids, broken } = await breakStuckStreams(this.plan.vmName);
      if (pids.length === 0) {
        this.log.error({ event: 'migration.stream_stuck' }, 'the migration stream is stuck and QEMU does not answer; its process is not visible here, so the stream cannot be broken: it ends when TCP gives up');
        return;
      }
      this.log.warn({ event: 'migration.stream_broken', qemuPids: pids, sockets: broken }, broken.length ? `QEMU did not carry out the abort: broke its stuck migration stream (${broken.join(', ')})` : 'QEMU did not carry out the abort, but none of its connections holds unsent data');
    } catch (err) {
      this.log.error({ event: 'migration.stream_stuck', err: err instanceof Error ? err.message : String(err) }, 'the migration stream is stuck and QEMU does not answer; breaking the stream failed (the agent needs CAP_NET_ADMIN): it ends when TCP gives up');
    }
  }

  private onSample(stats: JobStats, view: HostView | null): void {
    if (!this.active || this.settling || this.finishing) return;
    const t = Date.now() - this.startedMs;
    const phase = view ? postcopyPhase(view) : 'none';
    if (phase !== 'none' && !this.status.postcopy) {
      this.postcopyStarted = true;
      this.status.postcopy = true;
      this.log.info({ event: 'migration.postcopy' }, 'migration switched to post-copy');
    }
    if (isJobActive(stats.type)) this.transfer = watchTransfer(this.transfer, sampleFromJobStats(stats, t).dataProcessed, t);
    // A post-copy stream that moves nothing (a silent cut) leaves the guest waiting on its pages as
    // much as a broken one does. It is not interrupted: QEMU's migrate-pause would close the source's
    // socket, and a destination that never hears of it (libvirt 9.0 cannot pause the incoming side)
    // would wait for ever; left alone, TCP resumes the stream once the link is back.
    const stalled = phase === 'active' && this.transfer !== null && isTransferStalled(this.transfer, t, this.plan.transferStallMs);
    if ((phase === 'paused' || stalled) && this.status.state !== 'postcopy-paused') {
      if (stalled) this.log.warn({ event: 'migration.postcopy_stalled', stalledSecs: Math.round(stalledForMs(this.transfer!, t) / 1000) }, 'post-copy moves no data (link cut or destination hung); the guest waits on its pages until the stream moves again');
      else this.log.warn({ event: 'migration.postcopy_paused' }, 'post-copy broke (link or destination); the guest is paused until it resumes');
      this.setState('postcopy-paused');
    } else if (phase === 'active' && !stalled && this.status.state === 'postcopy-paused') {
      this.log.info({ event: 'migration.postcopy_resumed' }, 'post-copy moves again');
      this.setState('running');
    }
    if (!isJobActive(stats.type)) {
      // libvirt's job ended while no call of ours was waiting for it (we follow it): settle now
      if (!this.callPending && this.status.state !== 'pending') void this.settle(null, false).catch((e: unknown) => this.internalError(e));
      return;
    }
    const sample = sampleFromJobStats(stats, t);
    if (this.status.state === 'pending') this.setState('running');
    // QEMU's setup phase reports an active job with no figures yet: "0 % of nothing" is no sample
    if (sample.dataTotal === 0) return;
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
    if (s.state !== 'running') return;
    const steerable = !this.cancelRequested && this.policyAbort === null;
    if (this.plan.controller && steerable) {
      for (const action of this.plan.controller.observe(sample)) void this.runAction(action);
    }
    if (steerable && !this.inPostcopy && this.transfer !== null && isTransferStalled(this.transfer, t, this.plan.transferStallMs)) {
      void this.runAction({ type: 'abort', reason: this.stallReason(this.transfer, t, '') });
      return;
    }
    const timeout = this.plan.completionTimeoutMs;
    if (!this.plan.controller && timeout !== undefined && s.elapsedMs > timeout && steerable && !this.inPostcopy) {
      void this.runAction({ type: 'abort', reason: `completion timeout of ${Math.round(timeout / 1000)} s reached (policy ${this.status.policy})` });
    }
  }

  // Actions are applied one at a time, in the order decided.
  private runAction(action: Action): Promise<void> {
    const next = this.actionChain.then(async () => {
      if (!this.active || this.finishing) return;
      if (action.type === 'abort') {
        if (this.inPostcopy) return; // aborting now would lose the guest
        this.policyAbort = action.reason;
      }
      const record: ActionRecord = {
        at: new Date().toISOString(),
        t: Date.now() - this.startedMs,
        action,
        applied: true,
      };
      try {
        await applyAction(await this.currentDomain(), action);
        // requested only: QEMU switches over at its next iteration (status.postcopy says when it did);
        // from here on, cancel and abort are refused as if it had
        if (action.type === 'postcopy') this.postcopyStarted = true;
      } catch (err) {
        record.applied = false;
        record.error = err instanceof Error ? err.message : String(err);
        if (isConnectionLost(err)) this.domainStale = true;
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

  /**
   * libvirt's call returned (ok or not), or the job we followed ended: find out what really happened.
   * The job may live on (only our connection broke), post-copy may have broken (resume it), or it ended:
   * then where the VM runs decides the outcome.
   */
  private async settle(err: unknown, callSucceeded: boolean): Promise<void> {
    if (this.settling || !this.active) return;
    this.settling = true;
    const message = err instanceof Error ? err.message : err === null ? null : String(err);
    if (err !== null) this.log.info({ event: 'migration.call_failed', err: message, connectionLost: isConnectionLost(err) }, 'libvirt migration call returned an error; checking the VM');
    if (!callSucceeded) {
      const d = await this.domainWithin(RECONNECT_LIMIT_MS);
      if (d === null) return this.finishWhereItIs(message, false); // gone from the source, or libvirt never came back
      const [stats, view] = await Promise.all([d.getJobStats().catch(() => null), viewOf(async () => d)]);
      const phase = postcopyPhase(view);
      if (phase !== 'none') this.postcopyStarted = this.status.postcopy = true;
      const outgoing = stats !== null && isJobActive(stats.type) && (stats['operation'] === undefined || stats['operation'] === JobOperation.MIGRATION_OUT);
      if (phase === 'paused') return this.recoverPostcopy(message);
      if (outgoing) {
        // libvirt carries the migration on; only our client went away: follow it to its end
        this.log.warn({ event: 'migration.follow', err: message }, 'libvirt still runs the migration; following it');
        this.settling = false;
        return;
      }
    }
    return this.finishWhereItIs(message, callSucceeded);
  }

  /** Post-copy broke: report `postcopy-paused` and resume it with libvirt's post-copy recovery until
   *  it works or the policy's time runs out. Never aborted: the guest's memory is on both hosts. */
  private async recoverPostcopy(cause: string | null): Promise<void> {
    if (this.status.state !== 'postcopy-paused') {
      this.log.warn({ event: 'migration.postcopy_paused', err: cause }, 'post-copy broke (link or destination); the guest is paused until it resumes');
      this.setState('postcopy-paused');
    }
    const pausedAt = Date.now();
    let lastError = cause;
    for (let attempt = 0; Date.now() - pausedAt < this.plan.postcopyRecoveryMs; attempt++) {
      await sleep(resumeDelayMs(attempt));
      const d = await this.domainWithin(Math.max(0, this.plan.postcopyRecoveryMs - (Date.now() - pausedAt)));
      if (d === null) break;
      this.log.info({ event: 'migration.postcopy_resume', attempt: attempt + 1 }, 'resuming post-copy');
      try {
        this.callPending = true;
        await d.migrateToUri3(this.plan.dconnuri, this.plan.params, this.plan.flags | MigrateFlags.POSTCOPY | MigrateFlags.POSTCOPY_RESUME);
        this.callPending = false;
        this.log.info({ event: 'migration.postcopy_recovered', attempts: attempt + 1, pausedMs: Date.now() - pausedAt }, 'post-copy recovered');
        return this.finishWhereItIs(null, true);
      } catch (err) {
        this.callPending = false;
        lastError = err instanceof Error ? err.message : String(err);
        if (isConnectionLost(err)) this.domainStale = true;
        const [phase, destination] = await Promise.all([postcopyPhase(await viewOf(() => this.currentDomain())), this.plan.viewDestination()]);
        this.log.warn({ event: 'migration.postcopy_resume_failed', attempt: attempt + 1, err: lastError, phase, destination }, 'post-copy resume failed');
        if (phase === 'none') return this.finishWhereItIs(lastError, false); // it ended after all
        if (destinationLost(destination)) {
          // the destination QEMU held the running guest and is gone: no resume can bring it back
          return this.finishWhereItIs(`post-copy cannot be recovered: the guest's destination copy is gone (${lastError}); the paused source copy is stale and must not be resumed`, false);
        }
      }
    }
    const secs = Math.round(this.plan.postcopyRecoveryMs / 1000);
    return this.finishWhereItIs(`post-copy could not be resumed within ${secs} s (policy postcopyRecoverySec)${lastError ? `: ${lastError}` : ''}`, false);
  }

  /** The VM as the source's libvirt sees it now (waiting for libvirt to come back if it restarts). */
  private async sourceView(): Promise<HostView> {
    const d = await this.domainWithin(RECONNECT_LIMIT_MS);
    return viewOf(d === null ? () => this.plan.reacquire() : async () => d);
  }

  /** Look at both hosts, then end the migration with the state that matches where the VM runs. */
  private async finishWhereItIs(message: string | null, callSucceeded: boolean): Promise<void> {
    const [source, destination] = await Promise.all([this.sourceView(), this.plan.viewDestination()]);
    const where = vmLocation(source, destination);
    this.log.info({ event: 'migration.location', vmLocation: where, source, destination }, `VM found: ${where}`);
    if (callSucceeded || where === 'destination') {
      if (!callSucceeded) this.log.warn({ event: 'migration.completed_despite_error', err: message }, 'libvirt reported an error, but the VM runs on the destination');
      return this.finish('completed', null, where);
    }
    if (where === 'source') {
      const abortReason = this.policyAbort ?? this.silentStall?.reason ?? null;
      if (abortReason !== null) return this.finish('failed', { name: 'ABORTED_BY_POLICY', message: `aborted by policy: ${abortReason}` }, where);
      if (this.cancelRequested) return this.finish('cancelled', null, where);
    }
    const why = message ?? 'libvirt ended the migration without the VM reaching the destination (e.g. libvirtd restarted)';
    return this.finish('failed', { name: 'MIGRATION_FAILED', message: `${why}; VM: ${where}` }, where);
  }

  private async finish(state: MigrationState, error: { name: ErrorName; message: string } | null, where: VmLocation): Promise<void> {
    this.finishing = true;
    await this.monitor?.stop();
    await this.actionChain;
    const s = this.status;
    if (state === 'completed') {
      s.progress = 100;
      s.dataRemaining = 0;
      await this.readCompletedStats();
    }
    if (where === 'source' || where === 'paused-source') await this.restoreParams();
    s.vmLocation = where;
    s.error = error ? { code: ErrorCodes[error.name], name: error.name, message: error.message } : null;
    s.endedAt = new Date().toISOString();
    s.elapsedMs = Date.now() - this.startedMs;
    this.setState(state);
    this.resolveDone(this.snapshot());
  }

  /** The source QEMU lives on: put back what the agent changed, and read it back. */
  private async restoreParams(): Promise<void> {
    const actions = this.plan.controller
      ? this.plan.controller.finish()
      : this.baseline
        ? baselineRestoreActions(this.baseline, this.externalChanges, 'migration ended')
        : [];
    const d = await this.domainWithin(10_000);
    if (d === null) {
      this.status.paramsRestored = actions.length > 0 ? false : null;
      return;
    }
    const restored = await restoreAndVerify(d, actions);
    // after the restore, whatever set it (a dead libvirtd's leftover, or the migration's own cap as
    // the controller's "original"), QEMU's limit goes back to what it was before the migration
    const bandwidth = await this.bandwidthLeftCapped(d);
    const uncapped = bandwidth ? await restoreAndVerify(d, [bandwidth]) : null;
    const recorded = await this.putBackRecorded(d);
    const parts = [restored, uncapped, recorded].filter((r): r is RestoreResult => r !== null && r.verified !== null);
    const verified = parts.length === 0 ? null : parts.every((r) => r.verified === true);
    this.status.paramsRestored = verified;
    if (verified === false) {
      this.log.error({ event: 'migration.restore_failed', problems: parts.flatMap((r) => r.problems) }, 'parameters could not be put back');
    } else if (verified) {
      this.log.info({ event: 'migration.restored', count: actions.length + (uncapped ? 1 : 0) + (recorded?.count ?? 0) }, 'parameters put back and read back');
    }
  }

  /** Adopted migration: whatever still differs from the predecessor's record is put back and read again. */
  private async putBackRecorded(d: Domain): Promise<(RestoreResult & { count: number }) | null> {
    const original = this.plan.originalParams;
    if (original === undefined) return null;
    try {
      const { putBack, left } = await putBackAndVerify(d, original, 'adopted migration ended');
      if (putBack.length === 0) return null;
      return { verified: left.length === 0, problems: left.map((p) => `${p} still differs after restore`), count: putBack.length };
    } catch (err) {
      return { verified: false, problems: [`read back: ${String(err)}`], count: 0 };
    }
  }

  /** libvirt takes its migration bandwidth cap off QEMU when the job ends, unless libvirtd died
   *  meanwhile: then the agent does. Null when the limit is as it was (or cannot be known). */
  private async bandwidthLeftCapped(d: Domain): Promise<Action | null> {
    const before = this.plan.bandwidthBefore;
    if (before === undefined) return null;
    const now = await readMigrationParams(d).then((p) => p['max-bandwidth'], () => undefined);
    if (now === undefined || now === before) return null;
    return { type: 'set-bandwidth', mibPerSec: Math.round(before / MiB), reason: `migration ended: QEMU's bandwidth limit back from the migration's ${Math.round(now / MiB)} MiB/s` };
  }

  private async readCompletedStats(): Promise<void> {
    try {
      const stats = (await this.waitCompletedEvent(2000)) ?? (await (await this.currentDomain()).getJobStats(JobStatsFlags.COMPLETED));
      const sample = sampleFromJobStats(stats, Date.now() - this.startedMs);
      this.status.downtimeMs = sample.downtimeMs ?? null;
      if (sample.dataTotal > 0) this.status.dataTotal = sample.dataTotal;
      if (sample.dataProcessed > 0) this.status.dataProcessed = sample.dataProcessed;
      if (sample.iteration > 0) this.status.iteration = sample.iteration;
      // a post-copy phase shorter than one sampling interval shows only here
      if (sample.postcopyRequests > 0) this.status.postcopy = true;
    } catch (err) {
      this.log.debug({ event: 'migration.completed_stats_unavailable', err: String(err) }, 'no completed job statistics');
    }
  }

  private setState(state: MigrationState): void {
    this.status.state = state;
    const level = state === 'failed' ? 'error' : state === 'postcopy-paused' ? 'warn' : 'info';
    this.log[level]({ event: 'migration.state', state, error: this.status.error ?? undefined, progress: this.status.progress, vmLocation: this.status.vmLocation ?? undefined }, `migration ${state}`);
    this.emit('state', this.snapshot());
  }

  snapshot(): MigrationStatus {
    const s = this.status;
    return { ...s, elapsedMs: s.endedAt ? s.elapsedMs : Date.now() - this.startedMs, actions: [...s.actions] };
  }
}
