// One simulated migration, driven like the daemon drives QEMU: every sample goes to the controller
// (controller mode), its actions go back to the engine, refusals are reported to the controller.
import type { Action } from '../controller/types.js';
import { createController } from '../controller/controller.js';
import { resolvePolicy, type Policy } from '../controller/policy.js';
import { createSimulation, type EngineOptions, type EngineResult } from './engine.js';
import type { Scenario } from './scenario.js';

const MiB = 1024 * 1024;

/** none: no auto-converge; stock: QEMU auto-converge untouched; controller: steered by the policy */
export type SimMode = 'none' | 'stock' | 'controller';

export interface SimOptions extends Omit<EngineOptions, 'autoConverge'> {
  mode: SimMode;
  /** controller mode; default: the default policy */
  policy?: Policy;
  /** controller mode: the dirty rate measured before the migration, MiB/s (see sampledDirtyMiBps) */
  measuredDirtyMiBps?: number;
  /** controller mode: the dirty rates the agent sampled before the migration, MiB/s */
  recentDirtyMiBps?: number[];
}

export interface SimResult extends EngineResult {
  mode: SimMode;
  policy: string | null;
  /** actions the controller took, t in s */
  actions: { t: number; action: Action }[];
  /** what controller.finish() returned at the end */
  finishActions: Action[];
  /** actions the simulated QEMU refused */
  rejected: { t: number; action: Action }[];
}

export function simulate(scn: Scenario, opts: SimOptions): SimResult {
  const { mode, policy: given, measuredDirtyMiBps, recentDirtyMiBps, ...engineOpts } = opts;
  const sim = createSimulation(scn, { ...engineOpts, autoConverge: mode !== 'none' });
  const policy = mode === 'controller' ? (given ?? resolvePolicy(undefined)) : undefined;
  const controller = policy
    ? createController(policy, { guestRamBytes: scn.ramMiB * MiB, postcopyEnabled: scn.postcopyEnabled ?? true, bandwidthMiBps: scn.bandwidthMiBps, ...(measuredDirtyMiBps !== undefined ? { measuredDirtyMiBps } : {}), ...(recentDirtyMiBps !== undefined ? { recentDirtyMiBps } : {}) })
    : undefined;
  const actions: SimResult['actions'] = [];
  const rejected: SimResult['rejected'] = [];
  for (let s = sim.next(); s; s = sim.next()) {
    if (!controller) continue;
    for (const a of controller.observe(s)) {
      actions.push({ t: s.t / 1000, action: a });
      if (!sim.apply(a)) {
        rejected.push({ t: s.t / 1000, action: a });
        controller.rejected(a);
      }
    }
  }
  return {
    ...sim.result(),
    mode,
    policy: policy?.name ?? null,
    actions,
    finishActions: controller ? controller.finish() : [],
    rejected,
  };
}
