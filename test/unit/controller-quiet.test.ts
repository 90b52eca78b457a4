// Waiting for a quiet spell (src/controller/quiet.ts): a guest seen quiet before the migration is not
// throttled while a quiet spell may still come within the wait; one never seen quiet is throttled.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolvePolicy } from '../../src/controller/policy.js';
import { QUIET_WAIT_SHARE, quietRateFields } from '../../src/controller/quiet.js';
import { simulate, type Scenario } from '../../src/simulator/index.js';

const MiB = 1024 * 1024;
const policy = resolvePolicy(undefined);
// like the lab's bursty Linux guest: 9 s busy, 6 s quiet, over a slow link
const SPELLS: Scenario = { name: 'spells', description: 'busy 9 s / quiet 6 s', ramMiB: 512, workingSetMiB: 128, dirtyMiBps: 300, bandwidthMiBps: 40, spells: { busySec: 9, quietSec: 6 }, postcopyEnabled: false };
const STEADY: Scenario = { ...SPELLS, name: 'steady', description: 'always busy', spells: undefined };
const limit = { timeLimitSec: 120 };

test('quietRateFields: the quietest rate after a busier one; quiet before busy (a boot) is none', () => {
  assert.deepEqual(quietRateFields(undefined), {});
  assert.deepEqual(quietRateFields([]), {});
  assert.deepEqual(quietRateFields([120, 3, Number.NaN, -1, 80]), { quietDirtyRate: 3 * MiB });
  assert.deepEqual(quietRateFields([0, 2, 120, 118, 125]), {}, 'booted quiet, then busy');
  assert.deepEqual(quietRateFields([120, 70, 130]), {}, 'not quiet enough to count');
  assert.deepEqual(quietRateFields([0, 120, 50]), { quietDirtyRate: 50 * MiB });
});

test('a guest seen quiet waits for a quiet spell: no throttle, no work lost, no slower', () => {
  const blind = simulate(SPELLS, { mode: 'controller', policy, measuredDirtyMiBps: 120, ...limit });
  const seen = simulate(SPELLS, { mode: 'controller', policy, measuredDirtyMiBps: 120, recentDirtyMiBps: [120, 0, 110], ...limit });
  assert.ok(blind.peakThrottle >= 80, `without the history it throttles (${blind.peakThrottle})`);
  assert.ok(seen.completed && !seen.postcopy);
  assert.ok(seen.peakThrottle <= 1, `peak ${seen.peakThrottle}`);
  assert.ok(seen.guestWorkLostSec < blind.guestWorkLostSec, `${seen.guestWorkLostSec} vs ${blind.guestWorkLostSec}`);
  assert.ok(seen.timeSec <= blind.timeSec + 1, `${seen.timeSec} s vs ${blind.timeSec} s`);
});

test('a guest never seen quiet is throttled at once; a wrong guess costs time, then it is throttled', () => {
  const busy = simulate(STEADY, { mode: 'controller', policy, measuredDirtyMiBps: 120, recentDirtyMiBps: [118, 125], ...limit });
  const plain = simulate(STEADY, { mode: 'controller', policy, measuredDirtyMiBps: 120, ...limit });
  assert.deepEqual(busy.actions, plain.actions);
  const wrong = simulate(STEADY, { mode: 'controller', policy, measuredDirtyMiBps: 120, recentDirtyMiBps: [120, 0, 120], ...limit });
  assert.ok(wrong.completed);
  const raise = wrong.actions.find((a) => a.action.type === 'set-throttle' && (a.action.params['max-cpu-throttle'] ?? 0) > 1);
  assert.ok(raise, 'throttled once the wait is over');
  assert.ok(raise.t >= 120 * QUIET_WAIT_SHARE - 5 && raise.t <= 120 * QUIET_WAIT_SHARE + 5, `raised at ${raise.t} s`);
  // waiting lost no work (pinned at 1 % should QEMU's trigger fire): about what throttling at once lost
  assert.ok(wrong.guestWorkLostSec <= plain.guestWorkLostSec + 1, `${wrong.guestWorkLostSec} vs ${plain.guestWorkLostSec}`);
});
