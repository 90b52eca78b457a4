// Bringing QEMU in line with the policy's limits: at the first sample, and when the policy changes
// mid-flight. Pure: returns the actions and the beliefs that change with them.
import { completionTimeoutMs } from './escalate.js';
import type { ControllerMemory } from './memory.js';
import type { Policy } from './policy.js';
import { ceilingGuard } from './throttle.js';
import type { Action, ControllerState, ThrottleParams } from './types.js';

const MiB = 1024 * 1024;

const setThrottle = (params: ThrottleParams, reason: string): Action[] =>
  Object.keys(params).length > 0 ? [{ type: 'set-throttle', params, reason }] : [];

/** At the first sample: guard the ceiling before QEMU's own trigger can climb past it, and set the
 *  policy's downtime limit and bandwidth cap where QEMU holds others. */
export function startActions(m: Readonly<ControllerMemory>): Action[] {
  const { policy, ceiling, original } = m;
  // nothing runs above the ceiling yet that the trigger would have to lower
  const guard = ceilingGuard(m.knobs, ceiling, 0);
  const actions = setThrottle(guard, ceiling <= 0 ? 'policy forbids throttling: keeping auto-converge from triggering' : `policy ceiling: throttle at most ${ceiling} %`);
  if (policy.downtimeMs !== original.downtimeMs) {
    actions.push({ type: 'set-downtime', ms: policy.downtimeMs, reason: `policy ${policy.name}: downtime limit ${policy.downtimeMs} ms` });
  }
  if (policy.bandwidthMiBps !== undefined && policy.bandwidthMiBps !== original.bandwidthMiBps) {
    actions.push({ type: 'set-bandwidth', mibPerSec: policy.bandwidthMiBps, reason: `policy ${policy.name}: bandwidth cap ${policy.bandwidthMiBps} MiB/s` });
  }
  return actions;
}

export interface PolicyChange {
  actions: Action[];
  memory: Partial<Pick<ControllerMemory, 'policy' | 'ceiling' | 'bandwidthCap' | 'payloadRates' | 'reachedCeiling' | 'saturatedAtCeiling'>>;
  view: Partial<ControllerState>;
}

/** A new steering policy mid-flight: a new ceiling, downtime limit and bandwidth cap apply now;
 *  escalation and the timeout follow it from the next decision. */
export function changeLimits(m: Readonly<ControllerMemory>, next: Policy): PolicyChange {
  const old = m.policy;
  const why = `policy changed to ${next.name}`;
  const change: PolicyChange = { actions: [], memory: { policy: next }, view: { timeoutMs: completionTimeoutMs(next, m.guestRamBytes) } };
  if (next.maxThrottle !== m.ceiling) {
    const ceiling = next.maxThrottle;
    change.memory.ceiling = ceiling;
    if (m.view.targetThrottle > ceiling) change.view.targetThrottle = ceiling;
    // a raised ceiling gives the throttle room again: the stall window starts over
    if (m.view.throttle < ceiling) {
      change.memory.reachedCeiling = false;
      change.memory.saturatedAtCeiling = 0;
      change.view.stalled = false;
    }
    change.actions.push(...setThrottle(ceilingGuard(m.knobs, ceiling, m.view.throttle), `${why}: throttle ceiling ${ceiling} %`));
  }
  // an explicitly changed start sets the limit; otherwise keep the current one within the new range
  const downtime = next.downtimeMs !== old.downtimeMs ? next.downtimeMs : Math.min(next.maxDowntimeMs, Math.max(next.downtimeMs, m.view.downtimeMs));
  if (downtime !== m.view.downtimeMs) {
    change.actions.push({ type: 'set-downtime', ms: downtime, reason: `${why}: downtime limit ${downtime} ms` });
  }
  if (next.bandwidthMiBps !== undefined && next.bandwidthMiBps !== old.bandwidthMiBps) {
    change.actions.push({ type: 'set-bandwidth', mibPerSec: next.bandwidthMiBps, reason: `${why}: bandwidth cap ${next.bandwidthMiBps} MiB/s` });
    const cap = next.bandwidthMiBps * MiB;
    change.memory.bandwidthCap = cap;
    // rates measured under the old cap no longer say what the link does
    change.memory.payloadRates = [];
    change.view.transferRate = Math.min(m.view.transferRate || cap, cap);
  }
  return change;
}
