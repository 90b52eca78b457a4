// VM.estimateMigration's pure parts: the forecast from measured rates, the working set from two
// page-sampling periods, and who may call it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { builtinPolicy } from '../../src/controller/policy.js';
import { forecastDirtyRate, freshDirtyRate, predictMigration, QEMU_RSS_OVERHEAD_MIB, workingSetFrom, zeroMiBFrom } from '../../src/simulator/predict.js';
import { roleAllows } from '../../src/api/roles.js';
import { CATALOG } from '../../src/api/catalog.js';

test('a light guest converges without a throttle, under the policy and stock alike', () => {
  const f = predictMigration({ ramMiB: 512, dirtyMiBps: 5, workingSetMiB: 64, bandwidthMiBps: 100 }, builtinPolicy('minimal-downtime'));
  assert.equal(f.convergesWithoutThrottle, true);
  assert.equal(f.prediction.completed, true);
  assert.equal(f.prediction.peakThrottle, 0);
  assert.equal(f.stock.peakThrottle, 0);
  assert.ok(f.prediction.timeSec > 0 && f.prediction.timeSec < 30, `${f.prediction.timeSec} s`);
});

test('the lab heavy scenario needs a throttle; the controller is predicted faster than stock', () => {
  const f = predictMigration({ ramMiB: 1024, dirtyMiBps: 400, workingSetMiB: 512, bandwidthMiBps: 100 }, builtinPolicy('minimal-downtime'));
  assert.equal(f.convergesWithoutThrottle, false);
  assert.ok(f.prediction.peakThrottle > 0 && f.stock.peakThrottle > 0);
  assert.ok(f.prediction.completed && f.stock.completed);
  assert.ok(f.prediction.timeSec < f.stock.timeSec, `${f.prediction.timeSec} vs ${f.stock.timeSec}`);
  assert.equal(f.prediction.policy, 'minimal-downtime');
  assert.equal(f.stock.policy, 'stock');
});

test('policy stock: the forecast for the policy is stock\'s', () => {
  const f = predictMigration({ ramMiB: 1024, dirtyMiBps: 150, workingSetMiB: 256, bandwidthMiBps: 100 }, builtinPolicy('stock'));
  assert.deepEqual(f.prediction, f.stock);
});

test('working set: saturated long period gives its size; otherwise the whole RAM is assumed', () => {
  // 64 MiB rewritten: 1 s reads 60, 3 s reads 21 (= 64 / 3)
  assert.deepEqual(workingSetFrom({ shortMiBps: 60, longMiBps: 21, longSec: 3, ramMiB: 512 }), { workingSetMiB: 63, bounded: true });
  // a 512 MiB working set at 60 MiB/s: both periods read 60
  assert.deepEqual(workingSetFrom({ shortMiBps: 60, longMiBps: 58, longSec: 3, ramMiB: 1024 }), { workingSetMiB: 1024, bounded: false });
  assert.deepEqual(workingSetFrom({ shortMiBps: 0, longMiBps: 0, longSec: 3, ramMiB: 256 }), { workingSetMiB: 256, bounded: false });
  // the long period saw less than the short one: writes that left the bytes as they were at its
  // start (stress-ng's patterns on a 128 MiB working set); the short one's pages are a floor
  assert.deepEqual(workingSetFrom({ shortMiBps: 122, longMiBps: 3, longSec: 3, ramMiB: 512 }), { workingSetMiB: 122, bounded: true });
  assert.deepEqual(workingSetFrom({ shortMiBps: 900, longMiBps: 3, longSec: 3, ramMiB: 512 }), { workingSetMiB: 512, bounded: true });
  // 4 MiB/s: a few sampled pages; a long reading of 0 is noise, not a 1 MiB working set
  assert.deepEqual(workingSetFrom({ shortMiBps: 4, longMiBps: 0, longSec: 3, ramMiB: 512 }), { workingSetMiB: 512, bounded: false });
});

test('zero pages: the RAM beyond the resident set less QEMU\'s own memory, within 0..RAM', () => {
  assert.equal(zeroMiBFrom(512, 200, 40), 352);
  assert.equal(zeroMiBFrom(512, 30, 40), 512, 'a resident set below the overhead: nothing touched');
  assert.equal(zeroMiBFrom(512, 900, 40), 0, 'a resident set above RAM: no zero page is certain');
  assert.equal(zeroMiBFrom(1024, 100 + QEMU_RSS_OVERHEAD_MIB), 924, 'the default overhead is subtracted');
});

test('a mostly untouched guest is predicted faster than one whose RAM is all resident', () => {
  // the lab's light guest: 64 MiB of 512 rewritten at 20 MiB/s; page sampling cannot bound the
  // working set, so the whole RAM is assumed and, without a resident set, no page is zero
  const base = { ramMiB: 512, dirtyMiBps: 22, workingSetMiB: 512, bandwidthMiBps: 100 };
  const policy = builtinPolicy('minimal-downtime');
  const unknown = predictMigration(base, policy);
  const allResident = predictMigration({ ...base, residentMiB: 512 + QEMU_RSS_OVERHEAD_MIB + 100 }, policy);
  const untouched = predictMigration({ ...base, residentMiB: 64 + QEMU_RSS_OVERHEAD_MIB }, policy);
  assert.deepEqual(allResident, unknown);
  assert.ok(untouched.prediction.completed && untouched.convergesWithoutThrottle);
  // 448 MiB sent as zero pages instead of at 100 MiB/s: about 4 s less
  assert.ok(untouched.prediction.timeSec < unknown.prediction.timeSec - 3, `${untouched.prediction.timeSec} vs ${unknown.prediction.timeSec}`);
  assert.ok(untouched.stock.timeSec < unknown.stock.timeSec - 3, `${untouched.stock.timeSec} vs ${unknown.stock.timeSec}`);
});

test('only a manager may ask for an estimate (it takes a measurement on the guest)', () => {
  assert.ok('VM.estimateMigration' in CATALOG);
  assert.equal(roleAllows('manager', 'VM.estimateMigration'), true);
  assert.equal(roleAllows('reader', 'VM.estimateMigration'), false);
  assert.equal(roleAllows('peer', 'VM.estimateMigration'), false);
});

test('forecast rate: the fresh sample, raised to the upper quartile of the recent ones', () => {
  // no history: the fresh sample as it is
  assert.equal(forecastDirtyRate(42), 42);
  assert.equal(forecastDirtyRate(42, []), 42);
  // stress-ng rewriting its patterns: successive 1 s samples of a steady 400 MB/s writer on the lab
  const steadyWriter = [2, 142, 0, 138, 122, 0, 24, 0, 130, 114, 2, 138];
  assert.equal(forecastDirtyRate(0, steadyWriter), 130);
  // a fresh sample above the history stands
  assert.equal(forecastDirtyRate(300, steadyWriter), 300);
  // one spike among quiet samples does not make the guest busy
  assert.equal(forecastDirtyRate(3, [2, 3, 1, 2, 250, 2, 3, 2]), 3);
  // too few samples (a guest just booted) are not read; garbage is ignored
  assert.equal(forecastDirtyRate(0, [80, 80, 80]), 0);
  assert.equal(forecastDirtyRate(0, [80, 80, 80, 80]), 80);
  assert.equal(forecastDirtyRate(5, [Number.NaN, -1, 90, 90, 90]), 5);
});

test('the forecast hands the recent samples to the simulated controller, as the agent does', () => {
  const input = { ramMiB: 1024, dirtyMiBps: 150, workingSetMiB: 256, bandwidthMiBps: 100 };
  const policy = builtinPolicy('minimal-downtime');
  const plain = predictMigration(input, policy);
  // seen busy then quiet: the controller waits for a quiet spell before it throttles
  const quietBefore = predictMigration({ ...input, recentDirtyMiBps: [150, 150, 2, 150] }, policy);
  assert.ok(plain.prediction.peakThrottle > 0);
  assert.notDeepEqual(quietBefore.prediction, plain.prediction);
  assert.ok(quietBefore.prediction.timeSec > plain.prediction.timeSec, `${quietBefore.prediction.timeSec} vs ${plain.prediction.timeSec}`);
  // stock knows nothing of the history
  assert.deepEqual(quietBefore.stock, plain.stock);
});

test('sampled zero pages replace the resident set\'s bound', () => {
  const base = { ramMiB: 512, dirtyMiBps: 22, workingSetMiB: 64, bandwidthMiBps: 100, residentMiB: 512 + QEMU_RSS_OVERHEAD_MIB };
  const policy = builtinPolicy('minimal-downtime');
  // all resident (transparent huge pages), yet 60 % of the pages hold zeros
  const bound = predictMigration(base, policy);
  const sampled = predictMigration({ ...base, zeroMiB: 307 }, policy);
  assert.ok(sampled.prediction.timeSec < bound.prediction.timeSec, `${sampled.prediction.timeSec} vs ${bound.prediction.timeSec}`);
  // out of range: clamped to the RAM
  assert.deepEqual(predictMigration({ ...base, zeroMiB: 9999 }, policy), predictMigration({ ...base, zeroMiB: 512 }, policy));
});

test('fresh rate: drop-outs left out, the rest averaged; counting noise gives its median', () => {
  // stress-ng's steady writer: two samples fell where it rewrote its own bytes
  assert.equal(freshDirtyRate([0, 0, 120]), 120);
  assert.equal(freshDirtyRate([122, 0, 130]), 126);
  assert.equal(freshDirtyRate([186, 170, 190]), 182);
  // a 4 MiB/s guest: 1 to 6 sampled pages, no drop-out
  assert.equal(freshDirtyRate([4, 2, 12]), 4);
  assert.equal(freshDirtyRate([2, 4]), 3);
  assert.equal(freshDirtyRate([]), 0);
  assert.equal(freshDirtyRate([Number.NaN, 30]), 30);
});
