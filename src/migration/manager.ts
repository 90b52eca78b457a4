// Registry of this host's outgoing migrations: one active migration per VM, an outgoing limit with
// a FIFO of migrations waiting for a slot, statuses kept after the end, and one event stream (state,
// progress, action) for all of them. Who starts, waits or is refused is decided in outgoing-slots.ts.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { AgentError } from '../api/errors.js';
import type { JobStats } from '../libvirt/types.js';
import type { Adoption } from '../api/results.js';
import type { LedgerEntry, MigrationLedger, NewLedgerEntry } from './ledger.js';
import { Migration, type MigrationPlan } from './migration.js';
import { OutgoingQueue } from './outgoing-queue.js';
import { decideOutgoing, freeSlots } from './outgoing-slots.js';
import type { MigrationEventMap, MigrationStatus } from './status.js';
import { WaitingMigration, type WaitingInit } from './waiting.js';

const KEEP_FINISHED = 200;
const MAX_QUEUED = 64;
/** how often waiting migrations are checked against their deadline */
const EXPIRY_TICK_MS = 1000;

/** A migration as the verbs see it: running or ended, or still waiting for a slot. */
export type Outgoing = Migration | WaitingMigration;

/** Starts a waiting migration once it has a slot (destination admission, then `start`). */
export type Launch = () => Promise<Migration>;

/** What the ledger needs beyond the plan, so that a successor agent can go on with the migration. */
export interface StartRecord {
  /** the destination agent's URL (absent: a bare libvirt URI, no admission) */
  destinationAgent?: string;
  /** the resolved policy it started with */
  policy: unknown;
  guestRamBytes: number;
  postcopy: boolean;
}

export class MigrationManager extends EventEmitter<MigrationEventMap> {
  /** by VM UUID, the latest migration of each VM */
  private readonly byVm = new Map<string, Outgoing>();
  /** each ended migration's last steps (destination released, record removed) still under way */
  private readonly ending = new Set<Promise<unknown>>();
  /** VMs holding a slot while their migration is being started (destination admission) */
  private readonly reserved = new Set<string>();
  private readonly queue = new OutgoingQueue<{ waiting: WaitingMigration; launch: Launch }>(MAX_QUEUED);
  private expiryTimer: NodeJS.Timeout | null = null;
  /** shutting down: nothing waiting starts any more */
  private closed = false;

  constructor(
    private readonly maxOutgoing: number,
    /** on-disk record of running migrations, for the next agent process after a crash */
    private readonly ledger?: MigrationLedger,
  ) {
    super();
  }

  /** the most outgoing migrations at once */
  get limit(): number {
    return this.maxOutgoing;
  }

  /** running migrations (not the waiting ones) */
  get activeCount(): number {
    let n = 0;
    for (const m of this.byVm.values()) if (m instanceof Migration && m.active) n += 1;
    return n;
  }

  get queuedCount(): number {
    return this.queue.length;
  }

  /** slots held: running migrations, and those being started */
  private get busy(): number {
    let n = this.reserved.size;
    for (const [vm, m] of this.byVm) if (m instanceof Migration && m.active && !this.reserved.has(vm)) n += 1;
    return n;
  }

  private refuseQueueFull(): AgentError {
    return new AgentError('TOO_MANY_MIGRATIONS', `this host already has ${this.queue.length} outgoing migrations waiting (at most ${MAX_QUEUED})`, { limit: this.maxOutgoing, queued: this.queue.length, direction: 'outgoing' });
  }

  private refuseFull(): AgentError {
    return new AgentError('TOO_MANY_MIGRATIONS', `this host already runs ${this.busy} outgoing migrations (limit ${this.maxOutgoing})`, { limit: this.maxOutgoing, direction: 'outgoing' });
  }

  private checkNotMigrating(vmUuid: string, vmName: string): void {
    if (this.byVm.get(vmUuid)?.active || this.reserved.has(vmUuid)) {
      throw new AgentError('MIGRATION_IN_PROGRESS', `VM ${vmName} is already being migrated`, { vmId: vmUuid });
    }
  }

  /**
   * A new outgoing migration of this VM: 'start' holds a slot for it until `start` or `release`;
   * 'queue': call `enqueue`. Throws MIGRATION_IN_PROGRESS, or TOO_MANY_MIGRATIONS when full and
   * `queue` is false (or the FIFO is full).
   */
  claim(vmUuid: string, vmName: string, queue: boolean): 'start' | 'queue' {
    this.checkNotMigrating(vmUuid, vmName);
    const decision = decideOutgoing({ busy: this.busy, limit: this.maxOutgoing, queued: this.queue.length, maxQueued: MAX_QUEUED }, queue && !this.closed);
    if (decision.kind === 'refuse') {
      throw decision.reason === 'queue-full' ? this.refuseQueueFull() : this.refuseFull();
    }
    if (decision.kind === 'start') this.reserved.add(vmUuid);
    return decision.kind;
  }

  /** A slot claimed (or given to a waiting migration) is no longer held for a start: the next may go. */
  release(vmUuid: string): void {
    this.reserved.delete(vmUuid);
    this.pump();
  }

  /** Puts a migration in the FIFO (after `claim` said 'queue'); `launch` runs when it has a slot. */
  enqueue(init: WaitingInit, timeoutMs: number, launch: Launch, logger: Logger): WaitingMigration {
    const waiting = new WaitingMigration(init, () => this.queue.position(init.vmUuid), () => this.dequeue(init.vmUuid));
    const now = Date.now();
    if (!this.queue.enqueue({ vmUuid: init.vmUuid, vmName: init.vmName, enqueuedAt: now, deadline: now + timeoutMs, payload: { waiting, launch } })) {
      throw this.refuseQueueFull();
    }
    const log = logger.child({ migrationId: init.migrationId, vmId: init.vmUuid, vmName: init.vmName });
    this.track(init.vmUuid, waiting);
    waiting.on('state', (s) => this.emit('state', s));
    waiting.on('progress', (s) => this.emit('progress', s));
    void waiting.done.then((s) => {
      if (s.migrationId === init.migrationId && s.state !== 'completed') log.info({ event: 'migration.queue_end', state: s.state, error: s.error?.name ?? null }, `queued migration ended: ${s.state}`);
    });
    log.info({ event: 'migration.queued', position: this.queue.length, timeoutMs }, `waiting for an outgoing slot (position ${this.queue.length})`);
    this.emit('state', waiting.snapshot());
    this.armExpiry();
    this.prune();
    return waiting;
  }

  private dequeue(vmUuid: string): boolean {
    const gone = this.queue.remove(vmUuid);
    if (gone) this.movedUp();
    return gone !== undefined;
  }

  private movedUp(): void {
    for (const m of this.byVm.values()) if (m instanceof WaitingMigration) m.moved();
  }

  /** Waiting migrations past their deadline are refused; the head ones start while slots are free. */
  private pump(): void {
    if (this.closed) return;
    const now = Date.now();
    const expired = this.queue.expire(now);
    for (const e of expired) {
      const waitedSec = Math.round((now - e.enqueuedAt) / 1000);
      e.payload.waiting.end('failed', new AgentError('TOO_MANY_MIGRATIONS', `no outgoing slot became free within ${waitedSec} s (limit ${this.maxOutgoing}); the migration was not started`, { limit: this.maxOutgoing, direction: 'outgoing' }));
    }
    const next = this.queue.next(freeSlots(this.busy, this.maxOutgoing));
    for (const item of next) {
      const { waiting, launch } = item.payload;
      this.reserved.add(item.vmUuid);
      waiting.launching();
      launch()
        .then((m) => waiting.handOver(m), (err: unknown) => waiting.end('failed', err))
        .finally(() => this.release(item.vmUuid));
    }
    if (expired.length > 0 || next.length > 0) this.movedUp();
    this.armExpiry();
  }

  private armExpiry(): void {
    if (this.queue.length > 0 && !this.expiryTimer && !this.closed) {
      this.expiryTimer = setInterval(() => this.pump(), EXPIRY_TICK_MS);
      this.expiryTimer.unref();
    } else if (this.queue.length === 0 && this.expiryTimer) {
      clearInterval(this.expiryTimer);
      this.expiryTimer = null;
    }
  }

  /** Agent shutdown: every waiting migration is answered (cancelled), none starts from now on. */
  close(): void {
    this.closed = true;
    for (const item of this.queue.next(this.queue.length)) item.payload.waiting.end('cancelled', null);
    if (this.expiryTimer) clearInterval(this.expiryTimer);
    this.expiryTimer = null;
  }

  /** Throws unless a new migration of this VM may start now (no queue). */
  checkCanStart(vmUuid: string, vmName: string): void {
    this.checkNotMigrating(vmUuid, vmName);
    if (this.busy >= this.maxOutgoing) throw this.refuseFull();
  }

  /**
   * Starts a migration: recorded in the ledger first, so a migration that could not be recorded
   * never starts (STATE_WRITE_FAILED) and nothing is left pending. A slot claimed for this VM is
   * used; without one there must be a free slot.
   */
  start(plan: MigrationPlan, record: StartRecord, onEnd: () => Promise<void>): Migration {
    if (!this.reserved.has(plan.vmUuid)) this.checkCanStart(plan.vmUuid, plan.vmName);
    const migration = new Migration(plan);
    const entry: NewLedgerEntry = {
      migrationId: plan.migrationId,
      vmUuid: plan.vmUuid,
      vmName: plan.vmName,
      startedAt: migration.status.startedAt,
      source: plan.source,
      plan: {
        destination: plan.destination,
        ...(record.destinationAgent !== undefined ? { destinationAgent: record.destinationAgent } : {}),
        dconnuri: plan.dconnuri,
        flags: plan.flags,
        params: { ...plan.params },
        policyName: plan.policyName,
        policy: record.policy,
        guestRamBytes: record.guestRamBytes,
        postcopy: record.postcopy,
        ...(plan.completionTimeoutMs !== undefined ? { completionTimeoutMs: plan.completionTimeoutMs } : {}),
      },
      controller: plan.controller?.snapshot?.() ?? null,
      controllerSavedAt: plan.controller?.snapshot ? new Date().toISOString() : null,
    };
    try {
      this.ledger?.record(entry);
    } catch (err) {
      plan.logger.error({ event: 'migration.state_write_failed', migrationId: plan.migrationId, vmId: plan.vmUuid, err: String(err) }, 'could not record the migration; not started');
      throw new AgentError('STATE_WRITE_FAILED', `${(err as Error).message}; the migration was not started`, { migrationId: plan.migrationId });
    }
    this.register(migration, entry, plan.logger, onEnd);
    // the migration holds the slot from now on
    this.reserved.delete(plan.vmUuid);
    migration.start();
    return migration;
  }

  /**
   * Takes over a migration a predecessor agent started and recorded (`entry`): same migrationId,
   * same start time; `follow` waits for the running job's end instead of starting one.
   */
  adopt(plan: MigrationPlan, entry: LedgerEntry, adoption: Adoption, follow: () => Promise<void>, onEnd: () => Promise<void>): Migration {
    const migration = new Migration({ ...plan, startedAtMs: Date.parse(entry.startedAt) });
    migration.status.adoption = adoption;
    migration.status.progress = entry.progress ?? 0;
    migration.status.actions.push(...(entry.actions ?? []));
    const { version: _version, ...rest } = entry;
    this.register(migration, rest, plan.logger, onEnd);
    migration.start(follow);
    return migration;
  }

  private register(migration: Migration, entry: NewLedgerEntry, logger: Logger, onEnd: () => Promise<void>): void {
    const { vmUuid, migrationId } = entry;
    const log = logger.child({ migrationId, vmId: vmUuid, vmName: entry.vmName });
    this.track(vmUuid, migration);
    migration.on('state', (s) => this.emit('state', s));
    migration.on('progress', (s) => {
      this.emit('progress', s);
      if (s.iteration !== lastSaved) save();
    });
    migration.on('action', (s, r) => {
      this.emit('action', s, r);
      save();
    });
    // The controller's memory at each action and iteration boundary: what a successor resumes from.
    let lastSaved = -1;
    let warned = false;
    const save = (): void => {
      const controller = migration.controller;
      if (!this.ledger || !migration.active) return;
      lastSaved = migration.status.iteration;
      try {
        const { progress, actions } = migration.status;
        const saved = controller?.snapshot?.() ?? null;
        this.ledger.record({ ...entry, controller: saved, controllerSavedAt: saved ? new Date().toISOString() : null, progress, actions });
        warned = false;
      } catch (err) {
        if (!warned) log.warn({ event: 'migration.state_write_failed', err: String(err) }, 'could not save the controller state; a restarted agent would resume from an older one');
        warned = true;
      }
    };
    const ending = migration.done
      .then(onEnd)
      .finally(() => {
        try {
          this.ledger?.remove(migrationId);
        } catch (err) {
          log.warn({ event: 'migration.state_write_failed', err: String(err) }, 'could not remove the record of an ended migration');
        }
        this.ending.delete(ending);
        this.prune();
        this.pump();
      });
    this.ending.add(ending);
  }

  private track(vmUuid: string, m: Outgoing): void {
    this.byVm.delete(vmUuid); // re-insert so iteration order is oldest first
    this.byVm.set(vmUuid, m);
  }

  /** The latest migration of a VM, by UUID or name (a waiting one that started: the migration). */
  find(vmId: string): Outgoing | undefined {
    const latest = this.findEntry(vmId);
    return latest instanceof WaitingMigration && latest.started ? latest.started : latest;
  }

  private findEntry(vmId: string): Outgoing | undefined {
    const direct = this.byVm.get(vmId);
    if (direct) return direct;
    let found: Outgoing | undefined;
    for (const m of this.byVm.values()) if (m.status.vmName === vmId) found = m;
    return found;
  }

  get(vmId: string): Outgoing {
    const m = this.find(vmId);
    if (!m) throw new AgentError('NO_MIGRATION', `no migration of VM ${vmId} is known on this host`, { vmId });
    return m;
  }

  /** A migration of this VM (by UUID) is starting or running here. */
  migrating(vmUuid: string): boolean {
    return this.byVm.get(vmUuid)?.active === true || this.reserved.has(vmUuid);
  }

  /** The libvirt connection was lost and re-opened: running migrations look their VMs up again. */
  connectionLost(): void {
    for (const m of this.byVm.values()) if (m instanceof Migration && m.active) m.connectionLost();
  }

  onIteration(vmUuid: string): void {
    const m = this.byVm.get(vmUuid);
    if (m instanceof Migration) m.poke();
  }

  onJobCompleted(vmUuid: string, stats: JobStats): void {
    const m = this.byVm.get(vmUuid);
    if (m instanceof Migration && m.active) m.onJobCompleted(stats);
  }

  list(): MigrationStatus[] {
    return [...this.byVm.values()].map((m) => m.snapshot());
  }

  /** Wait for every active migration to end, and for its record to be removed (used at shutdown after
   *  cancelling them): a record left behind makes the next agent take the ended migration for one
   *  that ran on unattended. */
  async settle(): Promise<void> {
    await Promise.all([...this.byVm.values()].map((m) => m.done));
    await Promise.allSettled([...this.ending]);
  }

  private prune(): void {
    const finished = [...this.byVm.entries()].filter(([, m]) => !m.active);
    for (const [key] of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) this.byVm.delete(key);
  }
}
