// Stall detection must not be fooled by the sawtooth inside a pass, by the first pass, or by a
// near-zero transfer rate while zero pages are skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MigrationSample } from '../../src/controller/sample.js';
import { isStalled } from '../../src/controller/stall.js';
import { passStartBytes, payloadRate } from '../../src/controller/estimate.js';
import { createController } from '../../src/controller/controller.js';
import { resolvePolicy } from '../../src/controller/policy.js';

const MiB = 1024 * 1024;

function sample(p: Partial<MigrationSample> & { t: number }): MigrationSample {
  return {
    jobType: 2,
    iteration: 1,
    dataTotal: 1024 * MiB,
    dataProcessed: 0,
    dataRemaining: 1024 * MiB,
    memTotal: 1024 * MiB,
    memProcessed: 0,
    memRemaining: 1024 * MiB,
    zeroPages: 0,
    normalPages: 0,
    pageSize: 4096,
    dirtyRate: 0,
    transferRate: 0,
    throttlePercent: 0,
    postcopyRequests: 0,
    ...p,
  };
}

/** Samples every second of passes of the given sizes at `rate` bytes/s (sawtooth inside each). */
function passes(sizes: number[], rate: number, throttle = 0): MigrationSample[] {
  const out: MigrationSample[] = [];
  let processed = 0;
  let t = 0;
  let idx = 0;
  let left = sizes[0] as number;
  let dirtyRate = 0;
  while (idx < sizes.length) {
    out.push(sample({ t: t * 1000, iteration: idx + 2, dataProcessed: processed, dataRemaining: left, dirtyRate, transferRate: rate, throttlePercent: throttle }));
    let budget = rate;
    while (budget > 0 && idx < sizes.length) {
      const take = Math.min(budget, left);
      left -= take;
      budget -= take;
      processed += take;
      if (left <= 0) {
        idx++;
        const dur = (sizes[idx - 1] as number) / rate;
        left = sizes[idx] ?? 0;
        dirtyRate = left / dur;
      }
    }
    t++;
  }
  return out;
}

test('isStalled: plateau yes, geometric shrink no, too little history no', () => {
  const w = 512 * MiB;
  assert.equal(isStalled([w, w, w, w], 3, 0.1), true);
  assert.equal(isStalled([w, 0.92 * w, 0.95 * w, w], 3, 0.1), true);
  assert.equal(isStalled([w, 0.85 * w, 0.95 * w, w], 3, 0.1), false);
  assert.equal(isStalled([w, w / 2, w / 4, w / 8], 3, 0.1), false);
  assert.equal(isStalled([w, w, w], 3, 0.1), false);
});

test('sawtooth inside passes is not a stall; pass sizes are reconstructed at boundaries', () => {
  // passes shrinking 0.6x, each sampled mid-way several times (remaining falls, then jumps up)
  const sizes = [500, 300, 180, 108].map((m) => m * MiB);
  const ss = passes(sizes, 50 * MiB);
  const rebuilt: number[] = [];
  for (let i = 1; i < ss.length; i++) {
    const a = ss[i - 1] as MigrationSample;
    const b = ss[i] as MigrationSample;
    if (b.iteration > a.iteration) rebuilt.push(passStartBytes(a, b));
  }
  assert.deepEqual(rebuilt.map((b) => Math.round(b / MiB)), [300, 180, 108]);
  assert.equal(isStalled(rebuilt, 2, 0.1), false);
  // raw remaining within passes goes up and down: a naive "remaining didn't fall" check would trip
  const rem = ss.map((s) => s.dataRemaining);
  assert.ok(rem.some((r, i) => i > 0 && r > (rem[i - 1] as number)));
});

test('first pass with near-zero transfer rate while zero pages are skipped is not a stall', () => {
  const c = createController(resolvePolicy(undefined), { guestRamBytes: 4096 * MiB, postcopyEnabled: true, bandwidthMiBps: 100 });
  const ss: MigrationSample[] = [];
  for (let t = 0; t <= 20; t++) {
    // 20 s of skipping zero pages: processed barely moves, zero pages climb
    ss.push(sample({ t: t * 1000, iteration: 1, dataTotal: 4096 * MiB, dataProcessed: t * 1000, dataRemaining: (4096 - t * 100) * MiB, zeroPages: t * 25_600, transferRate: 0 }));
  }
  for (const s of ss) assert.deepEqual(c.observe(s), []);
  assert.equal(c.state().stalled, false);
  assert.equal(c.state().phase, 'first-pass');
  assert.equal(payloadRate(ss[0] as MigrationSample, ss[1] as MigrationSample), null);
});

test('the controller flags a stall only at the throttle ceiling with no progress at boundaries', () => {
  const policy = resolvePolicy({ stallWindowIterations: 3 });
  const c = createController(policy, { guestRamBytes: 1024 * MiB, postcopyEnabled: false, bandwidthMiBps: 100 });
  const w = 512 * MiB;
  // passes that keep the same size: saturated working set
  const below = passes([w, w, w, w], 100 * MiB, 60);
  for (const s of below) c.observe(s);
  assert.equal(c.state().stalled, false, 'below the ceiling the throttle can still help');
  const c2 = createController(policy, { guestRamBytes: 1024 * MiB, postcopyEnabled: false, bandwidthMiBps: 100 });
  for (const s of passes([w, w, w, w, w, w], 100 * MiB, 99)) c2.observe(s);
  assert.equal(c2.state().stalled, true);
  assert.equal(c2.state().saturated, true);
});
