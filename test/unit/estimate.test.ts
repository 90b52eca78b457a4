// VM.estimateMigration's pure parts: the forecast from measured rates, the working set from two
// page-sampling periods, and who may call it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { builtinPolicy } from '../../src/controller/policy.js';
import { predictMigration, workingSetFrom } from '../../src/simulator/predict.js';
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
  // 4 MiB/s: a few sampled pages; a long reading of 0 is noise, not a 1 MiB working set
  assert.deepEqual(workingSetFrom({ shortMiBps: 4, longMiBps: 0, longSec: 3, ramMiB: 512 }), { workingSetMiB: 512, bounded: false });
});

test('only a manager may ask for an estimate (it takes a measurement on the guest)', () => {
  assert.ok('VM.estimateMigration' in CATALOG);
  assert.equal(roleAllows('manager', 'VM.estimateMigration'), true);
  assert.equal(roleAllows('reader', 'VM.estimateMigration'), false);
  assert.equal(roleAllows('peer', 'VM.estimateMigration'), false);
});
