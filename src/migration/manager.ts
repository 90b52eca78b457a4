// Registry of this host's outgoing migrations: one active migration per VM, an outgoing limit,
// statuses kept after the end, and one event stream (state, progress, action) for all of them.
import { EventEmitter } from 'node:events';
import { AgentError } from '../api/errors.js';
import type { JobStats } from '../libvirt/types.js';
import type { MigrationLedger } from './ledger.js';
import { Migration, type MigrationPlan } from './migration.js';
import type { MigrationEventMap, MigrationStatus } from './status.js';

const KEEP_FINISHED = 200;

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

  start(plan: MigrationPlan, onEnd: () => Promise<void>): Migration {
    this.checkCanStart(plan.vmUuid, plan.vmName);
    const migration = new Migration(plan);
    this.byVm.delete(plan.vmUuid); // re-insert so iteration order is oldest first
    this.byVm.set(plan.vmUuid, migration);
    migration.on('state', (s) => this.emit('state', s));
    migration.on('progress', (s) => this.emit('progress', s));
    migration.on('action', (s, r) => this.emit('action', s, r));
    this.ledger?.record({ migrationId: plan.migrationId, vmUuid: plan.vmUuid, vmName: plan.vmName, startedAt: migration.status.startedAt });
    void migration.done
      .then(onEnd)
      .finally(() => {
        this.ledger?.remove(plan.migrationId);
        this.prune();
      });
    migration.start();
    return migration;
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
