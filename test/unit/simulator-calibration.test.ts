// The simulator against runs measured on the lab's real QEMU 7.2 (docs/bench/converge.md and
// test/e2e/controller.test.ts). If these drift, recalibrate src/controller/curve.ts from new lab runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolvePolicy } from '../../src/controller/policy.js';
import { HEAVY_LAB, simulate, type Scenario } from '../../src/simulator/index.js';

const MODERATE: Scenario = { name: 'bench-moderate', description: '1 GiB, 256 MiB at 150 MiB/s, 100 MiB/s link', ramMiB: 1024, workingSetMiB: 256, dirtyMiBps: 150, bandwidthMiBps: 100 };
const near = (sim: number, real: number, tol: number): boolean => Math.abs(sim - real) <= tol * real;

test('stock auto-converge: time and peak throttle as measured on the lab', () => {
  // measured: moderate 28.2-28.6 s, peak 70 %; heavy 87.3-87.7 s, peak 90 %, guest work 57 %
  const m = simulate(MODERATE, { mode: 'stock' });
  assert.ok(m.completed && near(m.timeSec, 28.4, 0.15), `moderate ${m.timeSec} s`);
  assert.equal(m.peakThrottle, 70);
  const h = simulate(HEAVY_LAB, { mode: 'stock' });
  assert.ok(h.completed && near(h.timeSec, 87.5, 0.1), `heavy ${h.timeSec} s`);
  assert.equal(h.peakThrottle, 90);
  assert.ok(near(h.guestWorkShare, 0.57, 0.1), `heavy guest work ${h.guestWorkShare}`);
});

test('a 100 MiB/s guest held at 50 % over a 50 MiB/s link stalls into post-copy, as on the lab', () => {
  const scn: Scenario = { name: 'e2e-ceiling', description: '', ramMiB: 512, workingSetMiB: 256, dirtyMiBps: 100, bandwidthMiBps: 50 };
  const r = simulate(scn, { mode: 'controller', policy: resolvePolicy({ base: 'minimal-downtime', maxThrottle: 50 }) });
  assert.ok(r.completed && r.postcopy, JSON.stringify({ completed: r.completed, postcopy: r.postcopy, t: r.timeSec }));
  assert.ok(r.peakThrottle <= 50);
});
