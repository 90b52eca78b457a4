// Per-migration convergence policy: zod schema, named built-ins, and resolvePolicy().
// A policy says how hard the controller may push (throttle ceiling, downtime steps, post-copy)
// and when to give up (completion timeout, proportional to guest RAM like Nova's
// live_migration_completion_timeout, but with shorter defaults).
import { z } from 'zod';
import { valueAt } from '../common/value-at.js';
import { MAX_BANDWIDTH_MIBPS, MAX_COMPLETION_TIMEOUT_SEC, MAX_DOWNTIME_MS, MAX_THROTTLE_PERCENT } from './bounds.js';

export const PolicySchema = z
  .strictObject({
    /** a built-in's name, `<built-in>+custom` once fields were overridden, or a name given */
    name: z.string().min(1),
    /** false: don't steer at all (QEMU's stock auto-converge); used by benchmarks */
    steer: z.boolean(),
    /** throttle ceiling in percent; 0 forbids throttling */
    maxThrottle: z.number().int().min(0).max(MAX_THROTTLE_PERCENT),
    /** aim to converge within this many passes once throttled (sets the target shrink per pass) */
    convergePasses: z.number().int().min(1).max(50),
    /** when the working set is re-dirtied completely each pass the true dirty rate is only
     *  bounded below; assume it is this many times the bound (a wrong low guess costs two passes) */
    saturationFactor: z.number().min(1).max(50),
    /** the downtime limit to start from, ms (VM.migrate `maxDowntime` sets it: libvirt calls the
     *  limit in force "max downtime") */
    downtimeMs: z.number().int().min(1).max(MAX_DOWNTIME_MS),
    /** the largest downtime limit escalation may raise it to, ms */
    maxDowntimeMs: z.number().int().min(1).max(MAX_DOWNTIME_MS),
    /** number of steps from downtimeMs to maxDowntimeMs (0: never raise downtime) */
    downtimeSteps: z.number().int().min(0).max(20),
    /** start migrations with post-copy enabled (VIR_MIGRATE_POSTCOPY) when VM.migrate does not say;
     *  the controller may switch to post-copy whenever the migration was started with it */
    allowPostcopy: z.boolean(),
    /** escalate to post-copy before raising downtime */
    preferPostcopy: z.boolean(),
    /** iteration boundaries without progress (at the throttle ceiling) that count as a stall */
    stallWindowIterations: z.number().int().min(1).max(50),
    /** fraction the pass size must shrink within the window to count as progress */
    minProgress: z.number().min(0).max(1),
    /** abort after this many seconds per GiB of guest RAM ... */
    completionTimeoutSecPerGiB: z.number().min(1).max(MAX_COMPLETION_TIMEOUT_SEC),
    /** ... but never sooner than this */
    completionTimeoutMinSec: z.number().min(1).max(MAX_COMPLETION_TIMEOUT_SEC),
    /** abort a pre-copy migration whose stream moved no data at all for this long (a cut link, a
     *  hung destination); not the slow progress of a guest that does not converge */
    transferStallSec: z.number().min(1).max(MAX_COMPLETION_TIMEOUT_SEC),
    /** how long a broken post-copy may stay paused while the agent tries to resume it */
    postcopyRecoverySec: z.number().min(1).max(MAX_COMPLETION_TIMEOUT_SEC),
    /** optional bandwidth cap to apply, MiB/s */
    bandwidthMiBps: z.number().int().min(1).max(MAX_BANDWIDTH_MIBPS).optional(),
    /** an agent restarted mid-migration could not restore the controller's state: go on unsteered
     *  (QEMU's auto-converge as last set, under the completion timeout; the default) or abort */
    lostStateAction: z.enum(['continue-unsteered', 'abort']).optional(),
  })
  .refine((p) => p.maxDowntimeMs >= p.downtimeMs, {
    path: ['maxDowntimeMs'],
    message: 'must be >= downtimeMs',
  });

export type Policy = z.infer<typeof PolicySchema>;

const BASE: Omit<Policy, 'name'> = {
  steer: true,
  maxThrottle: 99,
  convergePasses: 5,
  saturationFactor: 4,
  downtimeMs: 300,
  maxDowntimeMs: 2000,
  downtimeSteps: 4,
  // Post-copy only when asked for (VM.migrate `postcopy`, or a policy that allows it): once it runs,
  // a broken link or destination leaves the guest's memory split across two hosts.
  allowPostcopy: false,
  preferPostcopy: false,
  stallWindowIterations: 3,
  minProgress: 0.1,
  completionTimeoutSecPerGiB: 150,
  completionTimeoutMinSec: 120,
  transferStallSec: 30,
  postcopyRecoverySec: 600,
};

const BUILT_INS = {
  /** default: finish with small downtime, throttle as much as needed, then downtime (post-copy if asked for) */
  'minimal-downtime': { ...BASE, name: 'minimal-downtime' },
  /** keep the guest at half its speed or more (throttle <= 50 %); when post-copy is asked for, prefer it
   *  over a longer throttle or pause */
  'protect-workload': {
    ...BASE,
    name: 'protect-workload',
    maxThrottle: 50,
    saturationFactor: 2,
    maxDowntimeMs: 1000,
    downtimeSteps: 2,
    preferPostcopy: true,
    stallWindowIterations: 2,
    completionTimeoutSecPerGiB: 120,
  },
  /** finish no matter what: throttle to 99, long downtime steps (post-copy if asked for), long timeout */
  'finish-at-any-cost': {
    ...BASE,
    name: 'finish-at-any-cost',
    saturationFactor: 8,
    maxDowntimeMs: 10_000,
    downtimeSteps: 6,
    stallWindowIterations: 2,
    completionTimeoutSecPerGiB: 600,
    completionTimeoutMinSec: 600,
  },
  /** don't steer: QEMU's own blind auto-converge (for comparison) */
  stock: { ...BASE, name: 'stock', steer: false },
} satisfies Record<string, Policy>;

export type PolicyName = keyof typeof BUILT_INS;
export const POLICY_NAMES = Object.keys(BUILT_INS) as PolicyName[];
export const DEFAULT_POLICY: PolicyName = 'minimal-downtime';

export interface PolicyIssue {
  /** dotted path of the bad field ('' for the whole input) */
  path: string;
  message: string;
}

export class PolicyError extends Error {
  readonly issues: PolicyIssue[];
  constructor(issues: PolicyIssue[]) {
    super(`invalid policy: ${issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')}`);
    this.name = 'PolicyError';
    this.issues = issues;
  }
}

const CUSTOM = '+custom';

/** The name of a policy made from `base` with fields overridden. */
export function customName(base: string): string {
  return base.endsWith(CUSTOM) ? base : `${base}${CUSTOM}`;
}

/** A downtime limit to start from above the maximum lifts the maximum: a limit asked for is where
 *  escalation starts, not something it must stay under. */
function liftedMaxDowntime(startMs: number, maxMs: number): number {
  return maxMs < startMs ? startMs : maxMs;
}

/** The policy starting from another downtime limit (VM.migrate `maxDowntime`). */
export function startingFrom(policy: Policy, downtimeMs: number): Policy {
  return { ...policy, downtimeMs, maxDowntimeMs: liftedMaxDowntime(downtimeMs, policy.maxDowntimeMs) };
}

function isPolicyName(s: string): s is PolicyName {
  return Object.hasOwn(BUILT_INS, s);
}

function unknownName(path: string, value: unknown): PolicyError {
  return new PolicyError([
    { path, message: `unknown policy ${JSON.stringify(value)}; expected one of ${POLICY_NAMES.join(', ')}` },
  ]);
}


/** A built-in policy by name (a fresh copy). */
export function builtinPolicy(name: PolicyName): Policy {
  return { ...BUILT_INS[name] };
}

/**
 * Resolve user input to a complete, validated policy.
 * Accepts undefined/null (default policy), a built-in name, or an object
 * `{ base?: name, ...overrides }`. Throws PolicyError naming each bad field and its value.
 */
export function resolvePolicy(input: unknown): Policy {
  if (input === undefined || input === null) return builtinPolicy(DEFAULT_POLICY);
  if (typeof input === 'string') {
    if (!isPolicyName(input)) throw unknownName('', input);
    return builtinPolicy(input);
  }
  if (typeof input !== 'object' || Array.isArray(input)) {
    throw new PolicyError([
      { path: '', message: `expected a policy name or object, got ${JSON.stringify(input)}` },
    ]);
  }
  const { base, ...overrides } = input as Record<string, unknown>;
  let baseName: PolicyName = DEFAULT_POLICY;
  if (base !== undefined) {
    if (typeof base !== 'string' || !isPolicyName(base)) throw unknownName('base', base);
    baseName = base;
  }
  const merged: Record<string, unknown> = { ...BUILT_INS[baseName], ...overrides };
  if (overrides.name === undefined && Object.keys(overrides).length > 0) merged.name = customName(baseName);
  return validated(merged);
}

/** The schema-checked policy, or a PolicyError naming each bad field and its value. */
function validated(merged: Record<string, unknown>): Policy {
  const parsed = PolicySchema.safeParse(merged);
  if (parsed.success) return parsed.data;
  throw new PolicyError(
    parsed.error.issues.map((iss) => {
      const path = iss.path.map(String).join('.');
      const keys = iss.code === 'unrecognized_keys' ? iss.keys : undefined;
      if (keys) return { path: keys.join(','), message: `unknown field(s) ${keys.join(', ')}` };
      return { path, message: `${iss.message} (got ${JSON.stringify(valueAt(merged, iss.path))})` };
    }),
  );
}

/** Fields to change on a running migration's policy (VM.migrateChangeParams). */
export type PolicyPatch = Partial<Omit<Policy, 'name'>> & { name?: string };

/**
 * The policy after a mid-flight change: `next` replaces the current one when it is a whole policy,
 * else it is merged over it. A downtime limit to start from above the maximum lifts the maximum.
 * Throws PolicyError naming each bad field.
 */
export function patchPolicy(current: Policy, next: PolicyPatch): Policy {
  const whole = PolicySchema.safeParse(next).success;
  const merged: Record<string, unknown> = whole ? { ...next } : { ...current, ...next };
  if (!whole && next.name === undefined) merged.name = customName(current.name);
  if (next.downtimeMs !== undefined && next.maxDowntimeMs === undefined) {
    merged.maxDowntimeMs = liftedMaxDowntime(next.downtimeMs, merged.maxDowntimeMs as number);
  }
  return validated(merged);
}

