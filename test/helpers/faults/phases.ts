// Phase drivers: how to bring a migration of a small TCG guest reliably to each phase, and hold it
// there until the suite lets it go. Each phase is a guest, VM.migrate parameters that keep the
// migration from finishing on its own (a low bandwidth cap, a small downtime limit, a throttle
// ceiling the guest outruns), a pure predicate on the agent's status that says the phase is reached,
// and a VM.migrateChangeParams that lets it finish (a high cap and a 2 s downtime limit).
import type { FaultStatus } from './agent-status.js';
import type { PhaseName } from './model.js';

const MiB = 1024 * 1024;

export interface GuestProfile {
  ramMiB: number;
  wsMiB: number;
  rateMiB: number;
}

export interface PhaseDriver {
  name: PhaseName;
  guest: GuestProfile;
  /** VM.migrate parameters besides vmId and dst */
  migrate: Record<string, unknown>;
  /** the phase is reached (pure) */
  reached: (s: FaultStatus) => boolean;
  /** what the phase looks like, for the report */
  description: string;
  /** VM.migrateChangeParams that lets a pre-copy migration held in this phase finish; null for post-copy */
  release: Record<string, unknown> | null;
  reachTimeoutMs: number;
  /** libvirt's post-copy bandwidth cap (MiB/s) the suite sets on the source right after the start, so
   *  post-copy lasts long enough to be hit (about 16 s here instead of under 2 s) */
  postcopyBandwidthMiB?: number;
}

/** Lets a held pre-copy migration finish within a pass or two. */
const RELEASE = { bandwidth: 1024, maxDowntime: 2000 };

/** A policy that never raises the downtime limit and never gives up within a case. */
const holding = (over: Record<string, unknown>) => ({ base: 'minimal-downtime', downtimeSteps: 0, allowPostcopy: false, completionTimeoutMinSec: 600, ...over });

export const PHASE_DRIVERS: Record<PhaseName, PhaseDriver> = {
  // 96 MiB of written pages at 8 MiB/s: the first pass alone takes about 12 s
  'first-pass': {
    name: 'first-pass',
    guest: { ramMiB: 256, wsMiB: 96, rateMiB: 8 },
    migrate: { bandwidth: 8, maxDowntime: 50, policy: holding({ downtimeMs: 50 }) },
    reached: (s) => s.state === 'running' && s.iteration <= 1 && s.dataProcessed >= 4 * MiB,
    description: 'first pass: iteration 1, at least 4 MiB sent (256 MiB guest, 96 MiB written, 8 MiB/s cap: a 12 s pass)',
    release: RELEASE,
    reachTimeoutMs: 30_000,
  },
  // 64 MiB dirtied at 64 MiB/s over a 16 MiB/s cap: at its 50 % ceiling the guest still outruns the link
  throttling: {
    name: 'throttling',
    guest: { ramMiB: 256, wsMiB: 64, rateMiB: 64 },
    migrate: { bandwidth: 16, maxDowntime: 50, policy: holding({ maxThrottle: 50, downtimeMs: 50 }) },
    reached: (s) => s.state === 'running' && s.throttlePercent > 0 && s.actions.some((a) => a.action.type === 'set-throttle' && a.applied),
    description: "throttling: after the controller's first set-throttle action, with QEMU's throttle above 0 (64 MiB dirtied at 64 MiB/s, 16 MiB/s cap, ceiling 50 %)",
    release: RELEASE,
    reachTimeoutMs: 60_000,
  },
  // an 8 MiB working set re-dirtied every pass, no throttle, a 50 ms limit: 8 MiB stay to send, for ever
  'near-switchover': {
    name: 'near-switchover',
    guest: { ramMiB: 256, wsMiB: 8, rateMiB: 32 },
    migrate: { bandwidth: 8, maxDowntime: 50, policy: holding({ maxThrottle: 0, downtimeMs: 50 }) },
    reached: (s) => s.state === 'running' && s.iteration >= 3 && s.dataRemaining > 0 && s.dataRemaining <= 16 * MiB,
    description: 'near the switchover: iteration 3 or later with at most 16 MiB left of 256 (8 MiB re-dirtied each pass, no throttle, 50 ms limit)',
    release: RELEASE,
    reachTimeoutMs: 60_000,
  },
  // started with post-copy, under a policy that prefers it over downtime steps: the controller switches
  // once the 50 % ceiling stalls
  'post-copy': {
    name: 'post-copy',
    guest: { ramMiB: 256, wsMiB: 64, rateMiB: 64 },
    migrate: { bandwidth: 16, postcopy: true, policy: { base: 'protect-workload', completionTimeoutMinSec: 600 } },
    reached: (s) => s.postcopy && !['completed', 'failed', 'cancelled'].includes(s.state),
    description: 'post-copy: started with postcopy: true under protect-workload, which switches once its 50 % ceiling stalls (64 MiB dirtied at 64 MiB/s, 16 MiB/s cap)',
    release: null,
    reachTimeoutMs: 90_000,
    postcopyBandwidthMiB: 4,
  },
};

/** Parameters for "the agent can migrate the VM again": a 2 s limit and an explicit high cap (a cap a
 *  fault left behind in QEMU is the params-restored check's to report, not a reason to crawl), so it
 *  finishes in seconds. */
export const MIGRATE_AGAIN = { bandwidth: 1024, maxDowntime: 2000 };
