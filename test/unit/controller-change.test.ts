// Changing the policy of a running migration (VM.migrateChangeParams goes through changePolicy).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Action } from '../../src/controller/types.js';
import { createController } from '../../src/controller/controller.js';
import { PolicyError, patchPolicy, resolvePolicy } from '../../src/controller/policy.js';
import { createSimulation, HEAVY_LAB } from '../../src/simulator/index.js';

const MiB = 1024 * 1024;
type SetThrottle = Extract<Action, { type: 'set-throttle' }>;
const isThrottle = (a: Action): a is SetThrottle => a.type === 'set-throttle';

/** Heavy lab guest under the default policy; `change` is called once at `atSec`. */
function run(atSec: number, change: (c: ReturnType<typeof createController>) => Action[]) {
  const sim = createSimulation(HEAVY_LAB, { autoConverge: true, timeLimitSec: 200 });
  const c = createController(resolvePolicy(undefined), { guestRamBytes: HEAVY_LAB.ramMiB * MiB, postcopyEnabled: true, bandwidthMiBps: HEAVY_LAB.bandwidthMiBps });
  const before: Action[] = [];
  const after: Action[] = [];
  let changed: Action[] | null = null;
  for (let s = sim.next(); s; s = sim.next()) {
    const acts = c.observe(s);
    for (const a of acts) {
      (changed === null ? before : after).push(a);
      if (!sim.apply(a)) c.rejected(a);
    }
    if (changed === null && s.t >= atSec * 1000) {
      changed = change(c);
      for (const a of changed) if (!sim.apply(a)) c.rejected(a);
    }
  }
  return { result: sim.result(), before, changed: changed ?? [], after, controller: c };
}

test('patchPolicy: merges, renames, validates, and a downtime start lifts the maximum', () => {
  const base = resolvePolicy(undefined);
  const p = patchPolicy(base, { maxThrottle: 50 });
  assert.equal(p.maxThrottle, 50);
  assert.equal(p.name, 'minimal-downtime+custom');
  assert.equal(patchPolicy(base, { downtimeMs: 5000 }).maxDowntimeMs, 5000);
  assert.equal(patchPolicy(base, resolvePolicy('protect-workload')).name, 'protect-workload');
  assert.throws(() => patchPolicy(base, { maxThrottle: 150 }), (e: unknown) => e instanceof PolicyError && /maxThrottle/.test(e.message));
  assert.throws(() => patchPolicy(base, { bogus: 1 } as never), PolicyError);
});

test('lowering the ceiling mid-flight: capped at once, and never exceeded afterwards', () => {
  const r = run(12, (c) => c.changePolicy({ maxThrottle: 50 }));
  const guard = r.changed.filter(isThrottle);
  assert.equal(guard.length, 1);
  assert.equal(guard[0]?.params['max-cpu-throttle'], 50);
  // the running throttle is above 50: the trigger is armed so QEMU lowers it at its next sync
  assert.ok((guard[0]?.params['throttle-trigger-threshold'] ?? 100) <= 10, JSON.stringify(guard[0]?.params));
  for (const a of r.after.filter(isThrottle)) {
    for (const k of ['max-cpu-throttle', 'cpu-throttle-initial'] as const) {
      const v = a.params[k];
      if (v !== undefined) assert.ok(v <= 50, `${k}=${v}: ${a.reason}`);
    }
  }
  const late = r.result.timeline.filter((p) => p.t > 20);
  assert.ok(late.every((p) => p.throttle <= 50), `throttle after the change: ${late.map((p) => p.throttle).join(',')}`);
  assert.equal(r.controller.policy().maxThrottle, 50);
});

test('raising the downtime limit and the bandwidth mid-flight: applied now, restored by finish()', () => {
  const r = run(8, (c) => c.changePolicy({ downtimeMs: 800, bandwidthMiBps: 120 }));
  assert.deepEqual(
    r.changed.map((a) => a.type),
    ['set-downtime', 'set-bandwidth'],
  );
  assert.equal((r.changed[0] as Extract<Action, { type: 'set-downtime' }>).ms, 800);
  assert.equal(r.controller.state().downtimeMs >= 800, true);
  const restore = r.controller.finish();
  assert.ok(restore.some((a) => a.type === 'set-downtime' && a.ms === 300));
  assert.ok(restore.some((a) => a.type === 'set-bandwidth'));
});

test('switching to stock mid-flight restores QEMU parameters and stops steering', () => {
  const r = run(12, (c) => c.changePolicy(resolvePolicy('stock')));
  assert.ok(r.before.some(isThrottle), 'the controller had steered');
  assert.ok(r.changed.length > 0 && r.changed.every((a) => /restoring/.test(a.reason)), JSON.stringify(r.changed));
  const restored = r.changed.find(isThrottle)?.params ?? {};
  for (const [k, v] of Object.entries({ 'cpu-throttle-initial': 20, 'cpu-throttle-increment': 10, 'max-cpu-throttle': 99, 'throttle-trigger-threshold': 50 })) {
    if (k in restored) assert.equal(restored[k as keyof typeof restored], v, k);
  }
  assert.deepEqual(r.after, [], 'no action after the switch');
  assert.equal(r.controller.state().phase, 'stock');
  assert.deepEqual(r.controller.finish(), [], 'nothing left to restore');
});

test('after the end a change only updates the policy', () => {
  const c = createController(resolvePolicy(undefined), { guestRamBytes: 1024 * MiB, postcopyEnabled: true });
  c.observe({ t: 0, jobType: 3, iteration: 3, dataTotal: 0, dataProcessed: 0, dataRemaining: 0, memTotal: 0, memProcessed: 0, memRemaining: 0, zeroPages: 0, normalPages: 0, pageSize: 4096, dirtyRate: 0, transferRate: 0, throttlePercent: 0, postcopyRequests: 0 });
  assert.deepEqual(c.changePolicy({ maxThrottle: 40 }), []);
  assert.equal(c.policy().maxThrottle, 40);
});
