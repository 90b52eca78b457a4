// VM.estimateMigration: parameters and result. The result embeds the simulator's forecast.
import { z } from 'zod';
import { MAX_BANDWIDTH_MIBPS } from '../controller/bounds.js';

export const EstimateParamsSchema = z.strictObject({
  vmId: z.string().min(1, 'must be a VM name or UUID').max(256),
  /** MiB/s the migration would be capped at; default: the agent's estimate of the achievable rate */
  bandwidth: z.number().int().positive().max(MAX_BANDWIDTH_MIBPS).optional(),
  /** as for VM.migrate; default: the agent's default policy */
  policy: z.union([z.string(), z.record(z.string(), z.unknown())]).optional(),
});
export type EstimateParams = z.input<typeof EstimateParamsSchema>;

const PredictionSchema = z.strictObject({
  policy: z.string(),
  completed: z.boolean(),
  postcopy: z.boolean(),
  timeSec: z.number(),
  iterations: z.number().int(),
  peakThrottle: z.number(),
  guestWorkLostSec: z.number(),
  downtimeMs: z.number().nullable(),
});

export const EstimateResultSchema = z.strictObject({
  vmId: z.string(),
  vmName: z.string(),
  measured: z.strictObject({
    /** the dirty rate the forecast assumed, MiB/s: the fresh sample, or the upper quartile of the
     *  agent's recent samples of the guest when that is higher */
    dirtyRateMiBps: z.number(),
    /** the rate from the fresh page-sampling readings over the short period (drop-outs left out), MiB/s */
    sampledDirtyRateMiBps: z.number(),
    /** how many of the agent's recent samples (the last two minutes) were read */
    recentSamples: z.number().int(),
    /** working set the simulation assumed, MiB */
    workingSetMiB: z.number(),
    /** false: the working set was larger than the long period showed; the whole RAM was assumed */
    workingSetMeasured: z.boolean(),
    ramMiB: z.number(),
    /** the QEMU process's resident set, MiB: guest memory never touched is not in it, and the
     *  forecast counts the rest of the RAM as zero pages; absent when libvirt did not report it */
    residentMiB: z.number().optional(),
    /** guest RAM in zero pages, MiB, sampled from the QEMU process's memory (pre-copy sends them as
     *  flags); when present the forecast counts these instead of the resident set's bound; absent
     *  when QEMU's memory could not be read */
    zeroMiB: z.number().optional(),
    bandwidthMiBps: z.number(),
    /** how long the measurement took, ms */
    measureMs: z.number(),
  }),
  /** plain pre-copy would finish without any throttle */
  convergesWithoutThrottle: z.boolean(),
  /** the forecast for the policy asked for */
  prediction: PredictionSchema,
  /** the forecast for QEMU's stock auto-converge */
  stock: PredictionSchema,
});
export type EstimateResult = z.input<typeof EstimateResultSchema>;
