// Binds the pure convergence controller (src/controller/) to the daemon: policy validation with
// the agent's error codes, and one controller per migration.
import { AgentError } from '../api/errors.js';
import { createController, POLICY_NAMES, PolicyError, resolvePolicy, type Policy } from '../controller/index.js';
import type { ControllerFactory, ResolvedPolicy } from './context.js';

export function createControllerFactory(defaultPolicy: unknown): ControllerFactory {
  return {
    names: () => [...POLICY_NAMES],
    resolve(input): ResolvedPolicy {
      let policy: Policy;
      try {
        policy = resolvePolicy(input ?? defaultPolicy);
      } catch (err) {
        if (err instanceof PolicyError) throw new AgentError('INVALID_POLICY', err.message, { issues: err.issues });
        throw err;
      }
      return { name: policy.name, allowPostcopy: policy.allowPostcopy, policy };
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
  };
}
