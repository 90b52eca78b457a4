// Every verb of the agent: summary, parameter and result schemas, and the errors it may answer.
// The server validates with these schemas, the OpenRPC document is generated from them, and the
// verb implementations are typed by them, so the three cannot drift apart.
import { z } from 'zod';
import { AdmissionEndSchema, AdmissionRequestSchema } from './admission.js';
import { EstimateParamsSchema, EstimateResultSchema } from './estimate.js';
import { EvacuateParamsSchema, EvacuateResultSchema, EvacuationCancelSchema, EvacuationRefSchema, EvacuationStatusSchema } from './evacuation.js';
import type { ErrorName } from './errors.js';
import { ChangeParamsSchema, MigrateParamsSchema, SubscribeSchema, VmRefSchema, type Topic } from './params.js';
import {
  AdmissionResultSchema,
  CapabilitiesSchema,
  MigrateResultSchema,
  MigrationStatusSchema,
  OkResultSchema,
  PingResultSchema,
  TopicsResultSchema,
  VmSummarySchema,
} from './result-schemas.js';

const NoParams = z.strictObject({});

interface VerbSpec {
  summary: string;
  params: z.ZodObject;
  result: z.ZodType;
  errors: ErrorName[];
}

function verb<P extends z.ZodObject, R extends z.ZodType>(summary: string, params: P, result: R, errors: ErrorName[] = []) {
  return { summary, params, result, errors } satisfies VerbSpec;
}

export const CATALOG = {
  'Host.ping': verb('Is the agent alive?', NoParams, PingResultSchema),
  'Host.getCapabilities': verb('Host identity, libvirt/QEMU versions, migration features, policies, and capacity (free memory, running VMs, free migration slots)', NoParams, CapabilitiesSchema, ['LIBVIRT_ERROR']),
  'Host.evacuate': verb(
    'Move every running VM (or those of vmIds) off this host: measured, ordered, placed where they fit, the link shared; returns an evacuation id at once',
    EvacuateParamsSchema,
    EvacuateResultSchema,
    ['INVALID_PARAMS', 'INVALID_POLICY', 'VM_NOT_FOUND', 'EVACUATION_IN_PROGRESS', 'LIBVIRT_ERROR'],
  ),
  'Host.evacuationStatus': verb('Status of an evacuation: per VM its place, reason, destination, state and migration; totals and predicted remaining time', EvacuationRefSchema, EvacuationStatusSchema, ['INVALID_PARAMS', 'NO_EVACUATION']),
  'Host.evacuationCancel': verb(
    'Cancel an evacuation: VMs not started stay here; running migrations go on to the end unless abortRunning. Returns the status',
    EvacuationCancelSchema,
    EvacuationStatusSchema,
    ['INVALID_PARAMS', 'NO_EVACUATION', 'NOT_CANCELLABLE'],
  ),
  'VM.list': verb('VMs defined on this host', NoParams, z.array(VmSummarySchema), ['LIBVIRT_ERROR']),
  'VM.migrate': verb(
    'Start a live migration of a VM to another host; returns at once, the migration runs in the background. Beyond the outgoing limit it waits in a FIFO (state queued) unless queue is false',
    MigrateParamsSchema,
    MigrateResultSchema,
    ['INVALID_PARAMS', 'INVALID_POLICY', 'VM_NOT_FOUND', 'VM_NOT_RUNNING', 'MIGRATION_IN_PROGRESS', 'TOO_MANY_MIGRATIONS', 'DESTINATION_UNREACHABLE', 'DESTINATION_REFUSED', 'SAME_HOST', 'LIBVIRT_ERROR', 'STATE_WRITE_FAILED'],
  ),
  'VM.estimateMigration': verb(
    'Predict a migration before anything is copied: measures the dirty rate (a few seconds), simulates the policy and stock auto-converge',
    EstimateParamsSchema,
    EstimateResultSchema,
    ['INVALID_PARAMS', 'INVALID_POLICY', 'VM_NOT_FOUND', 'VM_NOT_RUNNING', 'MEASUREMENT_FAILED', 'LIBVIRT_ERROR'],
  ),
  'VM.migrateStatus': verb('Status of the latest migration of a VM (kept after it ends)', VmRefSchema, MigrationStatusSchema, ['INVALID_PARAMS', 'NO_MIGRATION']),
  'VM.migrateCancel': verb('Cancel a running or queued migration; the VM keeps running on the source. Returns the final status', VmRefSchema, MigrationStatusSchema, ['INVALID_PARAMS', 'NO_MIGRATION', 'NOT_CANCELLABLE', 'LIBVIRT_ERROR']),
  'VM.migrateChangeParams': verb('Change bandwidth, max downtime or throttle ceiling of a running migration', ChangeParamsSchema, MigrationStatusSchema, ['INVALID_PARAMS', 'INVALID_POLICY', 'NO_MIGRATION']),
  'VM.migrationCreate': verb('(agent to agent) Admit an incoming migration before any memory is copied', AdmissionRequestSchema, AdmissionResultSchema, ['INVALID_PARAMS', 'TOO_MANY_MIGRATIONS', 'DESTINATION_REFUSED', 'SAME_HOST', 'LIBVIRT_ERROR']),
  'VM.migrationEnd': verb('(agent to agent) Release an admission when the migration has ended', AdmissionEndSchema, OkResultSchema, ['INVALID_PARAMS']),
  'Events.subscribe': verb('Receive notifications (migration.state, migration.progress, migration.action, evacuation.state) on this connection', SubscribeSchema, TopicsResultSchema, ['INVALID_PARAMS']),
  'Events.unsubscribe': verb('Stop notifications on this connection', NoParams, TopicsResultSchema),
} as const;

export type VerbName = keyof typeof CATALOG;
export type VerbParams<K extends VerbName> = z.output<(typeof CATALOG)[K]['params']>;
export type VerbResult<K extends VerbName> = z.input<(typeof CATALOG)[K]['result']>;

/** Notifications a subscriber receives; params are a migration status (plus the action record for actions). */
export const NOTIFICATIONS = {
  'migration.state': 'the state of a migration changed',
  'migration.progress': 'a new sample of a running migration',
  'migration.action': 'the controller decided and applied an action (params carry `record`)',
  'evacuation.state': 'an evacuation changed: a VM started, ended, was retried or cancelled (params: the evacuation status)',
} as const satisfies Record<Topic, string>;
