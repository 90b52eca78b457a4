// Host.evacuate / Host.evacuationStatus / Host.evacuationCancel: parameters and results.
import { z } from 'zod';
import { MAX_BANDWIDTH_MIBPS } from '../controller/bounds.js';
import { DestinationSchema } from './params.js';
import { ErrorRecordSchema, MigrationStatusSchema } from './result-schemas.js';

const vmId = z.string().min(1, 'must be a VM name or UUID').max(256);
const evacuationId = z.string().min(1).max(64);

export const EvacuateParamsSchema = z.strictObject({
  /** where the VMs may go: agent URLs, or objects as in VM.migrate `dst` */
  destinations: z.array(DestinationSchema).min(1).max(64),
  /** only these VMs (names or UUIDs); default: every running VM of this host */
  vmIds: z.array(vmId).min(1).max(1024).optional(),
  /** as for VM.migrate; bounds each migration's throttle and downtime */
  policy: z.union([z.string(), z.record(z.string(), z.unknown())]).optional(),
  /** most migrations at once (also bounded by the agent's maxOutgoing) */
  maxParallel: z.number().int().min(1).max(64).optional(),
  /** MiB/s of the link, split between the migrations that run at once; default 100 (the lab's CPU-bound stream) */
  bandwidth: z.number().int().positive().max(MAX_BANDWIDTH_MIBPS).optional(),
});
export type EvacuateParams = z.input<typeof EvacuateParamsSchema>;

export const EvacuationRefSchema = z.strictObject({ evacuationId });
export const EvacuationCancelSchema = z.strictObject({
  evacuationId,
  /** also cancel the migrations already running (pre-copy ones; their VMs stay on this host); default false: they go on to the end */
  abortRunning: z.boolean().optional(),
});

export const EvacuateResultSchema = z.strictObject({ evacuationId: z.string() });

const EstimateSummarySchema = z.strictObject({
  dirtyRateMiBps: z.number(),
  ramMiB: z.number(),
  /** predicted with the bandwidth the VM was given */
  bandwidthMiBps: z.number(),
  timeSec: z.number(),
  guestWorkLostSec: z.number(),
  downtimeMs: z.number().nullable(),
  convergesWithoutThrottle: z.boolean(),
});

export const EVACUATION_VM_STATES = ['waiting', 'migrating', 'done', 'failed', 'cancelled'] as const;

export const EvacuationVmSchema = z.strictObject({
  vmId: z.string(),
  vmName: z.string(),
  ramMiB: z.number(),
  /** 1-based place in the order */
  order: z.number().int(),
  /** why the VM has this place, and how it shares the link */
  orderReason: z.string(),
  /** runs alone with the whole bandwidth (true), or beside others with a share */
  exclusive: z.boolean(),
  state: z.enum(EVACUATION_VM_STATES),
  /** the destination chosen (planned while waiting, actual once started); null: none fits */
  destination: z.string().nullable(),
  placementReason: z.string(),
  /** MiB/s given to the migration now (its share of the link, rebalanced when a shared migration starts or ends) */
  bandwidthMiBps: z.number().nullable(),
  estimate: EstimateSummarySchema.nullable(),
  /** each try: the destination, the migration id and how it ended (`interrupted`: aborted by the agent's
   *  own stop, and started again after its restart; it counts against neither the retry nor the destination) */
  attempts: z.array(
    z.strictObject({
      destination: z.string(),
      migrationId: z.string().nullable(),
      state: z.string(),
      error: ErrorRecordSchema.nullable(),
    }),
  ),
  /** the status of the current (or last) migration */
  migration: MigrationStatusSchema.nullable(),
  error: ErrorRecordSchema.nullable(),
});

export const EvacuationDestinationSchema = z.strictObject({
  destination: z.string(),
  name: z.string().nullable(),
  /** usable: may take VMs; unreachable: its agent did not answer (at planning, or a migration found it gone); no-capacity: the agent was not asked (a bare libvirt URI) */
  state: z.enum(['usable', 'unreachable', 'unknown-capacity']),
  memoryFreeMiB: z.number().nullable(),
  incomingSlotsFree: z.number().int().nullable(),
  reason: z.string(),
});

export const EvacuationStatusSchema = z.strictObject({
  evacuationId: z.string(),
  /** planning: measuring the VMs and asking the destinations */
  state: z.enum(['planning', 'running', 'finished', 'cancelled']),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  elapsedMs: z.number(),
  /** predicted time to the end, s (from the estimates; null while planning) */
  predictedRemainingSec: z.number().nullable(),
  bandwidthMiBps: z.number(),
  maxParallel: z.number().int(),
  policy: z.string(),
  totals: z.strictObject({ vms: z.number().int(), done: z.number().int(), failed: z.number().int(), cancelled: z.number().int(), running: z.number().int(), remaining: z.number().int() }),
  destinations: z.array(EvacuationDestinationSchema),
  vms: z.array(EvacuationVmSchema),
  /** why the evacuation could not run at all (planning failed) */
  error: ErrorRecordSchema.nullable(),
});

export type EvacuationStatus = z.input<typeof EvacuationStatusSchema>;
export type EvacuationVm = z.input<typeof EvacuationVmSchema>;
export type EvacuationDestination = z.input<typeof EvacuationDestinationSchema>;
export type EstimateSummary = z.input<typeof EstimateSummarySchema>;
export type EvacuationVmState = (typeof EVACUATION_VM_STATES)[number];
