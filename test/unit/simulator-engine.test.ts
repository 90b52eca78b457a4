import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSimulation, HEAVY_LAB, labHeavyGuestShare, SCENARIOS, simulate } from '../../src/simulator/index.js';
import { createController } from '../../src/controller/controller.js';
import { resolvePolicy } from '../../src/controller/policy.js';
import { speedShare } from '../../src/controller/curve.js';

const MiB = 1024 * 1024;

test('engine: samples at the period, one final sample (completed), then null', () => {
  const sim = createSimulation(SCENARIOS[0]!, { autoConverge: true, samplePeriodMs: 500 });
  const ts: number[] = [];
  let last;
  for (let s = sim.next(); s; s = sim.next()) {
    ts.push(s.t);
    last = s;
  }
  assert.equal(ts[0], 0);
  assert.equal(ts[1], 500);
  assert.equal(last?.jobType, 3);
  assert.ok(last?.downtimeMs !== undefined);
  assert.equal(sim.next(), null);
  assert.equal(sim.finished, true);
  assert.equal(sim.apply({ type: 'set-downtime', ms: 500, reason: 'late' }), false);
  assert.ok(sim.result().completed);
});

test('engine: abort ends with a cancelled sample; post-copy refused unless enabled; time limit', () => {
  const sim = createSimulation(HEAVY_LAB, { autoConverge: true });
  sim.next();
  sim.next();
  assert.equal(sim.apply({ type: 'abort', reason: 'test' }), true);
  assert.equal(sim.next()?.jobType, 5);
  assert.equal(sim.next(), null);
  assert.ok(sim.result().aborted && !sim.result().completed);

  const nopc = createSimulation({ ...HEAVY_LAB, postcopyEnabled: false }, { autoConverge: true });
  nopc.next();
  assert.equal(nopc.apply({ type: 'postcopy', reason: 'test' }), false);

  const slow = createSimulation(HEAVY_LAB, { autoConverge: false, timeLimitSec: 10 });
  let n = 0;
  while (slow.next()) n++;
  assert.equal(n, 11);
  assert.ok(!slow.result().completed && slow.result().timeSec === 10);
});

test('engine: downtime and bandwidth actions take effect', () => {
  // a hot 96 MiB set never fits 300 ms at 100 MiB/s, but fits 1.5 s at once
  const hot = SCENARIOS.find((s) => s.name === 'hot-small')!;
  const sim = createSimulation(hot, { autoConverge: false, timeLimitSec: 60 });
  sim.next();
  sim.apply({ type: 'set-downtime', ms: 1500, reason: 'test' });
  while (sim.next());
  assert.ok(sim.result().completed && sim.result().downtimeMs! > 900);
  const capped = simulate(SCENARIOS[0]!, { mode: 'none' });
  const s2 = createSimulation(SCENARIOS[0]!, { autoConverge: false });
  s2.next();
  s2.apply({ type: 'set-bandwidth', mibPerSec: 50, reason: 'test' });
  while (s2.next());
  assert.ok(s2.result().timeSec > capped.timeSec * 1.3);
});

test('controller.rejected(): a refused post-copy is not retried and the controller falls back to abort', () => {
  // the controller is told post-copy is enabled, QEMU refuses it
  const scn = { ...HEAVY_LAB, dirtyMiBps: 51200, postcopyEnabled: false };
  const sim = createSimulation(scn, { autoConverge: true });
  const c = createController(resolvePolicy(undefined), { guestRamBytes: 1024 * MiB, postcopyEnabled: true });
  const kinds: string[] = [];
  for (let s = sim.next(); s; s = sim.next()) {
    for (const a of c.observe(s)) {
      kinds.push(a.type);
      if (!sim.apply(a)) c.rejected(a);
    }
  }
  assert.equal(kinds.filter((k) => k === 'postcopy').length, 1);
  assert.ok(kinds.includes('abort'));
  assert.ok(sim.result().aborted);
  assert.equal(c.state().phase, 'aborted');
});

test('controller.rejected(): a refused parameter change is not "restored" by finish()', () => {
  const c = createController(resolvePolicy('protect-workload'), { guestRamBytes: 1024 * MiB, postcopyEnabled: true });
  const sim = createSimulation(HEAVY_LAB, { autoConverge: true });
  const first = c.observe(sim.next()!);
  assert.equal(first[0]?.type, 'set-throttle'); // the ceiling guard
  c.rejected(first[0]!);
  assert.deepEqual(c.finish(), []);
});

test('robust to the sampling period', () => {
  const stock = simulate(HEAVY_LAB, { mode: 'stock' });
  for (const samplePeriodMs of [250, 500, 2000, 3000]) {
    const r = simulate(HEAVY_LAB, { mode: 'controller', samplePeriodMs });
    assert.ok(r.completed && r.timeSec <= 0.35 * stock.timeSec, `${samplePeriodMs} ms: ${r.timeSec}`);
    assert.ok(r.guestWorkLostSec <= 0.5 * stock.guestWorkLostSec);
  }
});

test('a guest that does not follow the measured curve still converges (estimates self-correct)', () => {
  // the lab saw 16-19 % guest speed at 90 % throttle where the curve says 11 %
  const faster = (p: number): number => Math.min(1, speedShare(p) * (p >= 60 && p < 99 ? 1.6 : 1));
  const stock = simulate(HEAVY_LAB, { mode: 'stock', shareAt: faster });
  const ctl = simulate(HEAVY_LAB, { mode: 'controller', shareAt: faster });
  assert.ok(stock.completed && ctl.completed);
  assert.ok(ctl.timeSec <= 0.35 * stock.timeSec, `${ctl.timeSec} vs ${stock.timeSec}`);
  assert.ok(ctl.guestWorkLostSec <= 0.5 * stock.guestWorkLostSec);
});

test("with the lab guest's own speed at 90 %, stock reproduces the lab ladder 20..90, 99 in ~94 s", () => {
  const stock = simulate(HEAVY_LAB, { mode: 'stock', shareAt: labHeavyGuestShare });
  const steps = [...new Set(stock.timeline.map((p) => p.throttle).filter((p) => p > 0))];
  assert.deepEqual(steps, [20, 30, 40, 50, 60, 70, 80, 90, 99]);
  assert.ok(stock.timeSec > 80 && stock.timeSec < 110, `${stock.timeSec}`);
  const i90 = simulate(HEAVY_LAB, { mode: 'stock', knobs: { initial: 90 }, shareAt: labHeavyGuestShare });
  assert.ok(i90.timeSec > 17.9 && i90.timeSec < 33.3, `${i90.timeSec}`);
  const ctl = simulate(HEAVY_LAB, { mode: 'controller', shareAt: labHeavyGuestShare });
  assert.ok(ctl.completed && ctl.timeSec <= 0.35 * stock.timeSec, `${ctl.timeSec}`);
  assert.ok(ctl.guestWorkLostSec <= 0.5 * stock.guestWorkLostSec);
});
