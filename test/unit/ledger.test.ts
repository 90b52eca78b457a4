import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LedgerWriteError, MigrationLedger, type NewLedgerEntry } from '../../src/migration/ledger.js';

function entry(id: string): NewLedgerEntry {
  return {
    migrationId: id,
    vmUuid: `uuid-${id}`,
    vmName: `g-${id}`,
    startedAt: new Date(1_700_000_000_000).toISOString(),
    source: 'a',
    plan: {
      destination: 'b (ws://127.0.0.1:1)',
      destinationAgent: 'ws://127.0.0.1:1',
      dconnuri: 'qemu+unix:///system?socket=/x',
      flags: 12291,
      params: { bandwidth: 20, migrate_uri: 'tcp://127.0.0.11' },
      policyName: 'minimal-downtime',
      policy: { name: 'minimal-downtime' },
      guestRamBytes: 256 << 20,
      postcopy: false,
    },
    controller: { version: 1, memory: {} },
    controllerSavedAt: new Date(1_700_000_001_000).toISOString(),
  };
}

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'vmigrate-ledger-'));
  try {
    fn(join(dir, 'state'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the ledger keeps running migrations across processes, with their plan and controller state', () => {
  withDir((dir) => {
    const a = new MigrationLedger(dir);
    a.record(entry('m1'));
    a.record(entry('m2'));
    a.record({ ...entry('m2'), controllerSavedAt: new Date(1_700_000_009_000).toISOString() }); // rewritten in place
    a.remove('m1');
    const { entries, setAside } = new MigrationLedger(dir).entries(); // the next agent process
    assert.deepEqual(entries.map((e) => e.migrationId), ['m2']);
    assert.equal(entries[0]?.plan.destinationAgent, 'ws://127.0.0.1:1');
    assert.equal(entries[0]?.controllerSavedAt, new Date(1_700_000_009_000).toISOString());
    assert.deepEqual(setAside, []);
  });
});

test('corrupt and schema-failing records are set aside (renamed, not deleted) with the reason', () => {
  withDir((dir) => {
    const ledger = new MigrationLedger(dir);
    ledger.record(entry('good'));
    writeFileSync(join(dir, 'migration-torn.json'), '{"migrationId":');
    writeFileSync(join(dir, 'migration-old.json'), JSON.stringify({ migrationId: 'old', vmUuid: 'u', vmName: 'g', startedAt: 't' })); // the previous format
    const { entries, setAside } = ledger.entries();
    assert.deepEqual(entries.map((e) => e.migrationId), ['good']);
    assert.equal(setAside.length, 2);
    const old = setAside.find((s) => s.file.endsWith('migration-old.json'));
    assert.match(old?.reason ?? '', /version|plan|startedAt/);
    const files = readdirSync(dir);
    assert.ok(files.some((f) => f.startsWith('migration-torn.json.corrupt-')), `set aside: ${files.join(' ')}`);
    assert.ok(files.some((f) => f.startsWith('migration-old.json.corrupt-')));
    assert.ok(!files.includes('migration-torn.json'));
    assert.deepEqual(ledger.entries().setAside, [], 'set aside once, not reported again');
  });
});

test('stale .tmp files of unfinished writes are removed, records are not', () => {
  withDir((dir) => {
    const ledger = new MigrationLedger(dir);
    ledger.record(entry('m1'));
    writeFileSync(join(dir, 'migration-m9.json.4242.tmp'), '{"half');
    assert.deepEqual(ledger.cleanStaleTmp(), ['migration-m9.json.4242.tmp']);
    assert.deepEqual(readdirSync(dir), ['migration-m1.json']);
  });
});

test('a write that fails throws LedgerWriteError and leaves neither a record nor a .tmp', { skip: process.getuid?.() === 0 ? 'root writes to read-only directories' : false }, () => {
  withDir((dir) => {
    const ledger = new MigrationLedger(dir);
    chmodSync(dir, 0o500);
    try {
      assert.throws(() => ledger.record(entry('m1')), LedgerWriteError);
    } finally {
      chmodSync(dir, 0o700);
    }
    assert.deepEqual(readdirSync(dir), []);
  });
});

test('a write into a directory that is gone fails cleanly (as on a full or read-only stateDir)', () => {
  withDir((dir) => {
    const ledger = new MigrationLedger(dir);
    rmSync(dir, { recursive: true });
    assert.throws(() => ledger.record(entry('m1')), (err: unknown) => err instanceof LedgerWriteError && /m1/.test(err.message));
    assert.ok(!existsSync(dir));
  });
});

test('a record that does not fit the schema is refused before it is written', () => {
  withDir((dir) => {
    const ledger = new MigrationLedger(dir);
    assert.throws(() => ledger.record({ ...entry('m1'), startedAt: 'yesterday' }));
    assert.deepEqual(readdirSync(dir), []);
  });
});
