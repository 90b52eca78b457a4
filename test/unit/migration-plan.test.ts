import { test } from 'node:test';
import assert from 'node:assert/strict';
import { libvirtMigrationArgs } from '../../src/migration/plan.js';
import { progressPercent } from '../../src/migration/progress.js';
import { sampleFromJobStats } from '../../src/controller/sample.js';
import { MigrateFlags } from '../../src/libvirt/types.js';

test('a migration is always live, peer-to-peer, auto-converging and aborts on error', () => {
  const { params, flags } = libvirtMigrationArgs({});
  for (const f of ['LIVE', 'PEER2PEER', 'AUTO_CONVERGE', 'ABORT_ON_ERROR'] as const) assert.ok(flags & MigrateFlags[f], f);
  assert.equal(flags & MigrateFlags.POSTCOPY, 0);
  assert.equal(flags & MigrateFlags.TLS, 0, 'plain stream unless asked');
  assert.deepEqual(params, {});
  assert.equal(libvirtMigrationArgs({ autoConverge: false }).flags & MigrateFlags.AUTO_CONVERGE, 0);
});

test('options map to libvirt parameters and flags', () => {
  const { params, flags } = libvirtMigrationArgs({
    bandwidth: 100, autoConvergeInitial: 30, autoConvergeIncrement: 15, postcopy: true, persistDest: true, undefineSource: true, migrationUri: 'tcp://127.0.0.11',
  });
  assert.deepEqual(params, { migrate_uri: 'tcp://127.0.0.11', bandwidth: 100, 'bandwidth.postcopy': 100, 'auto_converge.initial': 30, 'auto_converge.increment': 15 });
  for (const f of ['POSTCOPY', 'PERSIST_DEST', 'UNDEFINE_SOURCE'] as const) assert.ok(flags & MigrateFlags[f], f);
});

test('tls asks libvirt for an encrypted stream (VIR_MIGRATE_TLS = 1 << 16) only when true', () => {
  assert.equal(MigrateFlags.TLS, 65536);
  assert.equal(libvirtMigrationArgs({ tls: true }).flags & MigrateFlags.TLS, MigrateFlags.TLS);
  assert.equal(libvirtMigrationArgs({ tls: false }).flags & MigrateFlags.TLS, 0);
  assert.deepEqual(libvirtMigrationArgs({ tls: true }).params, {}, 'a flag, not a parameter');
  const plain = libvirtMigrationArgs({ postcopy: true }).flags;
  assert.equal(libvirtMigrationArgs({ postcopy: true, tls: true }).flags, plain | MigrateFlags.TLS, 'other flags unchanged');
});

test('job statistics become a sample with the dirty rate in bytes/s', () => {
  const s = sampleFromJobStats({ type: 1, memory_iteration: 3, data_total: 1000, data_remaining: 250, memory_dirty_rate: 10, memory_page_size: 4096, memory_bps: 5e6, auto_converge_throttle: 40 }, 1500);
  assert.equal(s.iteration, 3);
  assert.equal(s.dirtyRate, 40960);
  assert.equal(s.transferRate, 5e6);
  assert.equal(s.throttlePercent, 40);
  assert.equal(s.downtimeMs, undefined);
});

test('progress never goes backwards and stays below 100 while running', () => {
  const base = sampleFromJobStats({ type: 1, data_total: 1000, data_remaining: 400 }, 0);
  let p = progressPercent(0, base);
  assert.equal(p, 60);
  p = progressPercent(p, { ...base, dataRemaining: 700 });
  assert.equal(p, 60, 'remaining grew again after a sync: progress holds');
  p = progressPercent(p, { ...base, dataRemaining: 0 });
  assert.equal(p, 99);
  assert.equal(progressPercent(5, { ...base, dataTotal: 0 }), 5);
});
