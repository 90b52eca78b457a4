/**
 * The convergence controller: pure (no I/O, no timers, no clock; time comes in the samples).
 *
 *   const c = createController(policy, { guestRamBytes, postcopyEnabled, bandwidthMiBps?, original? });
 *   for each job-statistics sample: actions = c.observe(sample)   // apply them in order
 *   if the runner could not apply one:   c.rejected(action)         // rolls back its beliefs
 *   when the migration ended (any way):  actions = c.finish()      // restores what it changed
 *   c.state()                                                     // read-only status/debug view
 *
 * Decisions are taken at iteration boundaries (first sample with a higher iteration number):
 * estimate the guest's unthrottled dirty rate and the payload rate (estimate.ts), compute the
 * throttle that converges within the downtime limit in policy.convergePasses passes (throttle.ts),
 * translate it into QEMU parameters that land there at the next trigger, and escalate when the
 * throttle at the policy ceiling stalls (stall.ts, escalate.ts). A policy with steer=false
 * ("stock") makes it a no-op.
 */
import type { MigrationSample } from './sample.js';
import { JobType } from '../libvirt/types.js';
import type { Action, Controller, ControllerContext, ControllerState, OriginalParams, ThrottleParams } from './types.js';
import { patchPolicy, type Policy, type PolicyPatch } from './policy.js';
import { estimateDirty, median, passRatio, passStartBytes, payloadRate } from './estimate.js';
import { isStalled, isTransferStalled } from './stall.js';
import { ARM_THRESHOLD, MIN_RAISE, planThrottle, throttleNeeded, type QemuThrottle } from './throttle.js';
import { completionTimeoutMs, downtimeSchedule, escalate } from './escalate.js';

const MiB = 1024 * 1024;
/** libvirt's "unlimited" migration bandwidth, MiB/s */
export const UNLIMITED_BANDWIDTH_MIBPS = 8796093022207;
const RATE_WINDOW = 8;
const HISTORY = 32;
const TRANSFER_STALL_MS = 10_000;

export const QEMU_DEFAULTS: OriginalParams = {
  throttleInitial: 20,
  throttleIncrement: 10,
  maxThrottle: 99,
  tailslow: false,
  triggerThreshold: 50,
  downtimeMs: 300,
  bandwidthMiBps: UNLIMITED_BANDWIDTH_MIBPS,
};

const mib = (b: number): string => (b / MiB).toFixed(0);

export function createController(initialPolicy: Policy, ctx: ControllerContext): Controller {
  const orig: OriginalParams = { ...QEMU_DEFAULTS, ...ctx.original };
  // all three change only in changePolicy()
  let policy = initialPolicy;
  let ceiling = policy.maxThrottle;
  let schedule = downtimeSchedule(policy);
  const q: QemuThrottle = {
    initial: orig.throttleInitial,
    increment: orig.throttleIncrement,
    max: orig.maxThrottle,
    threshold: orig.triggerThreshold,
  };
  type Changed = keyof ThrottleParams | 'downtime' | 'bandwidth';
  const changed = new Set<Changed>();
  const undo = new WeakMap<Action, () => void>();
  let postcopyRefused = false;
  const history: MigrationSample[] = [];
  const rates: number[] = [];
  const passSizes: number[] = [];
  let stallMark = 0; // passSizes index the stall window is measured from
  let reachedCeiling = false;
  let lastBoundary = { t: 0, processed: 0, iteration: 1 };
  let saturatedAtCeiling = 0; // consecutive boundaries
  let prev: MigrationSample | undefined;
  let bandwidthCap = policy.bandwidthMiBps !== undefined ? policy.bandwidthMiBps * MiB : Infinity;

  const st: ControllerState = {
    phase: policy.steer ? 'first-pass' : 'stock',
    iteration: 0,
    elapsedMs: 0,
    dirtyRate: 0,
    dirtyRateLowerBound: 0,
    saturated: false,
    passRatio: 0,
    transferRate: (ctx.bandwidthMiBps ?? 0) * MiB,
    passBytes: ctx.guestRamBytes,
    targetThrottle: 0,
    throttle: 0,
    stalled: false,
    transferStalled: false,
    downtimeMs: orig.downtimeMs,
    timeoutMs: completionTimeoutMs(policy, ctx.guestRamBytes),
    lastReason: '',
  };

  /** Record an action and how to forget it if the runner can't apply it. */
  const emit = (out: Action[], a: Action, keys: Changed[] = []): void => {
    const before = { q: { ...q }, changed: new Set(changed), downtimeMs: st.downtimeMs, phase: st.phase };
    for (const k of keys) changed.add(k);
    undo.set(a, () => {
      Object.assign(q, before.q);
      for (const k of keys) if (!before.changed.has(k)) changed.delete(k);
      st.downtimeMs = before.downtimeMs;
      if (a.type === 'postcopy') postcopyRefused = true;
      if (a.type === 'postcopy' || a.type === 'abort') st.phase = before.phase;
    });
    out.push(a);
    st.lastReason = a.reason;
  };

  function setThrottle(out: Action[], params: ThrottleParams, reason: string): void {
    const keys = Object.keys(params) as (keyof ThrottleParams)[];
    if (keys.length === 0) return;
    const a: Action = { type: 'set-throttle', params, reason };
    emit(out, a, keys);
    if (params['cpu-throttle-initial'] !== undefined) q.initial = params['cpu-throttle-initial'];
    if (params['cpu-throttle-increment'] !== undefined) q.increment = params['cpu-throttle-increment'];
    if (params['max-cpu-throttle'] !== undefined) q.max = params['max-cpu-throttle'];
    if (params['throttle-trigger-threshold'] !== undefined) q.threshold = params['throttle-trigger-threshold'];
  }

  function start(out: Action[]): void {
    // guard the ceiling before QEMU's own trigger can climb past it
    const guard: ThrottleParams = {};
    if (ceiling <= 0) guard['throttle-trigger-threshold'] = 100;
    else {
      if (q.max > ceiling) guard['max-cpu-throttle'] = ceiling;
      if (q.initial > ceiling) guard['cpu-throttle-initial'] = ceiling;
    }
    setThrottle(out, guard, ceiling <= 0 ? 'policy forbids throttling: keeping auto-converge from triggering' : `policy ceiling: throttle at most ${ceiling} %`);
    if (policy.downtimeMs !== orig.downtimeMs) {
      emit(out, { type: 'set-downtime', ms: policy.downtimeMs, reason: `policy ${policy.name}: downtime limit ${policy.downtimeMs} ms` }, ['downtime']);
      st.downtimeMs = policy.downtimeMs;
    }
    if (policy.bandwidthMiBps !== undefined && policy.bandwidthMiBps !== orig.bandwidthMiBps) {
      emit(out, { type: 'set-bandwidth', mibPerSec: policy.bandwidthMiBps, reason: `policy ${policy.name}: bandwidth cap ${policy.bandwidthMiBps} MiB/s` }, ['bandwidth']);
    }
  }

  /** median of recent payload rates; before any, the context's bandwidth or last estimate */
  function transferEstimate(): number {
    const measured = median(rates);
    return Math.min(measured > 0 ? measured : st.transferRate, bandwidthCap);
  }

  function onBoundary(p: MigrationSample, s: MigrationSample, out: Action[]): void {
    const passBytes = passStartBytes(p, s);
    // place the boundary itself: the bytes of the new pass already sent went at the payload rate
    const sentAfter = Math.max(0, passBytes - s.dataRemaining);
    const b = transferEstimate();
    const tb = b > 0 ? Math.max(p.t, s.t - (sentAfter / b) * 1000) : s.t;
    const processedAtBoundary = s.dataProcessed - sentAfter;
    const dt = (tb - lastBoundary.t) / 1000;
    const intervalRate = dt > 0 ? (processedAtBoundary - lastBoundary.processed) / dt : 0;
    const passes = s.iteration - lastBoundary.iteration;
    lastBoundary = { t: tb, processed: processedAtBoundary, iteration: s.iteration };
    const prevPass = passSizes[passSizes.length - 1];
    // pass sizes give the exact shrink ratio; after pass 1 (all RAM, zero pages) only QEMU's rate can
    const ratio = prevPass !== undefined ? passRatio(prevPass, passBytes, passes) : intervalRate > 0 ? s.dirtyRate / intervalRate : 0;
    const dirtied = prevPass !== undefined ? ratio * b : s.dirtyRate;
    // the throttle in force during the pass that just ended (QEMU changes it only at syncs)
    const during = p.throttlePercent;
    const est = estimateDirty(ratio, dirtied, during, st.dirtyRate, policy.saturationFactor, prevPass === undefined);
    Object.assign(st, {
      dirtyRate: est.rate,
      dirtyRateLowerBound: est.lowerBound,
      saturated: est.saturated,
      passRatio: est.ratio,
      transferRate: b,
      passBytes,
    });
    passSizes.push(passBytes);

    const target = throttleNeeded(est.rate, b, passBytes, st.downtimeMs, policy.convergePasses, ceiling);
    // saturated although our throttle was in force: the guess was too low by an unknown factor;
    // more guessing costs two passes per step, so go to the ceiling
    const againSaturated = est.saturated && st.targetThrottle > 0 && during >= st.targetThrottle - MIN_RAISE;
    // never steer a running throttle down (QEMU can't lower it without a trigger anyway)
    const goal = Math.max(againSaturated ? ceiling : target.throttle, during > 0 || s.throttlePercent > 0 ? st.targetThrottle : 0);
    st.targetThrottle = goal;
    const params = planThrottle(goal, s.throttlePercent, q, ceiling, est.ratio * 100 > q.threshold);
    const why =
      `dirty rate ${est.saturated ? '>= ' : ''}${mib(est.lowerBound)} MiB/s unthrottled` +
      `${est.saturated && !againSaturated ? ` (working set saturated, assuming ${mib(est.rate)})` : ''}, payload ${mib(b)} MiB/s, ` +
      `pass ${mib(passBytes)} MiB, downtime ${st.downtimeMs} ms`;
    if (againSaturated) {
      setThrottle(out, params, `${why}: working set still saturated at ${during} % throttle: going to the ceiling ${ceiling} %`);
    } else if (goal > s.throttlePercent) {
      setThrottle(out, params, `${why}: throttle ${goal} % to shrink each pass to ~${target.ratio.toFixed(2)}` +
        `${target.wanted > ceiling ? ` (needs ${target.wanted} %, capped by policy at ${ceiling} %)` : ''}`);
    } else if (s.throttlePercent > 0) {
      setThrottle(out, params, `${why}: hold the throttle at ${s.throttlePercent} %`);
    } else {
      setThrottle(out, params, `${why}: converges without throttling; keeping auto-converge from triggering`);
    }
    if (st.phase === 'first-pass' || st.phase === 'converging' || st.phase === 'throttling') {
      st.phase = goal > 0 || s.throttlePercent > 0 ? 'throttling' : 'converging';
    }

    // stall window starts when the throttle is at its ceiling (it can't help more), and again after
    // each escalation; a working set re-dirtied completely twice at the ceiling is proof enough
    const exhausted = ceiling <= 0 || s.throttlePercent >= ceiling;
    if (exhausted && !reachedCeiling) {
      reachedCeiling = true;
      stallMark = passSizes.length - 1;
    }
    saturatedAtCeiling = est.saturated && (ceiling <= 0 || during >= ceiling) ? saturatedAtCeiling + 1 : 0;
    st.stalled =
      reachedCeiling &&
      (saturatedAtCeiling >= 2 || isStalled(passSizes.slice(stallMark), policy.stallWindowIterations, policy.minProgress));
  }

  function checkEscalation(s: MigrationSample, out: Action[]): void {
    const recent = passSizes.slice(-policy.stallWindowIterations);
    const smallest = recent.length ? Math.min(...recent) : st.passBytes;
    const e = escalate({
      elapsedMs: s.t,
      timeoutMs: st.timeoutMs,
      postcopyActive: st.phase === 'postcopy',
      postcopyPossible: policy.allowPostcopy && ctx.postcopyEnabled && !postcopyRefused,
      preferPostcopy: policy.preferPostcopy,
      stalled: st.stalled,
      throttleExhausted: reachedCeiling,
      downtimeMs: st.downtimeMs,
      schedule,
      neededDowntimeMs: st.transferRate > 0 ? ((smallest / st.transferRate) * 1000 * 1.15) : Infinity,
    });
    if (!e) return;
    if (e.kind === 'abort') {
      emit(out, { type: 'abort', reason: e.reason });
      st.phase = 'aborted';
    } else if (e.kind === 'postcopy') {
      emit(out, { type: 'postcopy', reason: e.reason });
      st.phase = 'postcopy';
    } else {
      emit(out, { type: 'set-downtime', ms: e.ms, reason: e.reason }, ['downtime']);
      st.phase = 'escalating';
      st.downtimeMs = e.ms;
      stallMark = passSizes.length - 1;
      saturatedAtCeiling = 0;
      st.stalled = false;
    }
  }

  /** Actions that put back every parameter changed so far. */
  function restore(why = 'migration ended'): Action[] {
    const out: Action[] = [];
    const params: ThrottleParams = {};
    if (changed.has('cpu-throttle-initial')) params['cpu-throttle-initial'] = orig.throttleInitial;
    if (changed.has('cpu-throttle-increment')) params['cpu-throttle-increment'] = orig.throttleIncrement;
    if (changed.has('max-cpu-throttle')) params['max-cpu-throttle'] = orig.maxThrottle;
    if (changed.has('cpu-throttle-tailslow')) params['cpu-throttle-tailslow'] = orig.tailslow;
    if (changed.has('throttle-trigger-threshold')) params['throttle-trigger-threshold'] = orig.triggerThreshold;
    if (Object.keys(params).length > 0) out.push({ type: 'set-throttle', params, reason: `${why}: restoring throttle parameters` });
    if (changed.has('downtime')) out.push({ type: 'set-downtime', ms: orig.downtimeMs, reason: `${why}: restoring the downtime limit` });
    if (changed.has('bandwidth')) out.push({ type: 'set-bandwidth', mibPerSec: orig.bandwidthMiBps, reason: `${why}: restoring the bandwidth limit` });
    changed.clear();
    q.initial = orig.throttleInitial;
    q.increment = orig.throttleIncrement;
    q.max = orig.maxThrottle;
    q.threshold = orig.triggerThreshold;
    return out;
  }

  /** Actions that bring QEMU in line with a new policy; updates ceiling, schedule, cap, timeout. */
  function applyPolicy(next: Policy, out: Action[]): void {
    const old = policy;
    policy = next;
    schedule = downtimeSchedule(next);
    st.timeoutMs = completionTimeoutMs(next, ctx.guestRamBytes);
    const why = `policy changed to ${next.name}`;
    if (next.maxThrottle !== ceiling) {
      ceiling = next.maxThrottle;
      const guard: ThrottleParams = {};
      if (ceiling <= 0) guard['throttle-trigger-threshold'] = 100;
      else {
        if (q.max > ceiling) guard['max-cpu-throttle'] = ceiling;
        if (q.initial > ceiling) guard['cpu-throttle-initial'] = ceiling;
        // QEMU lowers a running throttle to max-cpu-throttle only when its trigger fires next
        if (st.throttle > ceiling) guard['throttle-trigger-threshold'] = Math.min(q.threshold, ARM_THRESHOLD);
      }
      if (st.targetThrottle > ceiling) st.targetThrottle = ceiling;
      // a raised ceiling gives the throttle room again: the stall window starts over
      if (st.throttle < ceiling) {
        reachedCeiling = false;
        saturatedAtCeiling = 0;
        st.stalled = false;
      }
      setThrottle(out, guard, `${why}: throttle ceiling ${ceiling} %`);
    }
    // an explicitly changed start sets the limit; otherwise keep the current one within the new range
    const downtime = next.downtimeMs !== old.downtimeMs ? next.downtimeMs : Math.min(next.maxDowntimeMs, Math.max(next.downtimeMs, st.downtimeMs));
    if (downtime !== st.downtimeMs) {
      emit(out, { type: 'set-downtime', ms: downtime, reason: `${why}: downtime limit ${downtime} ms` }, ['downtime']);
      st.downtimeMs = downtime;
    }
    if (next.bandwidthMiBps !== undefined && next.bandwidthMiBps !== old.bandwidthMiBps) {
      emit(out, { type: 'set-bandwidth', mibPerSec: next.bandwidthMiBps, reason: `${why}: bandwidth cap ${next.bandwidthMiBps} MiB/s` }, ['bandwidth']);
      bandwidthCap = next.bandwidthMiBps * MiB;
      // rates measured under the old cap no longer say what the link does
      rates.length = 0;
      st.transferRate = Math.min(st.transferRate || bandwidthCap, bandwidthCap);
    }
  }

  return {
    observe(s: MigrationSample): Action[] {
      st.elapsedMs = s.t;
      st.iteration = s.iteration;
      st.throttle = s.throttlePercent;
      if (!policy.steer || st.phase === 'aborted' || st.phase === 'completed') return [];
      const out: Action[] = [];
      if (!prev) start(out);
      if (s.jobType === JobType.COMPLETED) {
        st.phase = 'completed';
        return out;
      }
      if (s.jobType === JobType.FAILED || s.jobType === JobType.CANCELLED) {
        st.phase = 'aborted';
        return out;
      }
      if (s.postcopyRequests > 0) st.phase = 'postcopy';
      if (prev) {
        const r = payloadRate(prev, s);
        if (r !== null && s.iteration >= 1) {
          rates.push(r);
          if (rates.length > RATE_WINDOW) rates.shift();
        }
        if (s.iteration > prev.iteration && s.iteration >= 2 && st.phase !== 'postcopy') onBoundary(prev, s, out);
      }
      history.push(s);
      if (history.length > HISTORY) history.shift();
      st.transferStalled = isTransferStalled(history, TRANSFER_STALL_MS);
      checkEscalation(s, out);
      prev = s;
      return out;
    },

    rejected(action: Action): void {
      undo.get(action)?.();
      undo.delete(action);
    },

    changePolicy(patch: PolicyPatch): Action[] {
      const next = patchPolicy(policy, patch);
      if (st.phase === 'aborted' || st.phase === 'completed') {
        policy = next;
        return [];
      }
      const out: Action[] = [];
      if (!next.steer) {
        // to stock: put QEMU's own parameters back and stop steering
        out.push(...restore(`policy changed to ${next.name}`));
        policy = next;
        st.phase = 'stock';
        st.lastReason = `policy changed to ${next.name}: QEMU's stock auto-converge from here`;
        return out;
      }
      if (!policy.steer) st.phase = prev ? 'throttling' : 'first-pass';
      applyPolicy(next, out);
      return out;
    },

    policy(): Readonly<Policy> {
      return { ...policy };
    },

    finish(): Action[] {
      return restore();
    },

    state(): Readonly<ControllerState> {
      return { ...st };
    },
  };
}
