// The Linux guest's plan, command line, domain XML and work-log parsing (pure parts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linuxCmdline, linuxWorkload, LinuxPlanError, windowFor } from '../../src/lab/linux-plan.js';
import { parseWorkLog } from '../../src/lab/linux-work.js';
import { linuxGuestXml } from '../../src/lab/linux-guest.js';

test('steady, phases and bursty plans and their command lines', () => {
  const steady = linuxWorkload({ wsMiB: 64, rateMB: 50 });
  assert.deepEqual(steady.plan, [{ rateMB: 50, seconds: 0 }]);
  assert.equal(steady.windowSec, 4); // 3 x 64 / 50 = 3.84 s
  assert.equal(linuxCmdline(steady), 'console=ttyS0 panic=-1 mitigations=off vmw.ws=64 vmw.plan=50:0 vmw.repeat=0 vmw.win=4');
  const phases = linuxWorkload({ load: 'phases', wsMiB: 256, rateMB: 200, idleSec: 10, heavySec: 30 });
  assert.deepEqual(phases.plan, [{ rateMB: 0, seconds: 10 }, { rateMB: 200, seconds: 30 }, { rateMB: 0, seconds: 0 }]);
  assert.equal(phases.repeat, false);
  assert.match(linuxCmdline(phases), / vmw\.plan=0:10,200:30,0:0 vmw\.repeat=0 /);
  const bursty = linuxWorkload({ load: 'bursty', wsMiB: 64, rateMB: 100, idleSec: 5, heavySec: 5 });
  assert.equal(bursty.repeat, true);
  assert.match(linuxCmdline(bursty), / vmw\.plan=100:5,0:5 vmw\.repeat=1 /);
});

test('the window holds three rewrites of the working set at the slowest busy rate, at least 2 s', () => {
  assert.equal(windowFor(64, [{ rateMB: 0, seconds: 0 }]), 2);
  assert.equal(windowFor(16, [{ rateMB: 400, seconds: 0 }]), 2);
  assert.equal(windowFor(64, [{ rateMB: 20, seconds: 5 }, { rateMB: 200, seconds: 5 }]), 10);
});

test('bad plans are refused with the field named', () => {
  assert.throws(() => linuxWorkload({ wsMiB: 64, rateMB: -1 }), (e: unknown) => e instanceof LinuxPlanError && /rateMB/.test(e.message));
  assert.throws(() => linuxWorkload({ wsMiB: 0, rateMB: 10 }), /wsMiB/);
  assert.throws(() => linuxWorkload({ load: 'bursty', wsMiB: 8, rateMB: 10, idleSec: 0 }), /bursty/);
  assert.throws(() => linuxWorkload({ load: 'nope' as 'steady', wsMiB: 8, rateMB: 10 }), /unknown load/);
});

test('parseWorkLog reads the windows of the last boot only', () => {
  const log = [
    'VMREADY ws=8 plan=1:0 repeat=0 win=2 t=200',
    'VMWORK seq=1 t=400 dt=200 step=0 target=1 mbs=1.0 mb=2.0',
    '[    0.000000] Linux version 6.1.0',
    'VMREADY ws=64 plan=50:0 repeat=0 win=4 t=222',
    'VMWORK seq=1 t=657 dt=432 step=0 target=50 mbs=50.0 mb=216.0\r',
    'VMLOG stress-ng: info: something',
    'VMWORK seq=2 t=1090 dt=431 step=0 target=50 mbs=49.5 mb=213.3',
    'VMWORK seq=3 t=15', // cut mid-line
  ].join('\n');
  const r = parseWorkLog(log);
  assert.equal(r.ready, true);
  assert.deepEqual(r.windows.map((w) => [w.seq, w.uptimeSec, w.durationSec, w.rateMB, w.workMB]), [
    [1, 6.57, 4.32, 50, 216],
    [2, 10.9, 4.31, 49.5, 213.3],
  ]);
  assert.deepEqual(parseWorkLog('[ 1.0 ] booting'), { ready: false, windows: [] });
});

test('the domain XML boots kernel and initramfs with the command line, escaped', () => {
  const x = linuxGuestXml({ name: 'lx<1>', ramMiB: 512, vcpus: 1, kernel: '/k', initrd: '/i', cmdline: 'a=1 b=2', serialPath: "/s'" });
  assert.match(x, /<kernel>\/k<\/kernel>\s*<initrd>\/i<\/initrd>\s*<cmdline>a=1 b=2<\/cmdline>/);
  assert.match(x, /<name>lx&lt;1&gt;<\/name>/);
  assert.match(x, /path='\/s&apos;' append='on'/);
  assert.match(x, /<domain type='qemu'>/);
});
