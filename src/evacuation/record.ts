// What an evacuation keeps on disk so that a restarted agent goes on with it: the request as the
// agent took it, the VMs it found to move, the plan's parallelism, the migrations it is about to
// start (write-ahead), and the status as last changed. Pure: the schema and the conversions; the
// files are written by ./store.ts.
import { z } from 'zod';
import { EvacuationStatusSchema, type EvacuationStatus } from '../api/evacuation.js';
import { DestinationSchema, type Destination } from '../api/params.js';

export const EVACUATION_RECORD_VERSION = 1;

const VmToMoveSchema = z.strictObject({ vmId: z.string().min(1), vmName: z.string().min(1), ramMiB: z.number().nonnegative() });

/** A migration the runner is about to start: written before VM.migrate is called, so that a
 *  successor knows to look for it (the migration's own ledger record is written just after). */
export const StartIntentSchema = z.strictObject({ vmId: z.string().min(1), destination: z.string(), atMs: z.number() });

export const EvacuationRecordSchema = z.strictObject({
  version: z.literal(EVACUATION_RECORD_VERSION),
  evacuationId: z.string().min(1),
  request: z.strictObject({
    destinations: z.array(DestinationSchema).min(1),
    /** the request's policy as given (a name or an inline object); absent: the agent's default */
    policy: z.union([z.string(), z.record(z.string(), z.unknown())]).optional(),
    /** as the agent bounded them */
    maxParallel: z.number().int().min(1),
    bandwidthMiBps: z.number().positive(),
  }),
  /** the VMs found to move when the request came (a resumed evacuation moves the same ones) */
  vms: z.array(VmToMoveSchema),
  /** the plan's migrations at once; null until planned */
  parallel: z.number().int().min(1).nullable(),
  cancelRequested: z.boolean(),
  starting: z.array(StartIntentSchema),
  status: EvacuationStatusSchema,
});

export type EvacuationRecord = z.infer<typeof EvacuationRecordSchema>;
export type StartIntent = z.infer<typeof StartIntentSchema>;
export type VmToMove = z.infer<typeof VmToMoveSchema>;
export type EvacuationRequest = EvacuationRecord['request'];

/** What the runner hands over at each change. */
export interface RunnerState {
  status: EvacuationStatus;
  parallel: number | null;
  cancelRequested: boolean;
  starting: StartIntent[];
}

export function toRecord(request: EvacuationRequest, vms: readonly VmToMove[], s: RunnerState): EvacuationRecord {
  return {
    version: EVACUATION_RECORD_VERSION,
    evacuationId: s.status.evacuationId,
    request: { ...request, destinations: request.destinations.map((d: Destination) => (typeof d === 'string' ? d : { ...d })) },
    vms: vms.map((v) => ({ ...v })),
    parallel: s.parallel,
    cancelRequested: s.cancelRequested,
    starting: s.starting.map((i) => ({ ...i })),
    status: structuredClone(s.status) as EvacuationRecord['status'],
  };
}

/** Parses a record read from disk; the reason when it is not one. */
export function parseRecord(raw: unknown): { ok: true; record: EvacuationRecord } | { ok: false; reason: string } {
  const r = EvacuationRecordSchema.safeParse(raw);
  if (r.success) return { ok: true, record: r.data };
  return { ok: false, reason: r.error.issues.map((i) => `${i.path.join('.') || '(record)'}: ${i.message}`).join('; ') };
}

export const isEnded = (r: EvacuationRecord): boolean => r.status.state === 'finished' || r.status.state === 'cancelled';
