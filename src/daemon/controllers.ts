// Binds the pure convergence controller (src/controller/) to the daemon: policy validation with
// the agent's error codes, and one controller per migration.
import { AgentError } from '../api/errors.js';
import { completionTimeoutMs, createController, POLICY_NAMES, PolicyError, resolvePolicy, type Policy, type PolicyPatch } from '../controller/index.js';
import type { ControllerFactory, PolicyChange, ResolvedPolicy } from './context.js';

function asAgentError(err: unknown): unknown {
  return err instanceof PolicyError ? new AgentError('INVALID_POLICY', err.message, { issues: err.issues }) : err;
}

export function createControllerFactory(defaultPolicy: unknown): ControllerFactory {
  const factory: ControllerFactory = {
    names: () => [...POLICY_NAMES],
    resolve(input): ResolvedPolicy {
      let policy: Policy;
      try {
        policy = resolvePolicy(input ?? defaultPolicy);
      } catch (err) {
        throw asAgentError(err);
      }
      const chosen = policy;
      return { name: policy.name, allowPostcopy: policy.allowPostcopy, completionTimeoutMs: (ram) => completionTimeoutMs(chosen, ram), policy };
    },
    create(resolved, ctx) {
      let policy = resolved.policy as Policy;
      if (!policy.steer) return null;
      // A downtime asked for with VM.migrate is where the controller starts from.
      if (ctx.maxDowntimeMs !== undefined) {
        policy = { ...policy, downtimeMs: ctx.maxDowntimeMs, maxDowntimeMs: Math.max(policy.maxDowntimeMs, ctx.maxDowntimeMs) };
      }
      const original = {
        ...(ctx.autoConvergeInitial !== undefined ? { throttleInitial: ctx.autoConvergeInitial } : {}),
        ...(ctx.autoConvergeIncrement !== undefined ? { throttleIncrement: ctx.autoConvergeIncrement } : {}),
        ...(ctx.bandwidthMiBps !== undefined ? { bandwidthMiBps: ctx.bandwidthMiBps } : {}),
      };
      return createController(policy, {
        guestRamBytes: ctx.guestRamBytes,
        postcopyEnabled: ctx.postcopyEnabled,
        ...(ctx.bandwidthMiBps !== undefined ? { bandwidthMiBps: ctx.bandwidthMiBps } : {}),
        original,
      });
    },
    change(controller, change: PolicyChange) {
      const overrides: PolicyPatch = {
        ...(change.maxThrottle !== undefined ? { maxThrottle: change.maxThrottle } : {}),
        ...(change.downtimeMs !== undefined ? { downtimeMs: change.downtimeMs } : {}),
        ...(change.bandwidthMiBps !== undefined ? { bandwidthMiBps: change.bandwidthMiBps } : {}),
      };
      let patch: PolicyPatch = overrides;
      if (change.policy !== undefined) {
        const whole = factory.resolve(change.policy).policy as Policy;
        const custom = Object.keys(overrides).length > 0 && !whole.name.endsWith('+custom');
        patch = { ...whole, ...overrides, ...(custom ? { name: `${whole.name}+custom` } : {}) };
      }
      try {
        return { actions: controller.changePolicy(patch), policyName: controller.policy().name };
      } catch (err) {
        throw asAgentError(err);
      }
    },
  };
  return factory;
}
