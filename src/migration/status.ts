import type { Action } from '../controller/types.js';

export type MigrationState = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';

export interface ActionRecord {
  /** ISO time the action was decided */
  at: string;
  /** ms since migration start */
  t: number;
  action: Action;
  /** false when applying it failed; error says why */
  applied: boolean;
  error?: string;
}

/** What VM.migrateStatus returns and what state/progress notifications carry. */
export interface MigrationStatus {
  migrationId: string;
  vmId: string;
  vmName: string;
  source: string;
  destination: string;
  state: MigrationState;
  /** 0..100, never decreases */
  progress: number;
  dataTotal: number;
  dataProcessed: number;
  dataRemaining: number;
  iteration: number;
  /** bytes/s */
  dirtyRate: number;
  /** bytes/s */
  transferRate: number;
  throttlePercent: number;
  postcopy: boolean;
  /** the migration stream is encrypted (libvirt's VIR_MIGRATE_TLS was asked for) */
  tls: boolean;
  downtimeMs: number | null;
  startedAt: string;
  endedAt: string | null;
  elapsedMs: number;
  policy: string;
  actions: ActionRecord[];
  error: { code: number; name: string; message: string } | null;
}

export interface MigrationEventMap {
  /** state changed (pending -> running -> completed/failed/cancelled) */
  state: [MigrationStatus];
  /** a new sample was taken */
  progress: [MigrationStatus];
  /** the controller decided something */
  action: [MigrationStatus, ActionRecord];
}
