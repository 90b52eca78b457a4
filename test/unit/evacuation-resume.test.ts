// The evacuation's record and what a restarted agent decides from it (pure), and the store's files.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EvacuationStatus, EvacuationVm } from '../../src/api/evacuation.js';
import { parseRecord, toRecord, type EvacuationRecord, type StartIntent } from '../../src/evacuation/record.js';
import { countedAttempts, decideResume, excludedByAttempts, pickResumable, resumedStatus, vmsToLook, type VmNow } from '../../src/evacuation/resume.js';
import { EvacuationStore } from '../../src/evacuation/store.js';

function vm(name: string, over: Partial<EvacuationVm> = {}): EvacuationVm {
  return {
    vmId: `uuid-${name}`,
    vmName: name,
    ramMiB: 64,
    order: 1,
    orderReason: 'light',
    exclusive: false,
    state: 'waiting',
    destination: 'b',
    placementReason: 'planned',
    bandwidthMiBps: 50,
    estimate: null,
    attempts: [],
    migration: null,
    error: null,
    ...over,
  };
}

function status(vms: EvacuationVm[], over: Partial<EvacuationStatus> = {}): EvacuationStatus {
  return {
    evacuationId: 'ev1',
    state: 'running',
    startedAt: '2026-01-01T00:00:00.000Z',
    endedAt: null,
    elapsedMs: 1000,
    predictedRemainingSec: 10,
    bandwidthMiBps: 100,
    maxParallel: 2,
    policy: 'minimal-downtime',
    totals: { vms: vms.length, done: 0, failed: 0, cancelled: 0, running: 0, remaining: vms.length },
    destinations: [{ destination: 'b', name: 'b', state: 'usable', memoryFreeMiB: 1000, incomingSlotsFree: 2, reason: 'ok' }],
    vms,
    error: null,
    ...over,
  };
}

function record(vms: EvacuationVm[], over: { starting?: StartIntent[]; cancelRequested?: boolean; status?: Partial<EvacuationStatus> } = {}): EvacuationRecord {
  return toRecord(
    { destinations: ['wss://b:4411', { libvirtUri: 'qemu+tcp://c/system' }], policy: 'minimal-downtime', maxParallel: 2, bandwidthMiBps: 100 },
    vms.map((v) => ({ vmId: v.vmId, vmName: v.vmName, ramMiB: v.ramMiB })),
    { status: status(vms, over.status), parallel: 2, cancelRequested: over.cancelRequested ?? false, starting: over.starting ?? [] },
  );
}

const running = (id: string) => ({ destination: 'b', migrationId: id, state: 'running', error: null });
const here: VmNow['found'] = { present: true, migratedAway: false, jobActive: false };

describe('evacuation record', () => {
  it('goes to JSON and back unchanged', () => {
    const r = record([vm('v1', { state: 'migrating', attempts: [running('m1')] }), vm('v2')], { starting: [{ vmId: 'uuid-v2', destination: 'b', atMs: 5 }] });
    const back = parseRecord(JSON.parse(JSON.stringify(r)));
    assert.ok(back.ok);
    assert.deepEqual(back.record, r);
  });

  it('a record missing a field is refused with the field named', () => {
    const { cancelRequested: _c, ...broken } = record([vm('v1')]);
    const back = parseRecord(broken);
    assert.equal(back.ok, false);
    assert.match(!back.ok ? back.reason : '', /cancelRequested/);
  });
});

describe('resume decisions', () => {
  const m1 = vm('v1', { state: 'migrating', attempts: [running('m1')] });

  it('ended and unstarted VMs are left as they are', () => {
    assert.equal(decideResume(vm('v1', { state: 'done' }), undefined, { followed: null, found: { present: false } }).kind, 'keep');
    assert.equal(decideResume(vm('v1'), undefined, { followed: null, found: here }).kind, 'keep');
  });

  it('a migration the restarted agent adopted is followed under the evacuation', () => {
    assert.deepEqual(decideResume(m1, undefined, { followed: { migrationId: 'm1', startedAtMs: 0 }, found: { ...here, jobActive: true } }).kind, 'follow');
  });

  it('not adopted: gone from this host (or shut off as migrated) is done; still here goes again; a job it does not follow is left alone', () => {
    assert.equal(decideResume(m1, undefined, { followed: null, found: { present: false } }).kind, 'left');
    assert.equal(decideResume(m1, undefined, { followed: null, found: { present: true, migratedAway: true, jobActive: false } }).kind, 'left');
    assert.equal(decideResume(m1, undefined, { followed: null, found: here }).kind, 'again');
    assert.equal(decideResume(m1, undefined, { followed: null, found: { ...here, jobActive: true } }).kind, 'stuck');
    // an older migration of the VM is not the recorded one
    assert.equal(decideResume(m1, undefined, { followed: { migrationId: 'm0', startedAtMs: 0 }, found: here }).kind, 'again');
  });

  it('a VM that was being started: the migration the ledger had is taken for it only when it started after the intent and is not an earlier attempt', () => {
    const failedOnce = vm('v1', { attempts: [{ destination: 'c', migrationId: 'm1', state: 'failed', error: null }] });
    const intent = { vmId: 'uuid-v1', destination: 'b', atMs: 1000 };
    const d = decideResume(failedOnce, intent, { followed: { migrationId: 'm2', startedAtMs: 1001 }, found: { ...here, jobActive: true } });
    assert.deepEqual(d.kind === 'follow' && d.migrationId, 'm2');
    assert.equal(decideResume(failedOnce, intent, { followed: { migrationId: 'm1', startedAtMs: 1001 }, found: here }).kind, 'keep');
    assert.equal(decideResume(failedOnce, intent, { followed: { migrationId: 'm9', startedAtMs: 999 }, found: here }).kind, 'keep');
    assert.equal(decideResume(failedOnce, intent, { followed: null, found: { present: false } }).kind, 'left');
  });

  it('vmsToLook: the migrating VMs and those being started', () => {
    const r = record([m1, vm('v2'), vm('v3', { state: 'done' })], { starting: [{ vmId: 'uuid-v2', destination: 'b', atMs: 1 }] });
    assert.deepEqual(vmsToLook(r).sort(), ['uuid-v1', 'uuid-v2']);
  });
});

describe('resumed status', () => {
  it('a VM whose migration was aborted at shutdown waits again; the attempt is marked interrupted, excludes no destination and does not count', () => {
    const r = record([vm('v1', { state: 'migrating', attempts: [{ destination: 'c', migrationId: 'm0', state: 'failed', error: null }, running('m1')] })]);
    const { status: s } = resumedStatus(r, new Map([['uuid-v1', { followed: null, found: here }]]));
    const v = s.vms[0]!;
    assert.equal(v.state, 'waiting');
    assert.deepEqual(v.attempts.map((a) => a.state), ['failed', 'interrupted']);
    assert.equal(countedAttempts(v), 1);
    assert.deepEqual([...(excludedByAttempts(s.vms).get('uuid-v1') ?? [])], ['c']);
  });

  it('after a cancel was asked for, such a VM is cancelled, not started again', () => {
    const r = record([vm('v1', { state: 'migrating', attempts: [running('m1')] })], { cancelRequested: true });
    const { status: s } = resumedStatus(r, new Map([['uuid-v1', { followed: null, found: here }]]));
    assert.equal(s.vms[0]!.state, 'cancelled');
  });

  it('followed, left and stuck VMs; the record is not changed', () => {
    const r = record(
      [vm('v1', { state: 'migrating', attempts: [running('m1')] }), vm('v2'), vm('v3', { state: 'migrating', attempts: [running('m3')] }), vm('v4', { state: 'migrating', attempts: [running('m4')] })],
      { starting: [{ vmId: 'uuid-v2', destination: 'b', atMs: 10 }] },
    );
    const before = structuredClone(r);
    const { status: s, decisions } = resumedStatus(
      r,
      new Map<string, VmNow>([
        ['uuid-v1', { followed: { migrationId: 'm1', startedAtMs: 0 }, found: here }],
        ['uuid-v2', { followed: { migrationId: 'm2', startedAtMs: 11 }, found: here }],
        ['uuid-v3', { followed: null, found: { present: false } }],
        ['uuid-v4', { followed: null, found: { ...here, jobActive: true } }],
      ]),
    );
    assert.deepEqual(s.vms.map((v) => v.state), ['migrating', 'migrating', 'done', 'failed']);
    assert.deepEqual(s.vms[1]!.attempts, [running('m2')]);
    assert.equal(s.vms[2]!.attempts[0]!.state, 'completed');
    assert.equal(decisions.get('uuid-v4')!.kind, 'stuck');
    assert.deepEqual(r, before);
  });

  it('pickResumable: the newest unfinished one; older unfinished ones are closed; ended ones are not touched', () => {
    const at = (t: string, state: EvacuationStatus['state'], id: string) => ({ ...record([]), evacuationId: id, status: status([], { evacuationId: id, startedAt: t, state }) });
    const a = at('2026-01-01T00:00:00Z', 'running', 'a');
    const b = at('2026-01-02T00:00:00Z', 'finished', 'b');
    const c = at('2026-01-03T00:00:00Z', 'planning', 'c');
    const p = pickResumable([c, b, a]);
    assert.equal(p.resume?.evacuationId, 'c');
    assert.deepEqual(p.close.map((r) => r.evacuationId), ['a']);
    assert.deepEqual(pickResumable([b]), { resume: null, close: [] });
  });
});

describe('evacuation store', () => {
  const withDir = (fn: (dir: string) => void): void => {
    const dir = mkdtempSync(join(tmpdir(), 'vmigrate-evac-'));
    try {
      fn(join(dir, 'state'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('saves atomically, loads oldest first, sets a corrupt file aside, removes', () => {
    withDir((dir) => {
      const store = new EvacuationStore(dir);
      const r1 = { ...record([vm('v1')]), evacuationId: 'x1', status: status([vm('v1')], { evacuationId: 'x1', startedAt: '2026-01-02T00:00:00Z' }) };
      const r2 = { ...record([]), evacuationId: 'x2', status: status([], { evacuationId: 'x2', startedAt: '2026-01-01T00:00:00Z' }) };
      store.save(r1);
      store.save(r2);
      store.save(r1); // rewritten in place
      writeFileSync(join(dir, 'evacuation-bad.json'), '{"version":1');
      writeFileSync(join(dir, 'migration-m1.json'), '{}'); // the ledger's: not looked at
      const { records, setAside } = store.load();
      assert.deepEqual(records.map((r) => r.evacuationId), ['x2', 'x1']);
      assert.deepEqual(records[1], r1);
      assert.equal(setAside.length, 1);
      assert.ok(existsSync(setAside[0]!.movedTo));
      assert.ok(!readdirSync(dir).some((n) => n.endsWith('.tmp')));
      store.remove('x2');
      assert.deepEqual(store.load().records.map((r) => r.evacuationId), ['x1']);
    });
  });

  it('a write that fails throws STATE_WRITE_FAILED', () => {
    withDir((dir) => {
      const store = new EvacuationStore(dir);
      const r = record([vm('v1')]);
      store.save(r);
      rmSync(dir, { recursive: true });
      assert.throws(() => store.save({ ...r, cancelRequested: true }), (e: Error & { errorName?: string }) => e.errorName === 'STATE_WRITE_FAILED');
    });
  });
});
