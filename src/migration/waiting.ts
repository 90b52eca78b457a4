// An outgoing migration waiting in the FIFO for a slot (state `queued`), then being started
// (destination admission, still `pending`) until the real Migration takes its place in the manager.
// It answers VM.migrateStatus and VM.migrateCancel meanwhile, and its `done` follows the migration
// it became, so a caller waiting on it is answered however it ends.
import { EventEmitter } from 'node:events';
import { AgentError, ErrorCodes, errorRecord } from '../api/errors.js';
import type { Migration } from './migration.js';
import type { MigrationEventMap, MigrationStatus } from './status.js';
import { freshStatus } from './status.js';

export interface WaitingInit {
  migrationId: string;
  vmUuid: string;
  vmName: string;
  source: string;
  /** what status shows before the destination is resolved (the agent URL or libvirt URI given) */
  destination: string;
  policyName: string;
  tls: boolean;
}

export class WaitingMigration extends EventEmitter<MigrationEventMap> {
  readonly status: MigrationStatus;
  readonly done: Promise<MigrationStatus>;
  /** the migration it became, once started */
  started: Migration | null = null;
  private resolveDone!: (s: MigrationStatus | Promise<MigrationStatus>) => void;
  private cancelRequested = false;
  private readonly enqueuedMs = Date.now();

  constructor(
    init: WaitingInit,
    /** 1-based place in the FIFO; null once it left it */
    private readonly position: () => number | null,
    /** takes it out of the FIFO; false when it already left it (being started) */
    private readonly dequeue: () => boolean,
  ) {
    super();
    this.status = freshStatus({
      migrationId: init.migrationId,
      vmId: init.vmUuid,
      vmName: init.vmName,
      source: init.source,
      destination: init.destination,
      state: 'queued',
      tls: init.tls,
      startedMs: this.enqueuedMs,
      policy: init.policyName,
    });
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  get active(): boolean {
    return this.status.state === 'queued' || this.status.state === 'pending';
  }

  snapshot(): MigrationStatus {
    const s: MigrationStatus = { ...this.status, actions: [...this.status.actions], elapsedMs: this.status.endedAt ? Date.parse(this.status.endedAt) - this.enqueuedMs : Date.now() - this.enqueuedMs };
    const pos = this.status.state === 'queued' ? this.position() : null;
    if (pos !== null) s.queuePosition = pos;
    return s;
  }

  /** Announce the current place in the FIFO (it moved up). */
  moved(): void {
    if (this.status.state === 'queued') this.emit('progress', this.snapshot());
  }

  /** It left the FIFO for a slot: destination admission and the start follow. */
  launching(): void {
    this.status.state = 'pending';
    this.emit('state', this.snapshot());
  }

  /** The real migration started; it answers from now on. A cancel that came meanwhile is passed on. */
  handOver(migration: Migration): void {
    this.started = migration;
    if (this.cancelRequested) void migration.cancel().catch(() => {});
    this.resolveDone(migration.done);
  }

  /** It ended without starting: cancelled, timed out in the FIFO, or refused when it was started. */
  end(state: 'cancelled' | 'failed', err: unknown): void {
    if (!this.active) return;
    if (err !== null) this.status.error = errorRecord(err, { code: ErrorCodes.MIGRATION_FAILED, name: 'MIGRATION_FAILED', message: String(err) });
    this.status.state = state;
    this.status.endedAt = new Date().toISOString();
    this.status.vmLocation = 'source';
    const s = this.snapshot();
    this.emit('state', s);
    this.resolveDone(s);
  }

  /** VM.migrateCancel: out of the FIFO at once; one being started is cancelled as soon as it has. */
  async cancel(): Promise<void> {
    if (this.started) return this.started.cancel();
    if (!this.active) throw new AgentError('NOT_CANCELLABLE', `migration of ${this.status.vmName} already ended (${this.status.state})`);
    if (this.status.state === 'queued' && this.dequeue()) {
      this.end('cancelled', null);
      return;
    }
    this.cancelRequested = true;
  }
}
