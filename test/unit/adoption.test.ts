// Re-attach after a restart, the pure parts: which recorded migrations a restarted agent follows,
// aborts or leaves alone; the controller's state across a snapshot; how a followed job ended; and
// the manager refusing a migration it cannot record (STATE_WRITE_FAILED, nothing left pending).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { builtinPolicy, createController, resumeController, SnapshotError } from '../../src/controller/index.js';
import type { MigrationSample } from '../../src/controller/sample.js';
import { decideAdoption, followedOutcome, JOB_START_TOLERANCE_MS, type AdoptInput } from '../../src/migration/adoption.js';
import { MigrationLedger } from '../../src/migration/ledger.js';
import { MigrationManager } from '../../src/migration/manager.js';
import { paramDrift } from '../../src/migration/put-back.js';
import { qemuParams } from '../../src/controller/knobs.js';
import { goneDomain } from '../../src/migration/gone-domain.js';
import { AgentError } from '../../src/api/errors.js';

const T0 = 1_700_000_000_000;
const running = (over: Partial<{ outgoing: boolean; postcopy: boolean; jobStartedAtMs: number }> = {}) =>
  ({ present: true as const, jobActive: true, outgoing: true, postcopy: false, jobStartedAtMs: T0 + 500, ...over });
const input = (over: Partial<AdoptInput>): AdoptInput => ({
  vm: running(),
  recordedStartMs: T0,
  steering: { kind: 'restored' },
  policyName: 'minimal-downtime',
  onLostState: 'continue-unsteered',
  ...over,
});

test('a recorded pre-copy migration still running is followed, steered from its saved state', () => {
  const d = decideAdoption(input({}));
  assert.equal(d.kind, 'follow');
  assert.equal(d.kind === 'follow' && d.steering, 'resumed');
});

test('a migration started by someone else (virsh) is never adopted nor aborted', () => {
  const later = decideAdoption(input({ vm: running({ jobStartedAtMs: T0 + JOB_START_TOLERANCE_MS + 60_000 }) }));
  assert.equal(later.kind, 'foreign');
  assert.match(later.reason, /someone else/);
  assert.equal(decideAdoption(input({ vm: running({ outgoing: false }) })).kind, 'foreign', 'an incoming migration or another job');
  // whatever the policy says about a lost controller state
  assert.equal(decideAdoption(input({ vm: running({ jobStartedAtMs: T0 - 3600_000 }), steering: { kind: 'lost', why: 'x' }, onLostState: 'abort' })).kind, 'foreign');
});

test('a lost controller state: the policy decides between unsteered and abort, and the status says why', () => {
  const lost = { kind: 'lost' as const, why: 'snapshot version 9' };
  const goOn = decideAdoption(input({ steering: lost }));
  assert.deepEqual([goOn.kind, goOn.kind !== 'foreign' && goOn.steering], ['follow', 'unsteered']);
  assert.match(goOn.reason, /snapshot version 9/);
  const abort = decideAdoption(input({ steering: lost, onLostState: 'abort' }));
  assert.equal(abort.kind, 'abort');
  assert.match(abort.reason, /state was lost.*snapshot version 9.*policy minimal-downtime/);
  // post-copy cannot be aborted; an ended job has nothing to abort
  assert.equal(decideAdoption(input({ vm: running({ postcopy: true }), steering: lost, onLostState: 'abort' })).kind, 'follow');
  assert.equal(decideAdoption(input({ vm: { present: true, jobActive: false, outgoing: true, postcopy: false }, steering: lost, onLostState: 'abort' })).kind, 'follow');
});

test('ended while no agent ran, or gone: followed to find out how it ended; stock migrations unsteered', () => {
  const ended = decideAdoption(input({ vm: { present: true, jobActive: false, outgoing: true, postcopy: false } }));
  assert.equal(ended.kind, 'follow');
  assert.match(ended.reason, /ended while no agent ran/);
  assert.match(decideAdoption(input({ vm: { present: false } })).reason, /gone/);
  const stock = decideAdoption(input({ steering: { kind: 'none' }, policyName: 'stock' }));
  assert.equal(stock.kind === 'follow' && stock.steering, 'stock');
});

test('a followed job completed only if the VM left this host and (when it can be asked) runs on the destination', () => {
  assert.deepEqual(followedOutcome({ present: false }, 'running'), { completed: true });
  assert.deepEqual(followedOutcome({ present: true, state: 5, reason: 4 }, 'unknown'), { completed: true }, 'shut off, reason migrated');
  assert.equal(followedOutcome({ present: true, state: 1, reason: 1 }, 'unknown').completed, false, 'still running here');
  assert.equal(followedOutcome({ present: false }, 'not-running').completed, false, 'neither here nor there');
});

test('parameters left changed are found by comparing what QEMU reads back with the originals', () => {
  const original = qemuParams();
  assert.deepEqual(paramDrift(original, { max: 99, threshold: 50, downtimeMs: 300 }), []);
  assert.deepEqual(paramDrift(original, { max: 60, threshold: 1, downtimeMs: 300 }), ['max', 'threshold']);
});

function sample(t: number, iteration: number, remaining: number, processed: number, throttlePercent = 0): MigrationSample {
  return {
    t, jobType: 1, iteration, dataTotal: 256 << 20, dataProcessed: processed, dataRemaining: remaining,
    memTotal: 256 << 20, memProcessed: processed, memRemaining: remaining, zeroPages: 0, normalPages: processed / 4096, pageSize: 4096,
    dirtyRate: 100 << 20, transferRate: 20 << 20, throttlePercent, postcopyRequests: 0,
  };
}

test('a controller resumed from a snapshot decides exactly as the original would have', () => {
  const ctx = { guestRamBytes: 256 << 20, postcopyEnabled: false, bandwidthMiBps: 20 };
  const original = createController(builtinPolicy('minimal-downtime'), ctx);
  const samples: MigrationSample[] = [];
  let processed = 0;
  for (let i = 0; i < 40; i++) {
    processed += 20 << 20;
    const iteration = 1 + Math.floor(i / 6);
    samples.push(sample(i * 1000, iteration, (128 << 20) - (i % 6) * (20 << 20), processed, Math.min(99, iteration * 10)));
  }
  const head = samples.slice(0, 17);
  const tail = samples.slice(17);
  for (const s of head) original.observe(s);
  const snapshot = JSON.parse(JSON.stringify(original.snapshot())) as unknown; // through the ledger's JSON
  const resumed = resumeController(snapshot);
  const fromOriginal = tail.map((s) => original.observe(s));
  const fromResumed = tail.map((s) => resumed.observe(s));
  assert.deepEqual(fromResumed, fromOriginal);
  assert.ok(fromOriginal.flat().length > 0, 'the tail has decisions to compare');
  assert.deepEqual(resumed.state(), original.state());
  assert.deepEqual(resumed.finish(), original.finish(), 'restores the same parameters');
});

test('a damaged or foreign snapshot is refused with the reason', () => {
  const c = createController(builtinPolicy('minimal-downtime'), { guestRamBytes: 1 << 30, postcopyEnabled: false });
  const good = JSON.parse(JSON.stringify(c.snapshot())) as { version: number; memory: Record<string, unknown> };
  assert.throws(() => resumeController(null), SnapshotError);
  assert.throws(() => resumeController({ ...good, version: 99 }), /version 99/);
  assert.throws(() => resumeController({ ...good, memory: { ...good.memory, ceiling: 'high' } }), /ceiling/);
  assert.throws(() => resumeController({ ...good, memory: { ...good.memory, policy: { name: 'x' } } }), /policy/);
  assert.doesNotThrow(() => resumeController(good));
});

test('a migration that cannot be recorded is refused with STATE_WRITE_FAILED and leaves nothing pending', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmigrate-mgr-'));
  try {
    const ledger = new MigrationLedger(join(dir, 'state'));
    rmSync(join(dir, 'state'), { recursive: true }); // every write now fails
    const manager = new MigrationManager(2, ledger);
    const domain = goneDomain('11111111-1111-1111-1111-111111111111', 'g');
    let ended = false;
    assert.throws(
      () =>
        manager.start(
          {
            migrationId: 'm1', domain, vmUuid: domain.uuid, vmName: 'g', source: 'a', destination: 'b', dconnuri: 'qemu+unix:///system',
            params: {}, flags: 0, policyName: 'stock', controller: null, intervalMs: 10, sampleTimeoutMs: 100, logger: pino({ level: 'silent' }),
            transferStallMs: 30_000, postcopyRecoveryMs: 60_000, reacquire: async () => domain, viewDestination: async () => ({ kind: 'unreachable' as const })
          },
          { policy: null, guestRamBytes: 1 << 20, postcopy: false },
          async () => { ended = true; },
        ),
      (err: unknown) => err instanceof AgentError && err.errorName === 'STATE_WRITE_FAILED' && /not started/.test(err.message),
    );
    assert.equal(manager.activeCount, 0);
    assert.throws(() => manager.get('g'), /no migration/);
    await manager.settle(); // shutdown is not blocked
    assert.equal(ended, false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a domain that vanishes between the lookup and the job query counts as gone, not as an adoption error', async () => {
  const { findVm } = await import('../../src/daemon/orphans.js');
  assert.deepEqual(await findVm(goneDomain('8f1c1f3e-0000-4000-8000-000000000001', 'g')), { present: false });
  assert.deepEqual(await findVm(null), { present: false });
});

test('shutdown waits for an ended migration\'s last steps: its record is gone when settle() returns', async () => {
  // a record left behind made the next agent take a migration cancelled at shutdown for one that ran on
  const dir = mkdtempSync(join(tmpdir(), 'vmigrate-mgr-'));
  try {
    const ledger = new MigrationLedger(join(dir, 'state'));
    const manager = new MigrationManager(2, ledger);
    const domain = goneDomain('22222222-2222-2222-2222-222222222222', 'g2');
    let released = false;
    const m = manager.start(
      {
        migrationId: 'm2', domain, vmUuid: domain.uuid, vmName: 'g2', source: 'a', destination: 'b', dconnuri: 'qemu+unix:///system',
        params: {}, flags: 0, policyName: 'stock', controller: null, intervalMs: 10, sampleTimeoutMs: 100, logger: pino({ level: 'silent' }),
        transferStallMs: 30_000, postcopyRecoveryMs: 60_000, reacquire: async () => domain, viewDestination: async () => ({ kind: 'unreachable' as const }),
      },
      { policy: null, guestRamBytes: 1 << 20, postcopy: false },
      // the destination's admission slot is released over the network: slow
      async () => { await new Promise((r) => setTimeout(r, 300)); released = true; },
    );
    assert.equal(ledger.entries().entries.length, 1);
    await m.done;
    await manager.settle();
    assert.equal(released, true);
    assert.deepEqual(ledger.entries().entries, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
