// Binds the pure convergence controller (src/controller/) to the daemon: policy validation with
// the agent's error codes, and one controller per migration.
import { AgentError } from '../api/errors.js';
import { completionTimeoutMs, createController, customName, POLICY_NAMES, PolicyError, resolvePolicy, startingFrom, type Policy, type PolicyPatch } from '../controller/index.js';
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
      return {
        name: policy.name,
        allowPostcopy: policy.allowPostcopy,
        completionTimeoutMs: (ram) => completionTimeoutMs(chosen, ram),
        transferStallMs: policy.transferStallSec * 1000,
        postcopyRecoveryMs: policy.postcopyRecoverySec * 1000,
        policy,
      };
    },
    create(resolved, request) {
      const chosen = resolved.policy as Policy;
      if (!chosen.steer) return null;
      // A downtime limit asked for with VM.migrate is where the controller starts from.
      const policy = request.downtimeLimitMs !== undefined ? startingFrom(chosen, request.downtimeLimitMs) : chosen;
      // libvirt sets these when the migration starts (plan.ts): QEMU's values before any action
      const throttle = {
        ...(request.autoConvergeInitial !== undefined ? { initial: request.autoConvergeInitial } : {}),
        ...(request.autoConvergeIncrement !== undefined ? { increment: request.autoConvergeIncrement } : {}),
      };
      return createController(policy, {
        guestRamBytes: request.guestRamBytes,
        postcopyEnabled: request.postcopyEnabled,
        ...(request.bandwidthMiBps !== undefined ? { bandwidthMiBps: request.bandwidthMiBps } : {}),
        ...(request.measuredDirtyMiBps !== undefined ? { measuredDirtyMiBps: request.measuredDirtyMiBps } : {}),
        original: { throttle, ...(request.bandwidthMiBps !== undefined ? { bandwidthMiBps: request.bandwidthMiBps } : {}) },
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
        patch = { ...whole, ...overrides, ...(Object.keys(overrides).length > 0 ? { name: customName(whole.name) } : {}) };
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
