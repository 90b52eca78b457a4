// The controller with the dirty rate measured before the migration (ControllerContext
// measuredDirtyMiBps): a guest that converges alone is not throttled, a needed throttle is armed
// during the first pass and lands at QEMU's first trigger, and a wrong measurement still finishes.
// Runs without the measurement are pinned by controller-golden.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createController, resumeController } from '../../src/controller/controller.js';
import { aloneMargin, awaitsConfirmation, keepsArmed, nextPassCall, RELEASE_MARGIN, SHORT_PASS_MS } from '../../src/controller/hysteresis.js';
import { convergesAlone } from '../../src/controller/measured.js';
import { resolvePolicy } from '../../src/controller/policy.js';
import type { Action } from '../../src/controller/types.js';
import { createSimulation, HEAVY_LAB, sampledDirtyMiBps, SCENARIOS, simulate, type Scenario } from '../../src/simulator/index.js';

const MiB = 1024 * 1024;
const policy = resolvePolicy('minimal-downtime');

/** Bursty guests like the lab's Linux guest (stress-ng rewriting its buffer, then sleeping): each
 *  pass may find the whole working set re-dirtied, yet they converge alone. */
const BURSTY: Scenario[] = [
  { name: 'bursty-1g-64-30', description: '', ramMiB: 1024, workingSetMiB: 64, dirtyMiBps: 30, burstMiBps: 1024, bandwidthMiBps: 100 },
  { name: 'bursty-512-128-60', description: '', ramMiB: 512, workingSetMiB: 128, dirtyMiBps: 60, burstMiBps: 1024, bandwidthMiBps: 100 },
  { name: 'bursty-512-256-30-60', description: '', ramMiB: 512, workingSetMiB: 256, dirtyMiBps: 30, burstMiBps: 1024, bandwidthMiBps: 60 },
];

test('convergesAlone: shrinking passes within the budget yes; near the link, or too slow, no', () => {
  const bw = 100 * MiB;
  assert.equal(convergesAlone(35 * MiB, bw, 128 * MiB, 300, 60), true);
  assert.equal(convergesAlone(95 * MiB, bw, 128 * MiB, 300, 60), false); // near the link
  assert.equal(convergesAlone(400 * MiB, bw, 512 * MiB, 300, 60), false);
  assert.equal(convergesAlone(80 * MiB, bw, 1024 * MiB, 300, 5), false); // ~48 s > 5 s
  assert.equal(convergesAlone(500 * MiB, bw, 20 * MiB, 300, 1), true); // already fits the downtime
  assert.equal(convergesAlone(0, 0, 20 * MiB, 300, 60), false);
});

test('a bursty guest that converges alone: throttled on the saturation guess, not with the measured rate', () => {
  for (const scn of BURSTY) {
    const stock = simulate(scn, { mode: 'stock' });
    const guessed = simulate(scn, { mode: 'controller', policy });
    const measured = simulate(scn, { mode: 'controller', policy, measuredDirtyMiBps: sampledDirtyMiBps(scn) });
    assert.ok(guessed.peakThrottle >= 80, `${scn.name}: the guess throttles (${guessed.peakThrottle})`);
    assert.equal(measured.peakThrottle, 0, `${scn.name}: not throttled`);
    assert.ok(measured.completed && !measured.postcopy, scn.name);
    // no slower than the guess (stock, throttling a little, may finish a second sooner, losing more work)
    assert.ok(measured.timeSec <= guessed.timeSec + 0.5, `${scn.name}: ${measured.timeSec} s vs ${guessed.timeSec} s`);
    assert.ok(measured.guestWorkLostSec <= Math.min(guessed.guestWorkLostSec, stock.guestWorkLostSec) + 0.05, scn.name);
    // auto-converge held from the first sample: QEMU's trigger cannot fire
    const first = measured.actions[0]?.action;
    assert.deepEqual(first?.type === 'set-throttle' ? first.params : null, { 'throttle-trigger-threshold': 100, 'cpu-throttle-initial': 1, 'max-cpu-throttle': 1 }, scn.name);
  }
});

test('heavy guest: the throttle is armed at the first sample and QEMU first throttles at the target', () => {
  const measuredRate = sampledDirtyMiBps(HEAVY_LAB);
  const r = simulate(HEAVY_LAB, { mode: 'controller', policy, measuredDirtyMiBps: measuredRate });
  const before = simulate(HEAVY_LAB, { mode: 'controller', policy });
  const arm = r.actions.find((a) => a.action.type === 'set-throttle' && a.action.params['cpu-throttle-initial'] !== undefined);
  assert.ok(arm && arm.action.type === 'set-throttle');
  assert.ok(arm.t <= 1, `armed at ${arm.t} s`);
  assert.equal(arm.action.params['throttle-trigger-threshold'], 10);
  const initial = arm.action.params['cpu-throttle-initial'] ?? 0;
  assert.ok(initial >= 80, `initial ${initial}`);
  // the first throttle QEMU applies is already the target (no climb from 20 %)
  const firstThrottle = r.samples.find((s) => s.throttlePercent > 0)?.throttlePercent ?? 0;
  assert.ok(firstThrottle >= 80, `first throttle ${firstThrottle}`);
  assert.ok(r.samples.find((s) => s.throttlePercent > 0)!.iteration <= 3, 'by the end of pass 2');
  assert.ok(r.completed);
  assert.ok(r.timeSec <= before.timeSec && r.guestWorkLostSec <= before.guestWorkLostSec, `${r.timeSec} s / ${r.guestWorkLostSec} lost vs ${before.timeSec} / ${before.guestWorkLostSec}`);
});

test('a bursty guest caught mid-burst (reads working set / 1 s): no worse than without the measurement', () => {
  for (const scn of BURSTY) {
    const high = Math.min(scn.workingSetMiB, scn.burstMiBps ?? scn.dirtyMiBps);
    const without = simulate(scn, { mode: 'controller', policy });
    const r = simulate(scn, { mode: 'controller', policy, measuredDirtyMiBps: high });
    assert.ok(r.completed, scn.name);
    assert.ok(r.guestWorkLostSec <= without.guestWorkLostSec + 0.2, `${scn.name}: ${r.guestWorkLostSec} vs ${without.guestWorkLostSec}`);
  }
});

test('a measurement far too low: passes stop shrinking, and the controller throttles after all', () => {
  for (const name of ['heavy-lab', 'medium', 'slow-link']) {
    const scn = SCENARIOS.find((s) => s.name === name)!;
    const r = simulate(scn, { mode: 'controller', policy, measuredDirtyMiBps: 10, timeLimitSec: 400 });
    assert.ok(r.completed && !r.postcopy, `${name} completed`);
    assert.ok(r.peakThrottle >= 80, `${name}: throttled (${r.peakThrottle})`);
  }
});

test('every grid scenario still completes (or ends as before) with its measured rate', () => {
  for (const scn of SCENARIOS) {
    const before = simulate(scn, { mode: 'controller', policy, timeLimitSec: 400 });
    const after = simulate(scn, { mode: 'controller', policy, timeLimitSec: 400, measuredDirtyMiBps: sampledDirtyMiBps(scn) });
    assert.equal(after.completed, before.completed, scn.name);
    assert.ok(after.peakThrottle <= policy.maxThrottle, scn.name);
    assert.ok(after.guestWorkLostSec <= before.guestWorkLostSec * 1.05 + 0.5, `${scn.name}: ${after.guestWorkLostSec} vs ${before.guestWorkLostSec}`);
  }
});

function play(make: () => ReturnType<typeof createController>, scn: Scenario): Action[] {
  const sim = createSimulation(scn, { autoConverge: true });
  const c = make();
  const out: Action[] = [];
  for (let s = sim.next(); s; s = sim.next()) for (const a of c.observe(s)) if (sim.apply(a)) out.push(a);
  return out;
}

test('useMeasuredDirtyRate before the first sample = the context input; during the first pass, planned within it; the first one counts', () => {
  const ctx = { guestRamBytes: HEAVY_LAB.ramMiB * MiB, postcopyEnabled: true, bandwidthMiBps: HEAVY_LAB.bandwidthMiBps };
  const given = play(() => createController(policy, { ...ctx, measuredDirtyMiBps: 400 }), HEAVY_LAB);
  const late = play(() => {
    const c = createController(policy, ctx);
    c.useMeasuredDirtyRate(400);
    return c;
  }, HEAVY_LAB);
  assert.deepEqual(late, given);

  // measured alongside the first pass: the throttle is armed before that pass ends
  const c = createController(policy, ctx);
  const sim = createSimulation(HEAVY_LAB, { autoConverge: true });
  c.observe(sim.next()!);
  c.useMeasuredDirtyRate(400);
  c.useMeasuredDirtyRate(5);
  assert.equal((c.snapshot().memory as { measuredDirtyRate?: number }).measuredDirtyRate, 400 * MiB);
  const s = sim.next()!;
  assert.equal(s.iteration, 1);
  const armed = c.observe(s).find((a) => a.type === 'set-throttle');
  assert.ok(armed && armed.type === 'set-throttle' && armed.params['cpu-throttle-initial'] === 99, JSON.stringify(armed));
});

test('the measurement survives a snapshot; without one the snapshot has no such field', () => {
  const ctx = { guestRamBytes: 1024 * MiB, postcopyEnabled: false, bandwidthMiBps: 100 };
  const c = createController(policy, { ...ctx, measuredDirtyMiBps: 35 });
  const again = resumeController(JSON.parse(JSON.stringify(c.snapshot())));
  assert.equal((again.snapshot().memory as { measuredDirtyRate?: number }).measuredDirtyRate, 35 * MiB);
  const plain = createController(policy, ctx).snapshot().memory as Record<string, unknown>;
  assert.equal('measuredDirtyRate' in plain, false);
  assert.equal('measuredArmed' in plain, false);
});

test('a measurement taken in a quiet moment gives way to the first saturated pass (a phase change): no stall window waited', () => {
  // measured at 0 MiB/s while the guest was still idle; it then dirties 128 MiB at 300 MiB/s over a 40 MiB/s link
  const scn = { name: 'phase-change', description: 'idle when measured, busy since', ramMiB: 1024, workingSetMiB: 128, dirtyMiBps: 300, bandwidthMiBps: 40, postcopyEnabled: false };
  const r = simulate(scn, { mode: 'controller', policy, measuredDirtyMiBps: 0, timeLimitSec: 150 });
  const right = simulate(scn, { mode: 'controller', policy, measuredDirtyMiBps: 300, timeLimitSec: 150 });
  assert.ok(r.completed);
  const raise = r.actions.find((a) => a.action.type === 'set-throttle' && (a.action.params['cpu-throttle-initial'] ?? 0) > 1);
  assert.ok(raise, 'throttled');
  assert.doesNotMatch(raise.action.reason, /passes stopped shrinking/, 'at the first saturated pass, not after a stall window');
  assert.ok(r.timeSec <= right.timeSec + 5, `${r.timeSec} s vs ${right.timeSec} s measured right`);
});

test('a light guest whose first pass ends with a high QEMU rate (mostly zero pages) is not throttled: the measurement stands at the first boundary', () => {
  // seen on the lab: measured at 8 MiB/s, QEMU's rate at the end of pass 1 read 51 MiB/s over a
  // 28 MiB/s payload; taking that as a phase change throttled the guest to 99 %
  const c = createController(policy, { guestRamBytes: 256 * MiB, postcopyEnabled: false, bandwidthMiBps: 100, measuredDirtyMiBps: 8 });
  const sample = (t: number, iteration: number, processedMiB: number, remainingMiB: number, dirtyMiBps: number) => ({
    t, jobType: 1, iteration,
    dataTotal: 256 * MiB, dataProcessed: processedMiB * MiB, dataRemaining: remainingMiB * MiB,
    memTotal: 256 * MiB, memProcessed: processedMiB * MiB, memRemaining: remainingMiB * MiB,
    zeroPages: 0, normalPages: (processedMiB * MiB) / 4096, pageSize: 4096,
    dirtyRate: dirtyMiBps * MiB, transferRate: 28 * MiB, throttlePercent: 0, postcopyRequests: 0,
  });
  const actions: Action[] = [];
  for (const s of [sample(1000, 1, 28, 48, 0), sample(2000, 1, 56, 20, 0), sample(3000, 2, 84, 16, 51), sample(3500, 2, 98, 2, 51)]) actions.push(...c.observe(s));
  const raised = actions.filter((a) => a.type === 'set-throttle' && (a.params['cpu-throttle-initial'] ?? 0) > 1);
  assert.deepEqual(raised, [], JSON.stringify(actions));
});

test('a guest dirtying near the link, measured at 0.6x its rate: one that converges alone is not throttled on a pass misread once; one the passes call for twice running is, and it is released at most once', () => {
  // seen on the lab (evacuation, "moderate2"): page sampling read 60 MiB/s, passes saturated at the
  // ~97 MiB/s link, and five boundaries in a row alternated "throttle 99 % armed" / "held", each hold
  // disarming the trigger before QEMU's second high sync could apply the throttle. Pass sizes misread
  // one way at a boundary are misread the other way at the next (the simulator reads a 90 MiB/s guest
  // on 100 MiB/s as 111 saturated, 60, 111, 59): a first call after a short pass waits for the next.
  const near: (Scenario & { armed: boolean })[] = [
    { name: 'near-90-100', description: 'even', ramMiB: 512, workingSetMiB: 128, dirtyMiBps: 90, bandwidthMiBps: 100, zeroScanMiBps: 4096, postcopyEnabled: false, armed: false },
    { name: 'near-98-100', description: 'busy 1.5 s / idle 0.5 s at 130', ramMiB: 512, workingSetMiB: 96, dirtyMiBps: 130, spells: { busySec: 1.5, quietSec: 0.5 }, bandwidthMiBps: 100, zeroScanMiBps: 4096, postcopyEnabled: false, armed: true },
    { name: 'near-92-97', description: 'busy 2 s / idle 0.6 s at 120', ramMiB: 512, workingSetMiB: 128, dirtyMiBps: 120, spells: { busySec: 2, quietSec: 0.6 }, bandwidthMiBps: 97, zeroScanMiBps: 4096, postcopyEnabled: false, armed: false },
  ];
  for (const { armed, ...scn } of near) {
    const average = scn.spells ? (scn.dirtyMiBps * scn.spells.busySec) / (scn.spells.busySec + scn.spells.quietSec) : scn.dirtyMiBps;
    const r = simulate(scn, { mode: 'controller', policy, measuredDirtyMiBps: 0.6 * Math.min(average, scn.workingSetMiB) });
    const alone = simulate(scn, { mode: 'none' });
    assert.ok(r.completed && !r.postcopy, `${scn.name}: completed`);
    // the trigger threshold as each action left it: armed (10) or held (100)
    const thresholds = r.actions.flatMap((a) => (a.action.type === 'set-throttle' && a.action.params['throttle-trigger-threshold'] !== undefined ? [a.action.params['throttle-trigger-threshold']] : []));
    const why = r.actions.map((a) => a.action.reason).join(' | ');
    const firstArm = thresholds.indexOf(10);
    if (!armed) {
      // converges alone (no slower than without auto-converge): held throughout; QEMU's own trigger fires at 1 % at most
      assert.equal(firstArm, -1, `${scn.name}: never armed: ${why}`);
      assert.ok(r.peakThrottle <= 1, `${scn.name}: peak ${r.peakThrottle}`);
      assert.ok(alone.completed && r.timeSec <= alone.timeSec + 0.5, `${scn.name}: ${r.timeSec} s vs ${alone.timeSec} s alone`);
      continue;
    }
    assert.ok(firstArm >= 0, `${scn.name}: the passes call for a throttle`);
    const holds = thresholds.slice(firstArm).filter((th) => th === 100).length;
    assert.ok(holds <= 1, `${scn.name}: held ${holds} times after the passes called for a throttle: ${why}`);
    assert.equal(thresholds[thresholds.length - 1], 10, `${scn.name}: armed at the end`);
    assert.equal(r.peakThrottle, policy.maxThrottle, `${scn.name}: QEMU applied it`);
    assert.ok(r.timeSec < alone.timeSec, `${scn.name}: ${r.timeSec} s vs ${alone.timeSec} s alone`);
  }
});

test('a burst that saturates one short pass is not throttled: the next pass converges alone and dismisses the call', () => {
  // a saturated pass in a burst would call for 99 %; the next pass shrinks at less than half the link rate
  const scn: Scenario = { name: 'burst-then-alone', description: '', ramMiB: 512, workingSetMiB: 128, dirtyMiBps: 85, burstMiBps: 500, bandwidthMiBps: 100, zeroScanMiBps: 4096, postcopyEnabled: false };
  const r = simulate(scn, { mode: 'controller', policy, measuredDirtyMiBps: 0.6 * sampledDirtyMiBps(scn) });
  assert.ok(r.completed);
  const armed = r.actions.filter((a) => a.action.type === 'set-throttle' && (a.action.params['cpu-throttle-initial'] ?? 0) > 1);
  assert.deepEqual(armed, []);
  assert.equal(r.peakThrottle, 0);
});

test('a first call after a short pass waits for the next: withheld while the measurement converges alone, armed when the next pass calls too, dismissed when it does not', () => {
  assert.equal(awaitsConfirmation(undefined, true, 1000), true);
  assert.equal(awaitsConfirmation(undefined, true, SHORT_PASS_MS), false, 'a long pass is believed');
  assert.equal(awaitsConfirmation(undefined, false, 1000), false, 'the measurement calls for it too');
  assert.equal(awaitsConfirmation('released', true, 1000), false, 'after a call that was armed, no more waiting');
  let call = nextPassCall(undefined, true, true, true);
  assert.equal(call, 'pending');
  assert.equal(nextPassCall(call, false, true), 'called', 'confirmed');
  call = nextPassCall(call, true, false);
  assert.equal(call, 'dismissed');
  assert.equal(awaitsConfirmation(call, true, 1000), true, 'a dismissed call is as none');
});

test('hysteresis: a call released once and made again sticks; only evidence alone at RELEASE_MARGIN x its rate releases it', () => {
  let call = nextPassCall(undefined, true, false);
  assert.equal(call, undefined, 'held, never called');
  call = nextPassCall(call, false, true);
  assert.equal(call, 'called');
  assert.equal(keepsArmed(call, false), false, 'a first call may be steered down as before');
  assert.equal(aloneMargin(call), 1);
  call = nextPassCall(call, false, false);
  assert.equal(call, 'released', 'no longer called for (no throttle needed) counts as a release');
  call = nextPassCall(call, false, true);
  assert.equal(call, 'sticky');
  assert.equal(nextPassCall(call, false, false), 'sticky', 'not called for at this pass: still armed');
  assert.equal(keepsArmed(call, false), true);
  assert.equal(aloneMargin(call), RELEASE_MARGIN);
  assert.equal(nextPassCall(call, true, false), 'released', 'converges alone by the margin');
  // the margin: 60 MiB/s over a 100 MiB/s link converges alone, twice that does not
  assert.equal(convergesAlone(60 * MiB, 100 * MiB, 68 * MiB, 300, 60), true);
  assert.equal(convergesAlone(60 * MiB * RELEASE_MARGIN, 100 * MiB, 68 * MiB, 300, 60), false);
});
