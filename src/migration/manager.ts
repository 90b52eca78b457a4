// Registry of this host's outgoing migrations: one active migration per VM, an outgoing limit,
// statuses kept after the end, and one event stream (state, progress, action) for all of them.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { AgentError } from '../api/errors.js';
import type { JobStats } from '../libvirt/types.js';
import type { Adoption } from '../api/results.js';
import type { LedgerEntry, MigrationLedger, NewLedgerEntry } from './ledger.js';
import { Migration, type MigrationPlan } from './migration.js';
import type { MigrationEventMap, MigrationStatus } from './status.js';

const KEEP_FINISHED = 200;

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
  private readonly byVm = new Map<string, Migration>();

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

  get activeCount(): number {
    let n = 0;
    for (const m of this.byVm.values()) if (m.active) n += 1;
    return n;
  }

  /** Throws unless a new migration of this VM may start now. */
  checkCanStart(vmUuid: string, vmName: string): void {
    if (this.byVm.get(vmUuid)?.active) {
      throw new AgentError('MIGRATION_IN_PROGRESS', `VM ${vmName} is already being migrated`, { vmId: vmUuid });
    }
    if (this.activeCount >= this.maxOutgoing) {
      throw new AgentError('TOO_MANY_MIGRATIONS', `this host already runs ${this.activeCount} outgoing migrations (limit ${this.maxOutgoing})`, { limit: this.maxOutgoing, direction: 'outgoing' });
    }
  }

  /**
   * Starts a migration: recorded in the ledger first, so a migration that could not be recorded
   * never starts (STATE_WRITE_FAILED) and nothing is left pending.
   */
  start(plan: MigrationPlan, record: StartRecord, onEnd: () => Promise<void>): Migration {
    this.checkCanStart(plan.vmUuid, plan.vmName);
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
    this.byVm.delete(vmUuid); // re-insert so iteration order is oldest first
    this.byVm.set(vmUuid, migration);
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
    void migration.done
      .then(onEnd)
      .finally(() => {
        try {
          this.ledger?.remove(migrationId);
        } catch (err) {
          log.warn({ event: 'migration.state_write_failed', err: String(err) }, 'could not remove the record of an ended migration');
        }
        this.prune();
      });
  }

  /** The latest migration of a VM, by UUID or name. */
  find(vmId: string): Migration | undefined {
    const direct = this.byVm.get(vmId);
    if (direct) return direct;
    let found: Migration | undefined;
    for (const m of this.byVm.values()) if (m.status.vmName === vmId) found = m;
    return found;
  }

  get(vmId: string): Migration {
    const m = this.find(vmId);
    if (!m) throw new AgentError('NO_MIGRATION', `no migration of VM ${vmId} is known on this host`, { vmId });
    return m;
  }

  /** The libvirt connection was lost and re-opened: running migrations look their VMs up again. */
  connectionLost(): void {
    for (const m of this.byVm.values()) if (m.active) m.connectionLost();
  }

  onIteration(vmUuid: string): void {
    this.byVm.get(vmUuid)?.poke();
  }

  onJobCompleted(vmUuid: string, stats: JobStats): void {
    const m = this.byVm.get(vmUuid);
    if (m?.active) m.onJobCompleted(stats);
  }

  list(): MigrationStatus[] {
    return [...this.byVm.values()].map((m) => m.snapshot());
  }

  /** Wait for every active migration to end (used at shutdown after cancelling them). */
  async settle(): Promise<void> {
    await Promise.all([...this.byVm.values()].map((m) => m.done));
  }

  private prune(): void {
    const finished = [...this.byVm.entries()].filter(([, m]) => !m.active);
    for (const [key] of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) this.byVm.delete(key);
  }
}
