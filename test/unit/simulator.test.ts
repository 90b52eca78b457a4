import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareGrid, evaluateTrigger, formatComparison, HEAVY_LAB, SCENARIOS, simulate } from '../../src/simulator/index.js';
import type { ThrottleKnobs } from '../../src/simulator/index.js';

const MiB = 1024 * 1024;
const knobs: ThrottleKnobs = { initial: 20, increment: 10, max: 99, tailslow: false, threshold: 50 };

test("QEMU's trigger: every second high period, initial then increment, capped by max", () => {
  let st = { highCount: 0, throttle: 0 };
  st = evaluateTrigger(st, knobs, 100, 100); // high #1
  assert.equal(st.throttle, 0);
  st = evaluateTrigger(st, knobs, 10, 100); // low: not counted, not reset
  assert.equal(st.highCount, 1);
  st = evaluateTrigger(st, knobs, 100, 100); // high #2 -> initial
  assert.deepEqual(st, { highCount: 0, throttle: 20 });
  st = evaluateTrigger(evaluateTrigger(st, knobs, 100, 100), knobs, 100, 100);
  assert.equal(st.throttle, 30);
  st = evaluateTrigger(evaluateTrigger({ highCount: 0, throttle: 95 }, knobs, 100, 100), knobs, 100, 100);
  assert.equal(st.throttle, 99);
  const capped = evaluateTrigger({ highCount: 1, throttle: 40 }, { ...knobs, max: 45 }, 100, 100);
  assert.equal(capped.throttle, 45);
  // tailslow: the step shrinks towards the ideal
  const slow = evaluateTrigger({ highCount: 1, throttle: 50 }, { ...knobs, tailslow: true, increment: 30 }, 60, 100);
  assert.ok(slow.throttle > 50 && slow.throttle < 80, `tailslow ${slow.throttle}`);
  // dirty exactly at the threshold is not high
  assert.equal(evaluateTrigger({ highCount: 1, throttle: 0 }, knobs, 50, 100).throttle, 0);
});

test('calibrated to the lab: stock ~94 s / ~22 iterations, no auto-converge unfinished at 60 s, initial 90 ~25 s', () => {
  const stock = simulate(HEAVY_LAB, { mode: 'stock' });
  assert.ok(stock.completed);
  assert.ok(stock.timeSec >= 63 && stock.timeSec <= 117, `stock ${stock.timeSec}`);
  assert.ok(stock.iterations >= 16 && stock.iterations <= 28, `iterations ${stock.iterations}`);
  assert.ok(stock.sentMiB / 1024 > 6 && stock.sentMiB / 1024 < 11, `sent ${stock.sentMiB}`);
  // stepped 20, 30, ... one step about every 10 s
  const steps = [...new Set(stock.timeline.map((p) => p.throttle).filter((p) => p > 0))];
  assert.deepEqual(steps.slice(0, 3), [20, 30, 40]);

  const none = simulate(HEAVY_LAB, { mode: 'none', timeLimitSec: 62 });
  assert.ok(!none.completed);
  assert.ok(none.iterations >= 9 && none.iterations <= 16, `iterations ${none.iterations}`);
  assert.equal(none.peakThrottle, 0);

  const i90 = simulate(HEAVY_LAB, { mode: 'stock', knobs: { initial: 90 } });
  assert.ok(i90.completed);
  assert.ok(i90.timeSec >= 17.9 && i90.timeSec <= 33.3, `initial 90: ${i90.timeSec}`);
});

test('result accounting: throttle-seconds, guest work, timeline and samples', () => {
  const r = simulate(HEAVY_LAB, { mode: 'stock' });
  assert.ok(r.throttleSeconds > 0 && r.throttleSeconds < r.timeSec);
  assert.ok(r.guestWorkShare > 0 && r.guestWorkShare < 1);
  assert.ok(Math.abs(r.guestWorkLostSec - r.timeSec * (1 - r.guestWorkShare)) < 1e-6);
  assert.ok(r.downtimeMs !== null && r.downtimeMs <= 330);
  assert.equal(r.samples.length, r.timeline.length);
  const last = r.samples[r.samples.length - 1]!;
  assert.equal(last.jobType, 3);
  assert.equal(last.downtimeMs, Math.round(r.downtimeMs));
  // first pass: zero pages skipped with the transfer rate near 0
  const big = simulate(SCENARIOS.find((s) => s.name === 'heavy-4g')!, { mode: 'stock' });
  const early = big.samples.find((s) => s.iteration === 1 && s.zeroPages > 0 && s.t > 0);
  assert.ok(early && early.transferRate < 0.05 * 120 * MiB, JSON.stringify(early)); // headers only
  // remaining is a sawtooth
  const rem = r.samples.map((s) => s.dataRemaining);
  assert.ok(rem.some((v, i) => i > 0 && v > rem[i - 1]!));
  // an unthrottled guest loses nothing but the downtime
  const idle = simulate(SCENARIOS[0]!, { mode: 'none' });
  assert.ok(idle.completed && idle.guestWorkLostSec < 0.2);
});

test('post-copy needs the migration to have been started with it; abort leaves it unfinished', () => {
  const sc = { ...HEAVY_LAB, name: 'x', dirtyMiBps: 51200 };
  const c = simulate(sc, { mode: 'controller' });
  assert.ok(c.completed && c.postcopy);
  const n = simulate({ ...sc, postcopyEnabled: false }, { mode: 'controller' });
  assert.ok(!n.completed && n.aborted && !n.postcopy);
});

test('grid: runs in seconds; the controller completes all stock completes, and more', () => {
  const t0 = process.hrtime.bigint();
  const rows = compareGrid();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  assert.ok(ms < 5000, `grid took ${ms} ms`);
  let more = 0;
  for (const r of rows) {
    if (r.stock.completed) {
      assert.ok(r.controller.completed, `${r.scenario.name}: stock completed, controller did not`);
      assert.ok(r.controller.timeSec <= r.stock.timeSec * 1.15, `${r.scenario.name}: ${r.controller.timeSec} vs ${r.stock.timeSec}`);
    }
    if (r.controller.completed && !r.stock.completed) more++;
    if (r.none.completed) assert.ok(r.stock.completed);
  }
  assert.ok(more >= 2, `controller finished ${more} scenarios stock could not`);
  const table = formatComparison(rows);
  assert.equal(table.split('\n').length, rows.length + 2);
  assert.match(table, /heavy-lab/);
});
