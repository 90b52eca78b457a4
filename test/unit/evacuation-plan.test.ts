import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { builtinPolicy } from '../../src/controller/policy.js';
import { chooseDestination, planEvacuation, predictRemainingSec, startable, type DestinationView } from '../../src/evacuation/plan.js';

const policy = builtinPolicy('minimal-downtime');
const light = (name: string, ramMiB = 512, rate = 5) => ({ vmId: name, vmName: name, ramMiB, measured: { dirtyRateMiBps: rate, workingSetMiB: 32 } });
const heavy = (name: string, ramMiB = 1024, rate = 400) => ({ vmId: name, vmName: name, ramMiB, measured: { dirtyRateMiBps: rate, workingSetMiB: 512 } });

describe('planEvacuation', () => {
  it('light ones first, shortest first, shared; heavy ones after, alone with the whole link', () => {
    const p = planEvacuation({ vms: [heavy('h1'), light('big', 2048), light('small', 256)], bandwidthMiBps: 100, maxParallel: 2, policy });
    assert.deepEqual(p.vms.map((v) => v.vmName), ['small', 'big', 'h1']);
    assert.equal(p.parallel, 2);
    assert.equal(p.shareMiBps, 50);
    assert.deepEqual(p.vms.map((v) => v.exclusive), [false, false, true]);
    assert.deepEqual(p.vms.map((v) => v.bandwidthMiBps), [50, 50, 100]);
    assert.match(p.vms[0]!.orderReason, /^light/);
    assert.match(p.vms[2]!.orderReason, /^heavy/);
    assert.ok(p.vms.every((v) => v.estimate !== null && v.estimate.timeSec > 0));
    assert.deepEqual(p.vms.map((v) => v.order), [1, 2, 3]);
  });

  it('the resident set reaches the forecast: an untouched guest is predicted shorter', () => {
    const plan = (residentMiB?: number) =>
      planEvacuation({ vms: [{ vmId: 'g', vmName: 'g', ramMiB: 1024, measured: { dirtyRateMiBps: 5, workingSetMiB: 1024, ...(residentMiB !== undefined ? { residentMiB } : {}) } }], bandwidthMiBps: 100, maxParallel: 1, policy });
    const all = plan().vms[0]!.estimate!.timeSec;
    const little = plan(128).vms[0]!.estimate!.timeSec;
    assert.ok(little < all - 5, `${little} s vs ${all} s`);
  });

  it('a single light VM beside heavy ones gets the whole link', () => {
    const p = planEvacuation({ vms: [heavy('h1'), light('l1')], bandwidthMiBps: 100, maxParallel: 4, policy });
    assert.equal(p.parallel, 1);
    assert.deepEqual(p.vms.map((v) => [v.vmName, v.bandwidthMiBps]), [['l1', 100], ['h1', 100]]);
  });

  it('heavier guests run later and shorter heavy ones first', () => {
    const p = planEvacuation({ vms: [heavy('h-big', 2048), heavy('h-small', 512)], bandwidthMiBps: 100, maxParallel: 2, policy });
    assert.deepEqual(p.vms.map((v) => v.vmName), ['h-small', 'h-big']);
    assert.ok(p.vms.every((v) => v.exclusive));
  });

  it('an unmeasured VM goes between light and heavy, as a plain copy', () => {
    const p = planEvacuation({ vms: [heavy('h'), { vmId: 'u', vmName: 'u', ramMiB: 512, measured: null }, light('l')], bandwidthMiBps: 100, maxParallel: 2, policy });
    assert.deepEqual(p.vms.map((v) => v.vmName), ['l', 'u', 'h']);
    assert.equal(p.vms[1]!.estimate, null);
    assert.match(p.vms[1]!.orderReason, /not measured/);
  });

  it('maxParallel 1: one at a time with the whole link', () => {
    const p = planEvacuation({ vms: [light('a'), light('b')], bandwidthMiBps: 80, maxParallel: 1, policy });
    assert.ok(p.vms.every((v) => v.exclusive && v.bandwidthMiBps === 80));
  });
});

describe('chooseDestination', () => {
  const dests: DestinationView[] = [
    { key: 'b', usable: true, memoryFreeMiB: 1000, incomingSlotsFree: 2 },
    { key: 'c', usable: true, memoryFreeMiB: 3000, incomingSlotsFree: 2 },
    { key: 'd', usable: false, memoryFreeMiB: null, incomingSlotsFree: null },
  ];
  it('the destination with the most memory left', () => {
    const p = chooseDestination(512, dests, new Map(), new Set());
    assert.equal(p.key, 'c');
  });
  it('counts what this evacuation already sent there', () => {
    const p = chooseDestination(512, dests, new Map([['c', { memoryMiB: 2600, inFlight: 0 }]]), new Set());
    assert.equal(p.key, 'b');
  });
  it('skips a destination that already failed the VM, and unreachable ones', () => {
    const p = chooseDestination(512, dests, new Map(), new Set(['c']));
    assert.equal(p.key, 'b');
    assert.match(p.reason, /c already failed it/);
    assert.match(p.reason, /d unreachable/);
  });
  it('none fits: says why, not waitable', () => {
    const p = chooseDestination(4096, dests, new Map(), new Set());
    assert.equal(p.key, null);
    assert.ok(p.key === null && !p.wait);
    assert.match(p.reason, /no destination has 4160 MiB free/);
  });
  it('fits but no free incoming slot: wait', () => {
    const full = new Map([['b', { memoryMiB: 0, inFlight: 2 }], ['c', { memoryMiB: 0, inFlight: 2 }]]);
    const p = chooseDestination(256, dests, full, new Set());
    assert.ok(p.key === null && p.wait);
    assert.equal(chooseDestination(256, dests, full, new Set(), false).key, 'c');
  });
  it('a destination of unknown capacity fits, after the known ones', () => {
    const p = chooseDestination(8000, [...dests, { key: 'bare', usable: true, memoryFreeMiB: null, incomingSlotsFree: null }], new Map(), new Set());
    assert.equal(p.key, 'bare');
  });
});

describe('startable', () => {
  it('shared ones fill up to parallel', () => {
    assert.deepEqual(startable([{ exclusive: false, state: 'waiting' }, { exclusive: false, state: 'waiting' }, { exclusive: false, state: 'waiting' }], 2), [0, 1]);
    assert.deepEqual(startable([{ exclusive: false, state: 'migrating' }, { exclusive: false, state: 'waiting' }, { exclusive: false, state: 'waiting' }], 2), [1]);
  });
  it('an exclusive one waits until nothing runs, and nothing passes it', () => {
    const vms = [{ exclusive: false, state: 'migrating' as const }, { exclusive: true, state: 'waiting' as const }, { exclusive: false, state: 'waiting' as const }];
    assert.deepEqual(startable(vms, 2), []);
    assert.deepEqual(startable([{ exclusive: false, state: 'done' }, { exclusive: true, state: 'waiting' }, { exclusive: false, state: 'waiting' }], 2), [1]);
  });
  it('nothing starts beside an exclusive one', () => {
    assert.deepEqual(startable([{ exclusive: true, state: 'migrating' }, { exclusive: false, state: 'waiting' }], 2), []);
  });
});

describe('predictRemainingSec', () => {
  it('running rest + shared side by side + exclusive one after another', () => {
    const s = predictRemainingSec([
      { exclusive: false, state: 'migrating', timeSec: 10, elapsedSec: 4 },
      { exclusive: false, state: 'waiting', timeSec: 8, elapsedSec: 0 },
      { exclusive: false, state: 'waiting', timeSec: 4, elapsedSec: 0 },
      { exclusive: true, state: 'waiting', timeSec: 20, elapsedSec: 0 },
      { exclusive: true, state: 'done', timeSec: 20, elapsedSec: 0 },
    ], 2);
    assert.equal(s, 6 + 6 + 20);
  });
});
