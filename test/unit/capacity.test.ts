import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { capacityFrom, parseMeminfo } from '../../src/daemon/capacity.js';

const base = { hostAvailableMiB: 8000, hostTotalMiB: 16000, vmMemoryMiB: [1024, 512], incoming: 1, incomingLimit: 2, outgoing: 0, outgoingLimit: 2 };

describe('capacityFrom', () => {
  it('without a configured size: the host\'s available memory', () => {
    const c = capacityFrom(base);
    assert.deepEqual(c, {
      memoryFreeMiB: 8000, memoryTotalMiB: 16000, memorySource: 'host', runningVms: 2, vmMemoryMiB: 1536,
      incomingSlotsFree: 1, incomingLimit: 2, outgoingSlotsFree: 2, outgoingLimit: 2,
    });
  });
  it('a configured size minus the VMs, bounded by the host\'s available memory', () => {
    assert.equal(capacityFrom({ ...base, configuredMiB: 2048 }).memoryFreeMiB, 512);
    assert.equal(capacityFrom({ ...base, configuredMiB: 100_000 }).memoryFreeMiB, 8000);
    assert.equal(capacityFrom({ ...base, configuredMiB: 0 }).memoryFreeMiB, 0);
    assert.equal(capacityFrom({ ...base, configuredMiB: 0 }).memorySource, 'configured');
  });
  it('never negative slots', () => {
    assert.equal(capacityFrom({ ...base, incoming: 5 }).incomingSlotsFree, 0);
  });
});

describe('parseMeminfo', () => {
  it('reads MemAvailable and MemTotal', () => {
    assert.deepEqual(parseMeminfo('MemTotal:       2048000 kB\nMemFree: 1 kB\nMemAvailable:    1024000 kB\n'), { availableMiB: 1000, totalMiB: 2000 });
  });
});
