// Parameter schemas of the agent's JSON-RPC verbs: the one source of truth for validation on the
// server and for the typed client. Unknown keys are rejected so a misspelt option never goes unnoticed.
import { z } from 'zod';
import { MAX_BANDWIDTH_MIBPS, MAX_DOWNTIME_MS, MAX_THROTTLE_PERCENT } from '../controller/bounds.js';

// Bounds shared with the policy schema, so a request cannot go beyond what any policy may do.
const bandwidth = z.number().int().positive().max(MAX_BANDWIDTH_MIBPS);
const downtime = z.number().int().positive().max(MAX_DOWNTIME_MS);
const throttle = z.number().int().min(1).max(MAX_THROTTLE_PERCENT);

const vmId = z.string().min(1, 'must be a VM name or UUID').max(256);
const wsUrl = z.string().max(2048).regex(/^wss?:\/\/[^\s]+$/, 'must be a ws:// or wss:// URL of the destination agent');

export const DestinationSchema = z.union([
  wsUrl,
  z.strictObject({
    /** destination agent, asked to admit the migration; optional when libvirtUri is given */
    agent: wsUrl.optional(),
    /** libvirt URI the source libvirtd connects to (peer-to-peer) */
    libvirtUri: z.string().min(1).max(2048),
    /** QEMU migration stream URI, e.g. tcp://10.0.0.2 */
    migrationUri: z.string().min(1).max(2048).optional(),
  }),
], { error: 'must be the destination agent\'s ws:// URL, or an object {agent?, libvirtUri, migrationUri?}' });

export const MigrateParamsSchema = z.strictObject({
  vmId,
  dst: DestinationSchema,
  /** MiB/s */
  bandwidth: bandwidth.optional(),
  autoConvergeInitial: throttle.optional(),
  autoConvergeIncrement: throttle.optional(),
  /** ms */
  maxDowntime: downtime.optional(),
  /** false: plain pre-copy without QEMU's auto-converge (comparisons only; the controller then has no throttle) */
  autoConverge: z.boolean().optional(),
  postcopy: z.boolean().optional(),
  persistDest: z.boolean().optional(),
  undefineSource: z.boolean().optional(),
  /** encrypt the migration stream (libvirt's VIR_MIGRATE_TLS; needs its migration PKI on both hosts); default: the agent's migrationTls */
  tls: z.boolean().optional(),
  /** a built-in policy name or a policy object; validated by the controller's schema */
  policy: z.union([z.string(), z.record(z.string(), z.unknown())]).optional(),
  /** when the outgoing limit is reached: wait in the agent's FIFO (default true), or false: TOO_MANY_MIGRATIONS at once */
  queue: z.boolean().optional().describe('when the outgoing limit is reached: wait in a FIFO (default), or false: refuse at once with TOO_MANY_MIGRATIONS'),
  /** s; how long it may wait for a slot; default: the agent's queueTimeoutSec */
  queueTimeoutSec: z.number().int().min(1).max(86_400).optional().describe("seconds it may wait in the queue, then it ends failed with TOO_MANY_MIGRATIONS; default: the agent's queueTimeoutSec (600)"),
});

export const VmRefSchema = z.strictObject({ vmId });

export const TOPICS = ['migration.state', 'migration.progress', 'migration.action', 'evacuation.state'] as const;

export const SubscribeSchema = z.strictObject({
  topics: z.array(z.enum(TOPICS)).optional(),
});

export type MigrateParams = z.input<typeof MigrateParamsSchema>;
export type Destination = z.input<typeof DestinationSchema>;
export type VmRef = z.input<typeof VmRefSchema>;
export type SubscribeParams = z.input<typeof SubscribeSchema>;
export type Topic = NonNullable<z.output<typeof SubscribeSchema>['topics']>[number];

export const ChangeParamsSchema = z.strictObject({
  vmId,
  bandwidth: bandwidth.optional(),
  maxDowntime: downtime.optional(),
  maxThrottle: throttle.optional(),
  policy: z.union([z.string(), z.record(z.string(), z.unknown())]).optional(),
});
export type ChangeParams = z.input<typeof ChangeParamsSchema>;
