import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { builtinPolicy } from '../../src/controller/policy.js';
import { dirtyScale, guestDemand, streamCpuShare, streamRateMiBps, STREAM_CORE_MIBPS, without } from '../../src/evacuation/host-load.js';
import { chooseParallel, evaluateParallel, planEvacuation } from '../../src/evacuation/plan.js';
import { procsRunning } from '../../src/daemon/host-load.js';

const policy = builtinPolicy('minimal-downtime');

describe('a migration stream on a busy host', () => {
  it('gets its fair part of a core: a whole one while cores are free, less when the guests take them all', () => {
    assert.equal(streamCpuShare({ cores: 8, runnable: 2 }, 3), 1);
    assert.equal(streamCpuShare({ cores: 2, runnable: 6 }, 1), 2 / 7);
    assert.equal(streamCpuShare({ cores: 2, runnable: 6 }, 3), 2 / 9);
    assert.equal(streamRateMiBps({ cores: 2, runnable: 6 }, 1), STREAM_CORE_MIBPS * 2 / 7);
    // side by side, streams each move less but together more
    const load = { cores: 2, runnable: 6 };
    assert.ok(3 * streamRateMiBps(load, 3) > 2 * streamRateMiBps(load, 1));
  });

  it('a guest dirties faster once others have left the host, slower beside more streams', () => {
    const measuredOn = { cores: 2, runnable: 6 };
    assert.equal(dirtyScale(measuredOn, measuredOn, 0 + 1), (2 / 7) / (2 / 6));
    assert.equal(dirtyScale(measuredOn, { cores: 2, runnable: 1 }, 1), 3);
    assert.equal(dirtyScale({ cores: 16, runnable: 4 }, { cores: 16, runnable: 1 }, 2), 1, 'cores to spare: no change');
  });

  it("a guest's demand: the CPU it used, scaled up by how crowded the host was; its leaving frees that", () => {
    assert.equal(guestDemand(0.5, { cores: 4, runnable: 2 }), 0.5);
    assert.equal(guestDemand(1 / 3, { cores: 2, runnable: 6 }), 1);
    assert.deepEqual(without({ cores: 2, runnable: 6 }, [1, 1, 5]), { cores: 2, runnable: 0 });
  });

  it('procs_running is read from /proc/stat', () => {
    assert.equal(procsRunning('cpu  1 2 3\nctxt 5\nprocs_running 7\nprocs_blocked 0\n'), 7);
    assert.equal(procsRunning('cpu 1 2 3\n'), null);
  });
});

describe('the evacuation plan on a busy host', () => {
  const g = (name: string, ramMiB: number, workingSetMiB: number, rate: number) => ({ vmId: name, vmName: name, ramMiB, measured: { dirtyRateMiBps: rate, workingSetMiB, residentMiB: ramMiB + 34 }, cpuDemand: 1 });
  // the benchmark's six TCG guests, as measured beside each other on two cores
  const bench = [g('light1', 256, 32, 10), g('light2', 256, 32, 20), g('moderate1', 512, 128, 50), g('moderate2', 512, 128, 60), g('heavy', 1024, 512, 130), g('linux', 512, 128, 30)];
  const busy = { cores: 2, runnable: 6 };

  it('one at a time, each stream is held to its part of a core, and forecast slower than on an idle host', () => {
    const idle = evaluateParallel({ vms: bench, bandwidthMiBps: 100, maxParallel: 1, policy }, 1);
    const loaded = evaluateParallel({ vms: bench, bandwidthMiBps: 100, maxParallel: 1, policy, load: busy }, 1);
    assert.ok(loaded.timeSec > idle.timeSec + 10, `${loaded.timeSec} vs ${idle.timeSec}`);
    // the first one goes on the host as measured: 2 of 7 threads' worth of a core
    const first = loaded.order[0]!;
    assert.equal(loaded.rate[first], Math.floor(STREAM_CORE_MIBPS * 2 / 7));
    // the last one on a host the others have left: the whole link, and its guest at full speed
    const last = loaded.order.at(-1)!;
    assert.equal(bench[last]!.vmName, 'heavy');
    assert.equal(loaded.rate[last], 100);
    assert.equal(loaded.host[last]!.dirtyScale, 3);
  });

  it('parallel streams win on the busy host, where on an idle one the choice is close', () => {
    const { chosen, candidates } = chooseParallel({ vms: bench, bandwidthMiBps: 100, maxParallel: 4, policy, load: busy });
    assert.ok(chosen.parallel > 1, JSON.stringify(candidates.map((c) => [c.parallel, c.timeSec, c.lostSec])));
    assert.ok(chosen.timeSec < candidates[0]!.timeSec - 5, JSON.stringify(candidates.map((c) => [c.parallel, c.timeSec, c.lostSec])));
    const p = planEvacuation({ vms: bench, bandwidthMiBps: 100, maxParallel: 4, policy, load: busy });
    const l1 = p.vms.find((v) => v.vmName === 'light1')!;
    assert.ok(!l1.exclusive);
    // its estimate is at the rate its stream can move, below its share of the link, and says why
    assert.ok(l1.estimate!.bandwidthMiBps < l1.bandwidthMiBps, JSON.stringify(l1));
    assert.match(l1.orderReason, /the busy host holds its stream to \d+ MiB\/s/);
    assert.match(l1.orderReason, /the host had 6 threads wanting its 2 CPUs/);
  });

  it('a host with cores to spare plans as if the load were unknown', () => {
    const a = planEvacuation({ vms: bench, bandwidthMiBps: 100, maxParallel: 4, policy });
    const b = planEvacuation({ vms: bench, bandwidthMiBps: 100, maxParallel: 4, policy, load: { cores: 64, runnable: 3 } });
    assert.deepEqual(b.vms.map((v) => [v.vmName, v.exclusive, v.bandwidthMiBps, v.estimate?.timeSec]), a.vms.map((v) => [v.vmName, v.exclusive, v.bandwidthMiBps, v.estimate?.timeSec]));
    assert.equal(b.parallel, a.parallel);
    // a fast link: a stream with a core of its own is taken to fill its share, not the lab's per-core rate
    const fast = evaluateParallel({ vms: bench, bandwidthMiBps: 1000, maxParallel: 2, policy, load: { cores: 64, runnable: 3 } }, 2);
    assert.ok(fast.rate.every((r) => r === 500 || r === 1000), fast.rate.join(','));
  });
});
