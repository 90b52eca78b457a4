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
