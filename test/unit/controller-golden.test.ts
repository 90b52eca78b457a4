// The controller's decisions, pinned: every action (time, type, parameters, reason) it takes against
// the simulator over a grid of scenarios, policies, starting parameters, mid-flight policy changes
// and refused actions must stay byte-identical to test/golden/controller-actions.json.
// A deliberate change of behaviour regenerates the file: UPDATE_GOLDEN=1 npm run test:unit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Action, ControllerContext } from '../../src/controller/types.js';
import { createController } from '../../src/controller/controller.js';
import { resolvePolicy, type Policy, type PolicyPatch } from '../../src/controller/policy.js';
import { createSimulation, HEAVY_LAB, labHeavyGuestShare, SCENARIOS, type Scenario } from '../../src/simulator/index.js';

const GOLDEN = fileURLToPath(new URL('../../../test/golden/controller-actions.json', import.meta.url));
const MiB = 1024 * 1024;

interface Run {
  name: string;
  scenario: Scenario;
  policy: Policy;
  ctx?: Partial<ControllerContext>;
  /** a policy change at a time (s), as VM.migrateChangeParams would make it */
  change?: { atSec: number; patch: PolicyPatch };
  /** the simulated QEMU refuses every n-th action */
  refuseEvery?: number;
  shareAt?: (p: number) => number;
}

interface Entry {
  t: number;
  when: 'observe' | 'change' | 'finish';
  applied: boolean;
  action: Action;
}

function play(run: Run): unknown {
  const sim = createSimulation(run.scenario, { autoConverge: true, timeLimitSec: 400, ...(run.shareAt ? { shareAt: run.shareAt } : {}) });
  const c = createController(run.policy, {
    guestRamBytes: run.scenario.ramMiB * MiB,
    postcopyEnabled: run.scenario.postcopyEnabled ?? true,
    bandwidthMiBps: run.scenario.bandwidthMiBps,
    ...run.ctx,
  });
  const log: Entry[] = [];
  let n = 0;
  let changed = false;
  const apply = (t: number, when: Entry['when'], a: Action): void => {
    n += 1;
    const refused = run.refuseEvery !== undefined && n % run.refuseEvery === 0;
    const applied = !refused && sim.apply(a);
    log.push({ t, when, applied, action: a });
    if (!applied) c.rejected(a);
  };
  for (let s = sim.next(); s; s = sim.next()) {
    for (const a of c.observe(s)) apply(s.t, 'observe', a);
    if (run.change && !changed && s.t >= run.change.atSec * 1000) {
      changed = true;
      for (const a of c.changePolicy(run.change.patch)) apply(s.t, 'change', a);
    }
  }
  for (const a of c.finish()) log.push({ t: -1, when: 'finish', applied: true, action: a });
  const st = c.state();
  const r = sim.result();
  return {
    name: run.name,
    result: { completed: r.completed, aborted: r.aborted, postcopy: r.postcopy, timeSec: r.timeSec, iterations: r.iterations, peakThrottle: r.peakThrottle, downtimeMs: r.downtimeMs },
    policy: c.policy().name,
    state: {
      phase: st.phase,
      iteration: st.iteration,
      dirtyRate: st.dirtyRate,
      dirtyRateLowerBound: st.dirtyRateLowerBound,
      saturated: st.saturated,
      passRatio: st.passRatio,
      transferRate: st.transferRate,
      passBytes: st.passBytes,
      targetThrottle: st.targetThrottle,
      throttle: st.throttle,
      stalled: st.stalled,
      downtimeMs: st.downtimeMs,
      timeoutMs: st.timeoutMs,
      lastReason: st.lastReason,
    },
    actions: log,
  };
}

function grid(): Run[] {
  const runs: Run[] = [];
  const policies: [string, Policy, Partial<ControllerContext>?][] = [
    ['minimal-downtime', resolvePolicy('minimal-downtime')],
    ['protect-workload', resolvePolicy('protect-workload')],
    ['finish-at-any-cost', resolvePolicy('finish-at-any-cost')],
    ['stock', resolvePolicy('stock')],
    ['ceiling-30', resolvePolicy({ maxThrottle: 30 })],
    ['ceiling-0', resolvePolicy({ maxThrottle: 0 })],
    ['pw-downtime-bandwidth', resolvePolicy({ base: 'protect-workload', downtimeMs: 200, bandwidthMiBps: 95 })],
    // the controller uses post-copy whenever the migration was started with it: here it was not
    ['no-steps-no-postcopy', resolvePolicy({ downtimeSteps: 0, allowPostcopy: false }), { postcopyEnabled: false }],
    ['prefer-postcopy', resolvePolicy({ preferPostcopy: true, stallWindowIterations: 1 })],
    ['fast-guess', resolvePolicy({ convergePasses: 2, saturationFactor: 1, minProgress: 0.3 })],
  ];
  const scenarios = [...SCENARIOS, { name: 'bench-moderate', description: '', ramMiB: 1024, workingSetMiB: 256, dirtyMiBps: 150, bandwidthMiBps: 100 }];
  for (const scenario of scenarios) {
    for (const [pname, policy, ctx] of policies) runs.push({ name: `${scenario.name}/${pname}`, scenario, policy, ...(ctx ? { ctx } : {}) });
  }
  const original = { throttle: { initial: 15, increment: 5, max: 95, threshold: 40 }, downtimeMs: 250, bandwidthMiBps: 90 };
  for (const scenario of scenarios) {
    runs.push({ name: `${scenario.name}/original-params`, scenario, policy: resolvePolicy(undefined), ctx: { original } });
    runs.push({ name: `${scenario.name}/no-bandwidth-hint`, scenario, policy: resolvePolicy(undefined), ctx: { bandwidthMiBps: undefined } as Partial<ControllerContext> });
    runs.push({ name: `${scenario.name}/refuse-every-3`, scenario, policy: resolvePolicy(undefined), refuseEvery: 3 });
    runs.push({ name: `${scenario.name}/refuse-every-2-pw`, scenario, policy: resolvePolicy('protect-workload'), refuseEvery: 2 });
  }
  runs.push({ name: 'heavy-lab/lab-guest-share', scenario: HEAVY_LAB, policy: resolvePolicy(undefined), shareAt: labHeavyGuestShare });
  const changes: [string, number, PolicyPatch, Policy?][] = [
    ['lower-ceiling', 12, { maxThrottle: 50 }],
    ['ceiling-0', 12, { maxThrottle: 0 }],
    ['raise-ceiling', 30, { maxThrottle: 99 }, resolvePolicy({ maxThrottle: 40 })],
    ['downtime-bandwidth', 8, { downtimeMs: 800, bandwidthMiBps: 120 }],
    ['downtime-above-max', 8, { downtimeMs: 5000 }],
    ['bandwidth-only', 5, { bandwidthMiBps: 60 }],
    ['to-stock', 12, resolvePolicy('stock')],
    ['from-stock', 12, resolvePolicy('minimal-downtime'), resolvePolicy('stock')],
    ['to-protect-workload', 20, resolvePolicy('protect-workload')],
    ['to-finish-at-any-cost', 40, resolvePolicy('finish-at-any-cost')],
    ['named-patch', 10, { name: 'mine', maxThrottle: 70, downtimeSteps: 1 }],
    ['at-start', 0, { maxThrottle: 60, downtimeMs: 400 }],
    ['after-end', 10_000, { maxThrottle: 40 }],
  ];
  const changeScenarios = ['medium', 'heavy-lab', 'heavy-4g', 'slow-link', 'hot-small', 'runaway', 'runaway-nopostcopy', 'moderate'];
  for (const sname of changeScenarios) {
    const scenario = scenarios.find((s) => s.name === sname) as Scenario;
    for (const [cname, atSec, patch, start] of changes) {
      runs.push({ name: `${sname}/change-${cname}`, scenario, policy: start ?? resolvePolicy(undefined), change: { atSec, patch } });
    }
  }
  return runs;
}

test('controller decisions over the golden grid are unchanged', () => {
  const text = `${JSON.stringify(grid().map(play), null, 1)}\n`;
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(GOLDEN, text);
  const golden = readFileSync(GOLDEN, 'utf8');
  // compare run by run first, so a failure names the first run that differs
  const got = JSON.parse(text) as { name: string }[];
  const want = JSON.parse(golden) as { name: string }[];
  assert.equal(got.length, want.length, 'number of runs');
  for (let i = 0; i < got.length; i++) assert.deepEqual(got[i], want[i], `run ${want[i]?.name}`);
  assert.equal(text, golden, 'byte-identical');
});
