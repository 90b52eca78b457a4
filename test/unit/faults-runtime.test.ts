// Pure decisions behind the runtime faults: is the stream moving, where does the VM stand, which
// post-copy phase the source shows, what to put back, and post-copy only when asked for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isTransferStalled, stalledForMs, watchTransfer } from '../../src/controller/transfer.js';
import { builtinPolicy, POLICY_NAMES, resolvePolicy } from '../../src/controller/policy.js';
import { postcopyPhase, vmLocation, type HostView } from '../../src/migration/location.js';
import { baselineRestoreActions, expectedParams, paramMismatches, parseMigrationParams } from '../../src/migration/params.js';
import { libvirtMigrationArgs } from '../../src/migration/plan.js';
import { MigrateFlags } from '../../src/libvirt/types.js';
import { isConnectionLost, LibvirtError } from '../../src/libvirt/errors.js';
import { reconnectDelayMs } from '../../src/daemon/libvirt-link.js';

const running = (reason = 1): HostView => ({ kind: 'present', state: 1, reason });
const paused = (reason: number): HostView => ({ kind: 'present', state: 3, reason });
const shutoff: HostView = { kind: 'present', state: 5, reason: 2 };
const absent: HostView = { kind: 'absent' };
const unreachable: HostView = { kind: 'unreachable' };

test('a stream that moves is never stalled; one that stops is, after the limit and not before', () => {
  let w = watchTransfer(null, 0, 0);
  for (let t = 1000; t <= 60_000; t += 1000) {
    w = watchTransfer(w, t * 10, t); // slow, but moving
    assert.equal(isTransferStalled(w, t, 30_000), false);
  }
  const stoppedAt = 60_000;
  for (let t = stoppedAt + 1000; t < stoppedAt + 30_000; t += 1000) {
    w = watchTransfer(w, stoppedAt * 10, t);
    assert.equal(isTransferStalled(w, t, 30_000), false, `not yet at ${t}`);
  }
  w = watchTransfer(w, stoppedAt * 10, stoppedAt + 30_000);
  assert.equal(isTransferStalled(w, stoppedAt + 30_000, 30_000), true);
  assert.equal(stalledForMs(w, stoppedAt + 30_000), 30_000);
  // one byte more and the clock starts again
  w = watchTransfer(w, stoppedAt * 10 + 1, stoppedAt + 31_000);
  assert.equal(isTransferStalled(w, stoppedAt + 31_000, 30_000), false);
});

test('a counter read lower (a fresh job after re-attach) does not count as movement', () => {
  let w = watchTransfer(null, 1000, 0);
  w = watchTransfer(w, 500, 10_000);
  assert.equal(stalledForMs(w, 10_000), 10_000);
});

test('vmLocation: pre-copy ends', () => {
  assert.equal(vmLocation(running(), absent), 'source');
  assert.equal(vmLocation(running(6), shutoff), 'source', 'migration cancelled: running again on the source');
  assert.equal(vmLocation(running(), paused(2)), 'source', 'the incoming copy still waits for the stream');
  assert.equal(vmLocation(running(), unreachable), 'source');
  assert.equal(vmLocation(absent, running(2)), 'destination');
  assert.equal(vmLocation(shutoff, running(2)), 'destination');
  assert.equal(vmLocation(paused(1), absent), 'paused-source');
  assert.equal(vmLocation(running(), running(2)), 'unknown', 'two running copies: never guessed');
  assert.equal(vmLocation(absent, absent), 'unknown');
  assert.equal(vmLocation(unreachable, unreachable), 'unknown');
  assert.equal(vmLocation(absent, unreachable), 'unknown');
});

test('vmLocation: post-copy ends', () => {
  assert.equal(vmLocation(paused(12), running(10)), 'destination', 'post-copy running: the guest runs on the destination');
  assert.equal(vmLocation(paused(13), running(11)), 'paused-destination', 'broken post-copy');
  assert.equal(vmLocation(paused(13), paused(13)), 'paused-destination');
  assert.equal(vmLocation(absent, running(11)), 'paused-destination');
  assert.equal(vmLocation(paused(13), unreachable), 'unknown');
  assert.equal(vmLocation(paused(13), absent), 'paused-source', 'the destination QEMU died: only the stale paused source copy is left');
  assert.equal(vmLocation(paused(13), shutoff), 'paused-source');
});

test('postcopyPhase reads the source domain state', () => {
  assert.equal(postcopyPhase(running()), 'none');
  assert.equal(postcopyPhase(paused(2)), 'none');
  assert.equal(postcopyPhase(paused(12)), 'active');
  assert.equal(postcopyPhase(paused(13)), 'paused');
  assert.equal(postcopyPhase(absent), 'none');
});

test('built-in policies do not use post-copy; VM.migrate sets VIR_MIGRATE_POSTCOPY only when asked', () => {
  for (const name of POLICY_NAMES) assert.equal(builtinPolicy(name).allowPostcopy, false, name);
  assert.equal(resolvePolicy({ allowPostcopy: true }).allowPostcopy, true);
  assert.equal(libvirtMigrationArgs({}).flags & MigrateFlags.POSTCOPY, 0);
  const pc = libvirtMigrationArgs({ postcopy: true, bandwidth: 20 });
  assert.notEqual(pc.flags & MigrateFlags.POSTCOPY, 0);
  assert.equal(pc.params['bandwidth.postcopy'], 20, 'the bandwidth asked for holds in post-copy too');
  assert.equal(libvirtMigrationArgs({ bandwidth: 20 }).params['bandwidth.postcopy'], undefined);
});

test('policy: transfer stall and post-copy recovery limits, validated', () => {
  const p = builtinPolicy('minimal-downtime');
  assert.equal(p.transferStallSec, 30);
  assert.ok(p.postcopyRecoverySec > 0);
  assert.equal(resolvePolicy({ transferStallSec: 5 }).transferStallSec, 5);
  assert.throws(() => resolvePolicy({ transferStallSec: 0 }), /transferStallSec/);
});

test('restoring to a baseline touches only what was changed, and reads back', () => {
  const baseline = parseMigrationParams(JSON.stringify({ return: { 'max-cpu-throttle': 99, 'throttle-trigger-threshold': 50, 'downtime-limit': 300, 'max-bandwidth': 20 * 1024 * 1024, 'cpu-throttle-initial': 20 } }));
  const changes = [
    { type: 'set-throttle' as const, params: { 'max-cpu-throttle': 40 }, reason: 'x' },
    { type: 'set-bandwidth' as const, mibPerSec: 5, reason: 'y' },
  ];
  const restore = baselineRestoreActions(baseline, changes, 'end');
  assert.deepEqual(restore.map((a) => a.type), ['set-throttle', 'set-bandwidth']);
  assert.deepEqual(restore[0]?.type === 'set-throttle' && restore[0].params, { 'max-cpu-throttle': 99 });
  assert.equal(restore[1]?.type === 'set-bandwidth' && restore[1].mibPerSec, 20);
  const expected = expectedParams(restore);
  assert.deepEqual(paramMismatches(expected, baseline), []);
  assert.deepEqual(paramMismatches(expected, { ...baseline, 'max-cpu-throttle': 40 }), ['max-cpu-throttle: 99 != 40']);
  assert.deepEqual(baselineRestoreActions(baseline, [], 'end'), []);
});

test('lost connections are told apart from other libvirt errors; reconnects back off', () => {
  assert.equal(isConnectionLost(new LibvirtError(6, 0, 'connection is closed')), true);
  assert.equal(isConnectionLost(new LibvirtError(1, 7, 'internal error: client socket is closed')), true);
  assert.equal(isConnectionLost(new LibvirtError(38, 7, 'End of file while reading data: Input/output error')), true);
  assert.equal(isConnectionLost(new LibvirtError(9, 10, 'operation failed: migration out job: unexpectedly failed')), false);
  assert.equal(isConnectionLost(new LibvirtError(42, 10, 'Domain not found')), false);
  assert.deepEqual([0, 1, 2, 3, 4, 5, 9].map(reconnectDelayMs), [250, 500, 1000, 2000, 4000, 5000, 5000]);
});
