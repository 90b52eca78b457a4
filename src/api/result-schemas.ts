// Result schemas of the verbs, for the OpenRPC document and for tests that check real answers
// against what is documented. test/unit/openrpc.test.ts keeps them equal to the TypeScript types.
import { z } from 'zod';

/** An error as statuses carry it: the agent's stable code and name, and what went wrong. */
export const ErrorRecordSchema = z.strictObject({ code: z.number(), name: z.string(), message: z.string() });

export const PingResultSchema = z.strictObject({ ok: z.literal(true), name: z.string(), version: z.string() });

export const CapabilitiesSchema = z.strictObject({
  name: z.string(),
  hostname: z.string(),
  hostUuid: z.string(),
  libvirtVersion: z.string(),
  qemuVersion: z.string(),
  libvirtUri: z.string(),
  migrationFeatures: z.array(z.string()),
  policies: z.array(z.string()),
  capacity: z
    .strictObject({
      memoryFreeMiB: z.number().describe('memory an incoming VM may still use, MiB'),
      memoryTotalMiB: z.number().describe('memory offered to VMs, MiB (the memoryCapacity setting, or the host\'s total)'),
      memorySource: z.enum(['configured', 'host']).describe('configured: the memoryCapacity setting minus the VMs\' memory; host: the host\'s available memory'),
      runningVms: z.number().int().describe('active domains (running, paused, incoming)'),
      vmMemoryMiB: z.number().describe('memory of the active domains, MiB'),
      incomingSlotsFree: z.number().int(),
      incomingLimit: z.number().int(),
      outgoingSlotsFree: z.number().int(),
      outgoingLimit: z.number().int(),
    })
    .describe('what the host can take now, for placement'),
});

export const VmSummarySchema = z.strictObject({ id: z.number().int(), uuid: z.string(), name: z.string(), state: z.string() });

export const MigrateResultSchema = z.strictObject({
  migrationId: z.string(),
  vmId: z.string(),
  vmName: z.string(),
  state: z.enum(['pending', 'queued']).describe('pending: started; queued: waiting for an outgoing slot'),
  queuePosition: z.number().int().min(1).optional().describe('when queued: place in the FIFO, 1 = starts next'),
});

const ThrottleParamsSchema = z.strictObject({
  'cpu-throttle-initial': z.number().optional(),
  'cpu-throttle-increment': z.number().optional(),
  'max-cpu-throttle': z.number().optional(),
  'cpu-throttle-tailslow': z.boolean().optional(),
  'throttle-trigger-threshold': z.number().optional(),
});

export const ActionSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('set-throttle'), params: ThrottleParamsSchema, reason: z.string() }),
  z.strictObject({ type: z.literal('set-downtime'), ms: z.number(), reason: z.string() }),
  z.strictObject({ type: z.literal('set-bandwidth'), mibPerSec: z.number(), reason: z.string() }),
  z.strictObject({ type: z.literal('postcopy'), reason: z.string() }),
  z.strictObject({ type: z.literal('abort'), reason: z.string() }),
]);

export const ActionRecordSchema = z.strictObject({
  at: z.string(),
  t: z.number(),
  action: ActionSchema,
  applied: z.boolean(),
  error: z.string().optional(),
});

export const MigrationStatusSchema = z.strictObject({
  migrationId: z.string(),
  vmId: z.string(),
  vmName: z.string(),
  source: z.string(),
  destination: z.string(),
  state: z.enum(['queued', 'pending', 'running', 'postcopy-paused', 'completed', 'failed', 'cancelled']),
  queuePosition: z.number().int().min(1).optional().describe('while queued: place in the FIFO, 1 = starts next'),
  progress: z.number().min(0).max(100),
  dataTotal: z.number(),
  dataProcessed: z.number(),
  dataRemaining: z.number(),
  iteration: z.number(),
  dirtyRate: z.number().describe('bytes/s'),
  transferRate: z.number().describe('bytes/s'),
  throttlePercent: z.number(),
  postcopy: z.boolean(),
  tls: z.boolean().describe('the migration stream is encrypted (VIR_MIGRATE_TLS)'),
  downtimeMs: z.number().nullable(),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  elapsedMs: z.number(),
  policy: z.string(),
  actions: z.array(ActionRecordSchema),
  error: ErrorRecordSchema.nullable(),
  adoption: z
    .strictObject({ adoptedAt: z.string(), steering: z.enum(['resumed', 'unsteered', 'stock']), reason: z.string() })
    .optional()
    .describe('set when an agent restarted mid-migration took it over from its predecessor'),
  vmLocation: z
    .enum(['source', 'destination', 'paused-source', 'paused-destination', 'unknown'])
    .nullable()
    .describe('where the VM was found on both hosts when the migration ended; null while it runs'),
  paramsRestored: z
    .boolean()
    .nullable()
    .describe('parameters the agent changed were put back and read back equal (true) or different (false); null: nothing to put back'),
});

export const AdmissionResultSchema = z.strictObject({
  admissionId: z.string(),
  libvirtUri: z.string(),
  migrationUri: z.string().optional(),
  hostUuid: z.string(),
  name: z.string(),
});

export const TopicsResultSchema = z.strictObject({ topics: z.array(z.string()) });
export const OkResultSchema = z.strictObject({ ok: z.literal(true) });
