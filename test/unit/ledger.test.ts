import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MigrationLedger } from '../../src/migration/ledger.js';

test('the ledger keeps running migrations across processes and drops torn records', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmigrate-ledger-'));
  try {
    const a = new MigrationLedger(join(dir, 'state'));
    a.record({ migrationId: 'm1', vmUuid: 'u1', vmName: 'g1', startedAt: 't' });
    a.record({ migrationId: 'm2', vmUuid: 'u2', vmName: 'g2', startedAt: 't' });
    a.remove('m1');
    writeFileSync(join(dir, 'state', 'migration-torn.json'), '{"migrationId":');
    const b = new MigrationLedger(join(dir, 'state')); // the next agent process
    assert.deepEqual(b.entries().map((e) => e.migrationId), ['m2']);
    assert.deepEqual(b.entries().map((e) => e.migrationId), ['m2'], 'the torn record is gone');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
