// measureDirtyRate against a fake domain: it starts page sampling, waits the period, returns only a
// result newer than the one before, and fails clearly on a bad period or a result that never comes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DirtyRateError, isNewMeasurement, measureDirtyRate, parseDirtyRate } from '../../src/libvirt/dirty-rate.js';
import { DirtyRateMode, type DirtyRateStats, type Domain } from '../../src/libvirt/types.js';

/** A domain whose dirty-rate stats follow a script, one entry per read (the last one repeats). */
function fakeDomain(script: DirtyRateStats[]): { domain: Domain; starts: Array<[number, number | undefined]>; slept: number[] } {
  const starts: Array<[number, number | undefined]> = [];
  const slept: number[] = [];
  let i = 0;
  const domain = {
    name: 'g1',
    startDirtyRateCalc(seconds: number, flags?: number) {
      starts.push([seconds, flags]);
      return Promise.resolve();
    },
    getDirtyRateStats() {
      const s = script[Math.min(i, script.length - 1)]!;
      i++;
      return Promise.resolve(s);
    },
  } as unknown as Domain;
  return { domain, starts, slept };
}

const measured = (start: number, mib: number, period = 2): DirtyRateStats => ({
  'dirtyrate.calc_status': 2,
  'dirtyrate.calc_start_time': start,
  'dirtyrate.calc_period': period,
  'dirtyrate.megabytes_per_second': mib,
});

test('parseDirtyRate: nothing before the first calculation, a result once measured', () => {
  assert.deepEqual(parseDirtyRate({}), { status: 0, result: null });
  assert.deepEqual(parseDirtyRate({ 'dirtyrate.calc_status': 1, 'dirtyrate.calc_start_time': 5 }), { status: 1, result: null });
  const r = parseDirtyRate({ ...measured(10, 97, 3), 'dirtyrate.vcpu.1.megabytes_per_second': 4, 'dirtyrate.vcpu.0.megabytes_per_second': 6 });
  assert.deepEqual(r.result, { mibPerSec: 97, periodSec: 3, startTime: 10, vcpuMibPerSec: [6, 4] });
});

test('isNewMeasurement: the previous result is not the new one', () => {
  const old = parseDirtyRate(measured(10, 50));
  assert.equal(isNewMeasurement(old, old), false);
  assert.equal(isNewMeasurement(old, parseDirtyRate(measured(12, 50))), true);
  assert.equal(isNewMeasurement(parseDirtyRate({}), parseDirtyRate(measured(1, 0))), true);
  assert.equal(isNewMeasurement(parseDirtyRate({}), parseDirtyRate({ 'dirtyrate.calc_status': 1 })), false);
});

test('measureDirtyRate starts page sampling, waits the period and skips the stale result', async () => {
  const f = fakeDomain([measured(10, 5), { 'dirtyrate.calc_status': 1, 'dirtyrate.calc_start_time': 20 }, measured(10, 5), measured(20, 99)]);
  const sleeps: number[] = [];
  const r = await measureDirtyRate(f.domain, 2, { sleep: async (ms) => void sleeps.push(ms), pollMs: 100 });
  assert.deepEqual(f.starts, [[2, DirtyRateMode.PAGE_SAMPLING]]);
  assert.equal(sleeps[0], 2000);
  assert.equal(r.mibPerSec, 99);
  assert.equal(r.startTime, 20);
});

test('measureDirtyRate refuses a period QEMU would refuse, before touching the domain', async () => {
  const f = fakeDomain([{}]);
  for (const bad of [0, 61, 1.5, Number.NaN]) {
    await assert.rejects(measureDirtyRate(f.domain, bad), (e: unknown) => e instanceof DirtyRateError && e.kind === 'BAD_PERIOD' && /\[1, 60\]/.test(e.message));
  }
  assert.equal(f.starts.length, 0);
});

test('measureDirtyRate gives up after the grace time with a clear error', async () => {
  const f = fakeDomain([{}, { 'dirtyrate.calc_status': 1, 'dirtyrate.calc_start_time': 3 }]);
  await assert.rejects(
    measureDirtyRate(f.domain, 1, { sleep: async () => undefined, pollMs: 100, graceMs: 500 }),
    (e: unknown) => e instanceof DirtyRateError && e.kind === 'TIMEOUT' && /g1/.test(e.message),
  );
});

test('measureDirtyRate passes libvirt errors through', async () => {
  const f = fakeDomain([{}]);
  f.domain.startDirtyRateCalc = () => Promise.reject(new Error('Requested operation is not valid: domain is not running'));
  await assert.rejects(measureDirtyRate(f.domain, 1, { sleep: async () => undefined }), /not running/);
});

test('measureDirtyRate takes the result of a calculation someone else is running', async () => {
  // another process started one: QEMU refuses ours, and its result arrives a little later
  const measuring = { 'dirtyrate.calc_status': 1, 'dirtyrate.calc_start_time': 30 };
  const f = fakeDomain([measured(10, 5), measuring, measuring, measuring, measured(30, 77, 3)]);
  f.domain.startDirtyRateCalc = () => Promise.reject(new Error('QEMU monitor command failed: GenericError: the dirty rate is already being measured.'));
  const sleeps: number[] = [];
  const r = await measureDirtyRate(f.domain, 1, { sleep: async (ms) => void sleeps.push(ms), pollMs: 100, graceMs: 500 });
  assert.equal(r.mibPerSec, 77);
  assert.equal(r.startTime, 30);
  assert.deepEqual(sleeps, [100, 100], 'polled, without waiting a period of its own first');
});

test('measureDirtyRate waits for a foreign calculation no longer than its period and the grace time', async () => {
  const f = fakeDomain([measured(10, 5), { 'dirtyrate.calc_status': 1, 'dirtyrate.calc_start_time': 30, 'dirtyrate.calc_period': 3 }]);
  f.domain.startDirtyRateCalc = () => Promise.reject(new Error('the dirty rate is already being measured'));
  let slept = 0;
  await assert.rejects(
    measureDirtyRate(f.domain, 2, { sleep: async (ms) => void (slept += ms), pollMs: 100, graceMs: 500 }),
    (e: unknown) => e instanceof DirtyRateError && e.kind === 'TIMEOUT',
  );
  assert.equal(slept, 3500, 'the foreign 3 s period and 500 ms of grace');
});
