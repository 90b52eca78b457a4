// The convergence benchmark's pure parts: the order of the fixed-throttle sweep, what it skips, the
// oracle it picks, the Linux guest's work count, and the report's targets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cutAbove, nextThrottle, oracle, skippedRuns, SWEEP, type SweepRun } from '../../src/bench/oracle.js';
import { linuxLoss, unharmedSeconds } from '../../src/bench/guest-work.js';
import { report, runConvergesAlone, timeError, type RunResult } from '../../src/bench/report.js';

const run = (throttle: number, completed: boolean, seconds: number, workLostSec: number, extra: Partial<SweepRun> = {}): SweepRun => ({ throttle, completed, seconds, workLostSec, ...extra });

test('the sweep runs from the highest throttle down', () => {
  assert.equal(nextThrottle(SWEEP, []), 99);
  assert.equal(nextThrottle(SWEEP, [run(99, true, 20, 10)]), 95);
  assert.equal(nextThrottle([60, 0, 99], [run(99, true, 20, 10)]), 60);
});

test('a throttle that does not complete ends the sweep, and the lower ones are skipped', () => {
  const done = [run(99, true, 20, 10), run(95, true, 30, 8), run(90, false, 150, 40)];
  assert.equal(nextThrottle(SWEEP, done), null);
  assert.deepEqual(skippedRuns(SWEEP, done).map((r) => r.throttle), [0, 20, 40, 60, 80]);
  assert.ok(skippedRuns(SWEEP, done).every((r) => r.skipped && !r.completed));
});

test('a run cut for losing more than the best goes on down the sweep', () => {
  const done = [run(99, true, 20, 10), run(95, false, 12, 10.5, { dominated: true })];
  assert.equal(nextThrottle(SWEEP, done), 90);
  // the best completed run's loss plus a margin for the noise of a count read mid-run
  assert.equal(cutAbove(done), 11);
  assert.equal(cutAbove([run(99, false, 150, 50)]), null);
});

test('the oracle loses the least work among completed runs; ties go to the faster', () => {
  const runs = [run(99, true, 20, 10), run(90, true, 30, 6), run(80, true, 25, 6), run(60, false, 150, 1), run(40, false, 10, 0, { dominated: true })];
  assert.deepEqual(oracle(runs), runs[2]);
  assert.equal(oracle([run(99, false, 150, 3)]), null);
});

const win = (seq: number, targetMB: number, rateMB: number, durationSec: number, seenAt: number) =>
  ({ seq, uptimeSec: 0, durationSec, step: 0, targetMB, rateMB, workMB: rateMB * durationSec, seenAt });

test('Linux guest work: heavy windows count at their step rate, idle windows count their length', () => {
  assert.equal(unharmedSeconds(win(1, 100, 100, 4, 0), 1), 4);
  assert.equal(unharmedSeconds(win(1, 100, 50, 4, 0), 1), 2);
  assert.equal(unharmedSeconds(win(1, 0, 0, 2, 0), 1), 2);
  // an unharmed stress-ng reaching 0.9 of its target loses nothing
  assert.ok(Math.abs(unharmedSeconds(win(1, 100, 90, 4, 0), 0.9) - 4) < 1e-9);
  // 12 s of host time: 4 s unharmed, 4 s at half rate, 2 s idle, and 2 s the guest never saw
  const w = [win(2, 100, 100, 4, 4000), win(3, 100, 50, 4, 8000), win(4, 0, 0, 2, 12_000)];
  const r = linuxLoss(w, 0, 12_000, 1);
  assert.equal(r.spanSec, 12);
  assert.equal(r.lostSec, 12 - 4 - 2 - 2);
  assert.equal(r.share, 0.75);
});

const result = (scenario: string, mode: RunResult['mode'], seconds: number, workLostSec: number, extra: Partial<RunResult> = {}): RunResult => ({
  scenario, mode, completed: true, state: 'completed', seconds, iterations: 5, peakThrottle: 0, throttleSeconds: 0, guestWork: 0.5,
  workLostSec, baselineMiBps: 100, afterMiBps: 100, downtimeMs: 20, sentMiB: 100, actions: 0, timeline: [], ...extra,
});

test('the report judges the targets from the numbers it shows', () => {
  const forecast = { policy: 'minimal-downtime', completed: true, postcopy: false, timeSec: 22, iterations: 8, peakThrottle: 90, guestWorkLostSec: 9, downtimeMs: 100 };
  const runs = [
    result('heavy', 'stock', 100, 40, { throttleSeconds: 50 }),
    result('heavy', 'controller', 20, 9, { peakThrottle: 90, estimate: { predicted: forecast, stock: { ...forecast, timeSec: 150 }, dirtyRateMiBps: 400, convergesWithoutThrottle: false } }),
    result('heavy', 'fixed', 25, 8, { throttle: 95 }),
    result('heavy', 'fixed', 150, 30, { throttle: 60, completed: false, state: 'failed' }),
  ];
  const md = report(runs, [{ name: 'heavy', about: 'test', budgetSec: 150 }]);
  assert.match(md, /heavy: time 0\.20x stock \(target <= 0\.22x: met\); work lost 0\.23x stock \(target <= 0\.25x: met\)/);
  assert.match(md, /controller work lost 9 s vs oracle T=95 8 s \(target <= 10\.6 s: met\)/);
  assert.match(md, /1 of 2 completed forecasts within 20 %/);
  assert.equal(timeError(forecast, runs[1]), 0.1);
});

test('converging without a throttle is judged from the run first, the forecast only without evidence', () => {
  const none = (extra: Partial<RunResult>) => result('s', 'fixed', 10, 0, { throttle: 0, ...extra });
  assert.equal(runConvergesAlone(none({ completed: true }), false), true);
  assert.equal(runConvergesAlone(none({ completed: false, state: 'failed' }), true), false);
  // skipped: a higher fixed throttle already failed within the budget, whatever the forecast said
  assert.equal(runConvergesAlone(none({ completed: false, skipped: true, state: 'skipped' }), true), false);
  // cut for losing more work than a completed run: no evidence either way
  assert.equal(runConvergesAlone(none({ completed: false, dominated: true }), true), true);
  assert.equal(runConvergesAlone(undefined, true), true);
  assert.equal(runConvergesAlone(undefined, undefined), false);
});
