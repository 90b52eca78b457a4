// The events a migration emits; their payloads are the API's status shapes (src/api/results.ts).
import type { ActionRecord, MigrationStatus } from '../api/results.js';

export type { ActionRecord, MigrationState, MigrationStatus } from '../api/results.js';

export interface MigrationEventMap {
  /** state changed (pending -> running -> completed/failed/cancelled) */
  state: [MigrationStatus];
  /** a new sample was taken */
  progress: [MigrationStatus];
  /** the controller decided something */
  action: [MigrationStatus, ActionRecord];
}

/** A migration's status before its first sample: nothing sent, nothing decided. */
export function freshStatus(
  o: Pick<MigrationStatus, 'migrationId' | 'vmId' | 'vmName' | 'source' | 'destination' | 'state' | 'tls' | 'policy'> & { startedMs: number },
): MigrationStatus {
  return {
    migrationId: o.migrationId,
    vmId: o.vmId,
    vmName: o.vmName,
    source: o.source,
    destination: o.destination,
    state: o.state,
    progress: 0,
    dataTotal: 0,
    dataProcessed: 0,
    dataRemaining: 0,
    iteration: 0,
    dirtyRate: 0,
    transferRate: 0,
    throttlePercent: 0,
    postcopy: false,
    tls: o.tls,
    downtimeMs: null,
    startedAt: new Date(o.startedMs).toISOString(),
    endedAt: null,
    elapsedMs: 0,
    policy: o.policy,
    actions: [],
    error: null,
    vmLocation: null,
    paramsRestored: null,
  };
}
