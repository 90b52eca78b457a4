// The controller's memory as plain JSON and back, so that an agent restarted mid-migration can go on
// steering where its predecessor stopped. Decoding checks the shape: a snapshot from another
// version, or a damaged one, is refused (SnapshotError) rather than steered from.
import { z } from 'zod';
import { PolicySchema } from './policy.js';
import type { ChangedParam, ControllerMemory } from './memory.js';
import type { PassCall } from './hysteresis.js';
import type { QemuParams } from './knobs.js';

const SNAPSHOT_VERSION = 1;

export class SnapshotError extends Error {
  constructor(message: string) {
    super(`controller state cannot be restored: ${message}`);
    this.name = 'SnapshotError';
  }
}

/** JSON-safe form of the controller's memory (opaque to everyone but this file). */
export interface ControllerSnapshot {
  version: number;
  memory: unknown;
}

// Rates and ratios may be Infinity (an unlimited bandwidth cap), which JSON cannot hold.
const NON_FINITE = '$nonFinite';
const replacer = (_key: string, value: unknown): unknown =>
  typeof value === 'number' && !Number.isFinite(value) ? { [NON_FINITE]: String(value) } : value instanceof Set ? [...value] : value;
const reviver = (_key: string, value: unknown): unknown =>
  value !== null && typeof value === 'object' && NON_FINITE in value ? Number((value as Record<string, string>)[NON_FINITE]) : value;

const num = z.custom<number>((v) => typeof v === 'number', 'expected a number');
const knobs = z.strictObject({ initial: num, increment: num, max: num, tailslow: z.boolean(), threshold: num });
const sample = z.strictObject({
  t: num,
  jobType: num,
  iteration: num,
  dataTotal: num,
  dataProcessed: num,
  dataRemaining: num,
  memTotal: num,
  memProcessed: num,
  memRemaining: num,
  zeroPages: num,
  normalPages: num,
  pageSize: num,
  dirtyRate: num,
  transferRate: num,
  throttlePercent: num,
  postcopyRequests: num,
  downtimeMs: num.optional(),
});
const changed = z.enum(['initial', 'increment', 'max', 'tailslow', 'threshold', 'downtime', 'bandwidth'] satisfies ChangedParam[]);

const MemorySchema = z.strictObject({
  guestRamBytes: num,
  postcopyEnabled: z.boolean(),
  original: z.strictObject({ throttle: knobs, downtimeMs: num, bandwidthMiBps: num }),
  policy: PolicySchema,
  ceiling: num,
  bandwidthCap: num,
  knobs,
  changed: z.array(changed).transform((xs) => new Set<ChangedParam>(xs)),
  postcopyRefused: z.boolean(),
  measuredDirtyRate: num.optional(),
  measuredArmed: z.boolean().optional(),
  passCall: z.enum(['pending', 'dismissed', 'called', 'released', 'sticky'] satisfies PassCall[]).optional(),
  quietDirtyRate: num.optional(),
  previous: sample.optional(),
  payloadRates: z.array(num),
  passSizes: z.array(num),
  lastBoundary: z.strictObject({ t: num, processed: num, iteration: num }),
  stallWindowStart: num,
  reachedCeiling: z.boolean(),
  saturatedAtCeiling: num,
  view: z.strictObject({
    phase: z.enum(['stock', 'first-pass', 'converging', 'throttling', 'escalating', 'postcopy', 'aborted', 'completed']),
    iteration: num,
    elapsedMs: num,
    dirtyRate: num,
    dirtyRateLowerBound: num,
    saturated: z.boolean(),
    passRatio: num,
    transferRate: num,
    passBytes: num,
    targetThrottle: num,
    throttle: num,
    stalled: z.boolean(),
    downtimeMs: num,
    timeoutMs: num,
    lastReason: z.string(),
  }),
});

// Compile-time: the schema and the memory record are the same shape (either way assignable).
type Decoded = Omit<z.output<typeof MemorySchema>, 'previous'>;
type Memory = Omit<ControllerMemory, 'previous'>;
const sameShape: [Decoded extends Memory ? true : false, Memory extends Decoded ? true : false] = [true, true];
void sameShape;

export function encodeMemory(m: Readonly<ControllerMemory>): ControllerSnapshot {
  return { version: SNAPSHOT_VERSION, memory: JSON.parse(JSON.stringify(m, replacer)) as unknown };
}

/** The memory a snapshot holds; throws SnapshotError naming what is wrong. */
export function decodeMemory(snapshot: unknown): ControllerMemory {
  if (snapshot === null || snapshot === undefined) throw new SnapshotError('no snapshot was recorded');
  const outer = z.strictObject({ version: z.number(), memory: z.unknown() }).safeParse(snapshot);
  if (!outer.success) throw new SnapshotError('not a controller snapshot');
  if (outer.data.version !== SNAPSHOT_VERSION) throw new SnapshotError(`snapshot version ${outer.data.version}, this agent reads ${SNAPSHOT_VERSION}`);
  // the snapshot arrives as parsed JSON: revive the non-finite numbers first
  const revived = JSON.parse(JSON.stringify(outer.data.memory), reviver) as unknown;
  const parsed = MemorySchema.safeParse(revived);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new SnapshotError(`${first?.path.join('.') ?? ''}: ${first?.message ?? 'invalid'}`);
  }
  return { ...parsed.data, previous: parsed.data.previous };
}

/** QEMU's parameters before the migration, as a snapshot remembers them; throws SnapshotError. */
export function snapshotOriginal(snapshot: unknown): QemuParams {
  return decodeMemory(snapshot).original;
}
