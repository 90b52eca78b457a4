import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Action, ThrottleParams } from '../../src/controller/types.js';
import { createController } from '../../src/controller/controller.js';
import { QEMU_DEFAULTS } from '../../src/controller/knobs.js';
import { POLICY_NAMES, resolvePolicy } from '../../src/controller/policy.js';
import { planThrottle, throttleNeeded, targetRatio, HOLD_THRESHOLD } from '../../src/controller/throttle.js';
import { completionTimeoutMs, downtimeSchedule, escalate, type EscalateInput } from '../../src/controller/escalate.js';
import { speedShare, throttleForShare } from '../../src/controller/curve.js';
import { SCENARIOS, HEAVY_LAB, simulate, type Scenario } from '../../src/simulator/index.js';

const MiB = 1024 * 1024;
const byName = (n: string): Scenario => {
  const s = SCENARIOS.find((x) => x.name === n);
  assert.ok(s, n);
  return s;
};
const throttleActions = (as: { action: Action }[]): Extract<Action, { type: 'set-throttle' }>[] =>
  as.map((a) => a.action).filter((a): a is Extract<Action, { type: 'set-throttle' }> => a.type === 'set-throttle');

test('speed curve: measured points, monotone, inverse', () => {
  assert.equal(speedShare(0), 1);
  assert.equal(speedShare(20), 0.8);
  assert.equal(speedShare(50), 0.5);
  assert.ok(Math.abs(speedShare(90) - 0.11) < 1e-12);
  assert.ok(speedShare(99) < 0.01);
  for (let p = 1; p <= 100; p++) assert.ok(speedShare(p) <= speedShare(p - 1));
  assert.equal(throttleForShare(0.22), 80);
  assert.ok(speedShare(throttleForShare(0.3)) <= 0.3);
});

test('throttleNeeded: none for a guest that converges, enough for a heavy one, flags infeasible', () => {
  const B = 100 * MiB;
  assert.equal(throttleNeeded(20 * MiB, B, 256 * MiB, 300, 5, 99).throttle, 0);
  // a guest slower than the link: the smallest throttle that converges within the passes
  const below = throttleNeeded(90 * MiB, B, 512 * MiB, 300, 5, 99);
  assert.ok(!below.outruns && below.throttle >= 20 && below.throttle <= 80, `below ${below.throttle}`);
  assert.ok(90 * speedShare(below.throttle) <= below.ratio * 100 + 1e-9);
  // a guest outrunning the link: the ceiling loses the least work
  const heavy = throttleNeeded(400 * MiB, B, 512 * MiB, 300, 5, 99);
  assert.ok(heavy.outruns);
  assert.equal(heavy.throttle, 99);
  assert.equal(throttleNeeded(100 * MiB, B, 512 * MiB, 300, 5, 99).throttle, 99);
  const capped = throttleNeeded(400 * MiB, B, 512 * MiB, 300, 5, 50);
  assert.equal(capped.throttle, 50);
  assert.ok(capped.ratioAtCeiling >= 1);
  // a pass that already fits in the downtime only needs the next one to fit too
  assert.equal(targetRatio(20 * MiB, B, 300, 5), 1.5);
  assert.equal(throttleNeeded(100 * MiB, B, 20 * MiB, 300, 5, 99).throttle, 0);
  // a pass that fits already: only the next one must fit, not the ceiling
  const small = throttleNeeded(400 * MiB, B, 20 * MiB, 300, 5, 99);
  assert.ok(!small.outruns && small.throttle > 30 && small.throttle < 99, `small pass ${small.throttle}`);
});

test('planThrottle: initial before throttling, increment = gap after, hold caps overshoot', () => {
  const q = { initial: 20, increment: 10, max: 99, threshold: 50 };
  assert.deepEqual(planThrottle(87, 0, q, 99, true), {
    'cpu-throttle-initial': 87,
    'max-cpu-throttle': 87,
    'throttle-trigger-threshold': 10,
  });
  const q2 = { initial: 87, increment: 10, max: 87, threshold: 10 };
  assert.deepEqual(planThrottle(95, 87, q2, 99, true), { 'cpu-throttle-increment': 8, 'max-cpu-throttle': 95 });
  assert.deepEqual(planThrottle(95, 40, q2, 60, true), { 'cpu-throttle-increment': 20, 'max-cpu-throttle': 60 });
  assert.deepEqual(planThrottle(50, 60, { ...q2, max: 99 }, 99, true), { 'max-cpu-throttle': 60 });
  // converges alone but QEMU's blind rule would fire: keep it from firing, and at 1 % should it fire anyway
  assert.deepEqual(planThrottle(0, 0, q, 99, true), { 'throttle-trigger-threshold': HOLD_THRESHOLD, 'cpu-throttle-initial': 1, 'max-cpu-throttle': 1 });
  assert.deepEqual(planThrottle(0, 0, q, 99, false), {});
});

test('stock policy: the controller never acts', () => {
  const r = simulate(HEAVY_LAB, { mode: 'stock' });
  const c = createController(resolvePolicy('stock'), { guestRamBytes: 1024 * MiB, postcopyEnabled: true });
  for (const s of r.samples) assert.deepEqual(c.observe(s), []);
  assert.deepEqual(c.finish(), []);
  assert.equal(c.state().phase, 'stock');
});

test('heavy lab guest: <= 0.35x stock time and <= 0.5x the guest work stock loses', () => {
  const stock = simulate(HEAVY_LAB, { mode: 'stock' });
  const ctl = simulate(HEAVY_LAB, { mode: 'controller' });
  assert.ok(stock.completed && ctl.completed);
  assert.ok(ctl.timeSec <= 0.35 * stock.timeSec, `controller ${ctl.timeSec} s vs stock ${stock.timeSec} s`);
  assert.ok(ctl.guestWorkLostSec <= 0.5 * stock.guestWorkLostSec, `lost ${ctl.guestWorkLostSec} vs ${stock.guestWorkLostSec}`);
  assert.ok(ctl.downtimeMs !== null && ctl.downtimeMs <= 300 + 30);
  // every action carries a reason
  for (const a of ctl.actions) assert.ok(a.action.reason.length > 10);
});

test('light guests get no throttle', () => {
  for (const n of ['idle', 'light']) {
    const r = simulate(byName(n), { mode: 'controller' });
    assert.ok(r.completed, n);
    assert.deepEqual(r.actions, [], `${n}: ${JSON.stringify(r.actions)}`);
    assert.equal(r.peakThrottle, 0);
  }
  // converges unthrottled (pass ratio ~0.6) where stock would throttle: no throttle either
  const m = simulate(byName('moderate'), { mode: 'controller' });
  assert.ok(m.completed);
  assert.equal(m.peakThrottle, 0);
  // held: the trigger kept off, and pinned at 1 % should it fire anyway; never a throttle planned
  for (const a of throttleActions(m.actions)) {
    assert.ok((a.params['cpu-throttle-initial'] ?? 1) <= 1 && (a.params['max-cpu-throttle'] ?? 1) <= 1, JSON.stringify(a.params));
    assert.equal(a.params['cpu-throttle-increment'], undefined);
  }
  assert.ok(simulate(byName('moderate'), { mode: 'stock' }).peakThrottle > 0);
});

test('never exceeds the policy ceiling, in actions or in the simulated guest', () => {
  for (const name of POLICY_NAMES.filter((n) => n !== 'stock')) {
    for (const ceiling of [resolvePolicy(name).maxThrottle, 30]) {
      const policy = resolvePolicy({ base: name, maxThrottle: ceiling });
      for (const scn of SCENARIOS) {
        const r = simulate(scn, { mode: 'controller', policy });
        assert.ok(r.peakThrottle <= ceiling, `${name}/${ceiling}/${scn.name}: peak ${r.peakThrottle}`);
        for (const a of throttleActions(r.actions)) {
          for (const k of ['cpu-throttle-initial', 'max-cpu-throttle'] as const) {
            const v = a.params[k];
            if (v !== undefined) assert.ok(v <= ceiling, `${name}/${scn.name}: ${k}=${v}`);
          }
        }
      }
    }
  }
});

test('finish() restores every parameter the controller changed', () => {
  const original = { throttle: { initial: 15, increment: 5, max: 95, threshold: 40 }, downtimeMs: 250, bandwidthMiBps: 90 };
  for (const scn of SCENARIOS) {
    for (const policy of [resolvePolicy(undefined), resolvePolicy({ base: 'protect-workload', downtimeMs: 200, bandwidthMiBps: 95 })]) {
      const sim = simulate(scn, { mode: 'controller', policy });
      const c = createController(policy, { guestRamBytes: scn.ramMiB * MiB, postcopyEnabled: scn.postcopyEnabled ?? true, original });
      const changed = new Set<string>();
      for (const s of sim.samples) {
        for (const a of c.observe(s)) {
          if (a.type === 'set-throttle') for (const k of Object.keys(a.params)) changed.add(k);
          if (a.type === 'set-downtime') changed.add('downtime');
          if (a.type === 'set-bandwidth') changed.add('bandwidth');
        }
      }
      const fin = c.finish();
      const restored: ThrottleParams = {};
      const got = new Set<string>();
      for (const a of fin) {
        if (a.type === 'set-throttle') {
          Object.assign(restored, a.params);
          for (const k of Object.keys(a.params)) got.add(k);
        }
        if (a.type === 'set-downtime') { got.add('downtime'); assert.equal(a.ms, 250); }
        if (a.type === 'set-bandwidth') { got.add('bandwidth'); assert.equal(a.mibPerSec, 90); }
        assert.ok(a.reason.length > 0);
      }
      assert.deepEqual([...got].sort(), [...changed].sort(), scn.name);
      if (restored['cpu-throttle-initial'] !== undefined) assert.equal(restored['cpu-throttle-initial'], 15);
      if (restored['cpu-throttle-increment'] !== undefined) assert.equal(restored['cpu-throttle-increment'], 5);
      if (restored['max-cpu-throttle'] !== undefined) assert.equal(restored['max-cpu-throttle'], 95);
      if (restored['throttle-trigger-threshold'] !== undefined) assert.equal(restored['throttle-trigger-threshold'], 40);
      assert.deepEqual(c.finish(), [], 'a second finish has nothing left to restore');
    }
  }
  // defaults are QEMU's
  const sim = simulate(HEAVY_LAB, { mode: 'controller' });
  const back = sim.finishActions.find((a) => a.type === 'set-throttle');
  assert.ok(back && back.type === 'set-throttle');
  assert.equal(back.params['cpu-throttle-initial'], QEMU_DEFAULTS.throttle.initial);
  assert.equal(back.params['throttle-trigger-threshold'], QEMU_DEFAULTS.throttle.threshold);
});

test('escalate(): downtime steps, then post-copy when allowed, abort at the timeout, never abort in post-copy', () => {
  const base: EscalateInput = {
    elapsedMs: 30_000,
    timeoutMs: 150_000,
    postcopyActive: false,
    postcopyPossible: true,
    preferPostcopy: false,
    stalled: true,
    throttleExhausted: true,
    downtimeMs: 300,
    schedule: downtimeSchedule({ downtimeMs: 300, maxDowntimeMs: 2000, downtimeSteps: 4 }),
    neededDowntimeMs: 600,
  };
  assert.deepEqual(base.schedule, [725, 1150, 1575, 2000]);
  assert.equal(escalate({ ...base, stalled: false }), null);
  assert.equal(escalate({ ...base, throttleExhausted: false }), null);
  const d = escalate(base);
  assert.ok(d && d.kind === 'downtime' && d.ms === 725);
  const d2 = escalate({ ...base, downtimeMs: 725, neededDowntimeMs: 1200 });
  assert.ok(d2 && d2.kind === 'downtime' && d2.ms === 1575);
  // no step can fit: post-copy rather than a useless step
  assert.equal(escalate({ ...base, neededDowntimeMs: 5000 })?.kind, 'postcopy');
  // ... but without post-copy, the largest step is still worth trying
  const d3 = escalate({ ...base, neededDowntimeMs: 5000, postcopyPossible: false });
  assert.ok(d3 && d3.kind === 'downtime' && d3.ms === 2000);
  assert.equal(escalate({ ...base, downtimeMs: 2000, neededDowntimeMs: 5000 })?.kind, 'postcopy');
  assert.equal(escalate({ ...base, downtimeMs: 2000, postcopyPossible: false }), null);
  assert.equal(escalate({ ...base, preferPostcopy: true })?.kind, 'postcopy');
  assert.equal(escalate({ ...base, elapsedMs: 150_000 })?.kind, 'abort');
  assert.equal(escalate({ ...base, elapsedMs: 150_000, postcopyActive: true }), null);
  assert.equal(completionTimeoutMs({ completionTimeoutSecPerGiB: 150, completionTimeoutMinSec: 120 }, 1024 * MiB), 150_000);
  assert.equal(completionTimeoutMs({ completionTimeoutSecPerGiB: 150, completionTimeoutMinSec: 120 }, 256 * MiB), 120_000);
});

test('escalation in simulation: downtime step, post-copy, abort at timeout', () => {
  const hot = simulate(byName('hot-small'), { mode: 'controller' });
  assert.ok(hot.completed && !hot.postcopy);
  const kinds = hot.actions.map((a) => a.action.type);
  assert.ok(kinds.includes('set-downtime'), 'a downtime step finishes a small hot set');
  assert.ok(hot.downtimeMs !== null && hot.downtimeMs > 300 && hot.downtimeMs <= 2000);

  const run = simulate(byName('runaway'), { mode: 'controller' });
  assert.ok(run.completed && run.postcopy);
  const pc = run.actions.findIndex((a) => a.action.type === 'postcopy');
  const ceil = run.actions.findIndex(
    (a) => a.action.type === 'set-throttle' && (a.action.params['max-cpu-throttle'] === 99 || a.action.params['cpu-throttle-initial'] === 99),
  );
  assert.ok(ceil >= 0 && pc > ceil, 'post-copy only after the throttle reached the ceiling');
  assert.equal(run.rejected.length, 0);

  const no = simulate(byName('runaway-nopostcopy'), { mode: 'controller' });
  assert.ok(no.aborted && !no.completed);
  assert.ok(!no.actions.some((a) => a.action.type === 'postcopy'), 'no post-copy when the migration was started without it');
  const abort = no.actions.find((a) => a.action.type === 'abort');
  assert.ok(abort);
  assert.ok(Math.abs(abort.t - 150) <= 1, `aborted at ${abort.t}`); // 150 s/GiB x 1 GiB
  assert.ok(no.actions.some((a) => a.action.type === 'set-downtime'), 'downtime steps were tried first');

  // protect-workload prefers post-copy and keeps the throttle at 50 %
  const pw = simulate(HEAVY_LAB, { mode: 'controller', policy: resolvePolicy('protect-workload') });
  assert.ok(pw.completed && pw.postcopy && pw.peakThrottle <= 50);
  assert.ok(!pw.actions.some((a) => a.action.type === 'set-downtime'));
});

test('state() exposes estimates and phase; decisions are deterministic', () => {
  const r = simulate(HEAVY_LAB, { mode: 'controller' });
  const mk = () => createController(resolvePolicy(undefined), { guestRamBytes: 1024 * MiB, postcopyEnabled: true, bandwidthMiBps: 100 });
  const a = mk();
  const b = mk();
  let sawThrottling = false;
  for (const s of r.samples) {
    assert.deepEqual(a.observe(s), b.observe(s));
    const st = a.state();
    if (st.phase === 'throttling') sawThrottling = true;
    if (st.iteration >= 3) {
      assert.ok(st.transferRate > 90 * MiB && st.transferRate < 110 * MiB, `B=${st.transferRate / MiB}`);
      assert.ok(st.dirtyRate >= 300 * MiB, `dirty=${st.dirtyRate / MiB}`);
    }
  }
  assert.ok(sawThrottling);
  assert.equal(a.state().phase, 'completed');
  assert.deepEqual(a.observe(r.samples[0]!), [], 'nothing after completion');
});
