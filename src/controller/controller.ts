/**
 * The convergence controller: pure (no I/O, no timers, no clock; time comes in the samples).
 *
 *   const c = createController(policy, { guestRamBytes, postcopyEnabled, bandwidthMiBps?, original? });
 *   for each job-statistics sample: actions = c.observe(sample)   // apply them in order
 *   if the runner could not apply one:   c.rejected(action)         // rolls back its beliefs
 *   when the migration ended (any way):  actions = c.finish()      // restores what it changed
 *   c.state()                                                     // read-only status/debug view
 *
 * Each sample goes through the same steps: the policy's limits at the first sample
 * (policy-limits.ts), the end of the job, the payload rate, the decision at an iteration boundary
 * (decide.ts: estimate, target, QEMU parameters, stall), then escalation (escalate.ts). Decisions
 * are pure functions of the memory (memory.ts); this file commits them (commit.ts). A policy with
 * steer=false ("stock") makes it a no-op.
 */
import { JobType } from '../libvirt/types.js';
import { commit, rollback, type Undo } from './commit.js';
import { decideAtBoundary } from './decide.js';
import { escalate, escalationInput } from './escalate.js';
import { withPayloadRate } from './estimate.js';
import { armFromMeasurement } from './measured.js';
import { ended, initialMemory, measuredRateFields, type ControllerMemory } from './memory.js';
import { patchPolicy, type Policy, type PolicyPatch } from './policy.js';
import { changeLimits, startActions } from './policy-limits.js';
import { restoreActions } from './restore.js';
import type { MigrationSample } from './sample.js';
import { decodeMemory, encodeMemory } from './snapshot.js';
import type { Action, Controller, ControllerContext, ControllerState } from './types.js';

export function createController(initialPolicy: Policy, ctx: ControllerContext): Controller {
  return controllerFrom(initialMemory(initialPolicy, ctx));
}

/** A controller that goes on from a snapshot() of another (an agent restarted mid-migration).
 *  Throws SnapshotError when the snapshot cannot be restored. */
export function resumeController(snapshot: unknown): Controller {
  return controllerFrom(decodeMemory(snapshot));
}

function controllerFrom(m: ControllerMemory): Controller {
  const undo: Undo = new WeakMap();
  const commitAll = (out: Action[], actions: readonly Action[]): void => {
    for (const a of actions) commit(m, undo, out, a);
  };

  /** The job ended, or post-copy started, as the sample says. */
  function followJob(s: MigrationSample): void {
    if (s.jobType === JobType.COMPLETED) m.view.phase = 'completed';
    else if (s.jobType === JobType.FAILED || s.jobType === JobType.CANCELLED) m.view.phase = 'aborted';
    else if (s.postcopyRequests > 0) m.view.phase = 'postcopy';
  }

  function onBoundary(prev: MigrationSample, s: MigrationSample, out: Action[]): void {
    const d = decideAtBoundary(m, prev, s);
    m.lastBoundary = d.pass.boundary;
    Object.assign(m.view, {
      dirtyRate: d.pass.dirty.rate,
      dirtyRateLowerBound: d.pass.dirty.lowerBound,
      saturated: d.pass.dirty.saturated,
      passRatio: d.pass.dirty.ratio,
      transferRate: d.pass.transferRate,
      passBytes: d.pass.passBytes,
      targetThrottle: d.targetThrottle,
    });
    m.passSizes = d.passSizes;
    // set once passes called for a throttle: the snapshots of a controller whose passes never did stay as before
    if (d.passCall !== undefined) m.passCall = d.passCall;
    if (d.action) commit(m, undo, out, d.action);
    m.view.phase = d.phase;
    const { stalled, ...tracking } = d.stall;
    Object.assign(m, tracking);
    m.view.stalled = stalled;
  }

  /** During the first pass: the plan from the rate measured before the migration (measured.ts). */
  function onFirstPass(s: MigrationSample, out: Action[]): void {
    if (s.iteration > 1 || m.passSizes.length > 0 || m.view.phase !== 'first-pass') return;
    const arm = armFromMeasurement(m, s.t);
    if (!arm) return;
    m.measuredArmed = true;
    m.view.targetThrottle = arm.targetThrottle;
    m.view.dirtyRate = m.measuredDirtyRate ?? 0;
    if (arm.action) commit(m, undo, out, arm.action);
    else m.view.lastReason = arm.reason;
  }

  function onEscalation(s: MigrationSample, out: Action[]): void {
    const e = escalate(escalationInput(m, s));
    if (!e) return;
    if (e.kind !== 'downtime') return commit(m, undo, out, { type: e.kind, reason: e.reason });
    commit(m, undo, out, { type: 'set-downtime', ms: e.ms, reason: e.reason });
    // a new downtime limit gets a stall window of its own
    m.view.phase = 'escalating';
    m.stallWindowStart = m.passSizes.length - 1;
    m.saturatedAtCeiling = 0;
    m.view.stalled = false;
  }

  /** Put back every parameter changed so far. */
  function restore(why: string): Action[] {
    const out = restoreActions(m.changed, m.original, why);
    m.changed.clear();
    m.knobs = { ...m.original.throttle };
    return out;
  }

  return {
    observe(s: MigrationSample): Action[] {
      m.view.elapsedMs = s.t;
      m.view.iteration = s.iteration;
      m.view.throttle = s.throttlePercent;
      if (!m.policy.steer || ended(m)) return [];
      const out: Action[] = [];
      const prev = m.previous;
      if (!prev) commitAll(out, startActions(m));
      followJob(s);
      if (ended(m)) return out;
      if (prev) {
        m.payloadRates = withPayloadRate(m.payloadRates, prev, s);
        if (s.iteration > prev.iteration && s.iteration >= 2 && m.view.phase !== 'postcopy') onBoundary(prev, s, out);
      }
      onFirstPass(s, out);
      onEscalation(s, out);
      m.previous = s;
      return out;
    },

    useMeasuredDirtyRate(mibPerSec: number): void {
      // measured while the first pass runs: the plan from it is made at the next sample of that pass;
      // arriving later, it still informs the judgements at iteration boundaries (measured.ts)
      if (!ended(m) && m.measuredDirtyRate === undefined) Object.assign(m, measuredRateFields(mibPerSec));
    },

    rejected(action: Action): void {
      rollback(m, undo, action);
    },

    changePolicy(patch: PolicyPatch): Action[] {
      const next = patchPolicy(m.policy, patch);
      if (ended(m)) {
        m.policy = next;
        return [];
      }
      if (!next.steer) {
        // to stock: put QEMU's own parameters back and stop steering
        const out = restore(`policy changed to ${next.name}`);
        m.policy = next;
        m.view.phase = 'stock';
        m.view.lastReason = `policy changed to ${next.name}: QEMU's stock auto-converge from here`;
        return out;
      }
      if (!m.policy.steer) m.view.phase = m.previous ? 'throttling' : 'first-pass';
      const change = changeLimits(m, next);
      Object.assign(m, change.memory);
      Object.assign(m.view, change.view);
      const out: Action[] = [];
      commitAll(out, change.actions);
      return out;
    },

    policy(): Readonly<Policy> {
      return { ...m.policy };
    },

    finish(): Action[] {
      return restore('migration ended');
    },

    state(): Readonly<ControllerState> {
      return { ...m.view };
    },

    snapshot() {
      return encodeMemory(m);
    },
  };
}
