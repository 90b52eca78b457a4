// The migration runner against a scripted fake domain: state changes, controller actions applied in
// order, rejected actions reported back, parameters restored after a failure, cancel and policy abort.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import type { Action } from '../../src/controller/types.js';
import { MigrateFlags, type Domain, type DomainInfo, type DomainStateCode, type JobStats } from '../../src/libvirt/types.js';
import type { ControllerPort } from '../../src/controller/types.js';
import { builtinPolicy, type Policy } from '../../src/controller/policy.js';
import { Migration, type MigrationPlan } from '../../src/migration/migration.js';
import type { MigrationSample } from '../../src/controller/sample.js';
import type { MigrationStatus } from '../../src/migration/status.js';

class FakeDomain implements Domain {
  readonly name = 'g';
  readonly uuid = '11111111-1111-1111-1111-111111111111';
  calls: string[] = [];
  stats: JobStats = { type: 0 };
  failQmp = false;
  /** QEMU's monitor hangs: job statistics do not come back until the job is aborted */
  statsHang = false;
  private hung: (() => void)[] = [];
  private endMigration: ((err?: Error) => void) | null = null;

  getInfo(): Promise<DomainInfo> {
    return Promise.resolve({ state: 1, maxMemKiB: 1 << 20, memoryKiB: 1 << 20, nrVirtCpu: 1, cpuTimeNs: 0 });
  }
  domState: { state: DomainStateCode; reason: number } = { state: 1, reason: 0 };
  getState() {
    return Promise.resolve(this.domState);
  }
  getXmlDesc(): Promise<string> {
    return Promise.resolve('<domain/>');
  }
  create(): Promise<void> {
    return Promise.resolve();
  }
  destroy(): Promise<void> {
    return Promise.resolve();
  }
  undefine(): Promise<void> {
    return Promise.resolve();
  }
  migrateToUri3(): Promise<void> {
    this.calls.push('migrate');
    return new Promise((resolve, reject) => {
      // as libvirt: once the call returns, the job is over
      this.endMigration = (err) => {
        this.stats = { type: 0 };
        if (err) reject(err);
        else resolve();
      };
    });
  }
  getJobStats(flags = 0): Promise<JobStats> {
    if (this.statsHang && flags !== 1) return new Promise<JobStats>((resolve) => this.hung.push(() => resolve(this.stats)));
    return Promise.resolve(flags === 1 ? { type: 3, downtime: 42, data_total: 100, data_processed: 100 } : this.stats);
  }
  abortJob(): Promise<void> {
    this.calls.push('abort');
    this.statsHang = false;
    for (const release of this.hung.splice(0)) setTimeout(release, 10);
    if (!this.endMigration) return Promise.reject(new Error('no job'));
    const err = Object.assign(new Error('operation aborted: migration out job: canceled by client'), { code: 78 });
    setTimeout(() => this.endMigration?.(err), 5);
    return Promise.resolve();
  }
  migrateSetMaxDowntime(ms: number): Promise<void> {
    this.calls.push(`downtime ${ms}`);
    return Promise.resolve();
  }
  migrateSetMaxSpeed(mib: number): Promise<void> {
    this.calls.push(`speed ${mib}`);
    return Promise.resolve();
  }
  migrateStartPostCopy(): Promise<void> {
    this.calls.push('postcopy');
    return Promise.resolve();
  }
  /** what query-migrate-parameters answers: the values set so far, as QEMU would */
  qemuParams: Record<string, unknown> = {};
  qemuMonitorCommand(cmd: string): Promise<string> {
    this.calls.push(`qmp ${cmd}`);
    if (this.failQmp) return Promise.reject(new Error('QMP error'));
    const parsed = JSON.parse(cmd) as { execute: string; arguments?: Record<string, unknown> };
    if (parsed.execute === 'query-migrate-parameters') return Promise.resolve(JSON.stringify({ return: this.qemuParams }));
    if (parsed.execute === 'migrate-set-parameters') Object.assign(this.qemuParams, parsed.arguments);
    return Promise.resolve('{"return":{}}');
  }
  startDirtyRateCalc(): Promise<void> {
    return Promise.resolve();
  }
  getDirtyRateStats(): Promise<Record<string, number>> {
    return Promise.resolve({});
  }
  memoryStats(): Promise<Record<string, number>> {
    return Promise.resolve({});
  }
  complete(): void {
    this.endMigration?.();
  }
  fail(message: string): void {
    this.endMigration?.(new Error(message));
  }
}

/** A controller that plays back a script of actions, one list per sample. */
class ScriptedController implements ControllerPort {
  seen: MigrationSample[] = [];
  measured: number[] = [];
  useMeasuredDirtyRate(mibPerSec: number): void {
    this.measured.push(mibPerSec);
  }
  rejectedActions: Action[] = [];
  constructor(private readonly script: Action[][], private readonly restore: Action[] = []) {}
  observe(s: MigrationSample): Action[] {
    this.seen.push(s);
    return this.script.shift() ?? [];
  }
  rejected(a: Action): void {
    this.rejectedActions.push(a);
  }
  finish(): Action[] {
    return this.restore;
  }
  changePolicy(): Action[] {
    return [];
  }
  policy(): Policy {
    return { ...builtinPolicy('stock'), name: 'scripted' };
  }
}

const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function start(domain: FakeDomain, controller: ControllerPort | null, over: Partial<MigrationPlan> = {}): { m: Migration; states: string[] } {
  const m = new Migration({
    migrationId: 'm1',
    domain,
    vmUuid: domain.uuid,
    vmName: domain.name,
    source: 'a',
    destination: 'b',
    dconnuri: 'qemu+unix:///system',
    params: {},
    flags: 0,
    policyName: 'test',
    controller,
    intervalMs: 5,
    sampleTimeoutMs: 1000,
    transferStallMs: 30_000,
    postcopyRecoveryMs: 60_000,
    reacquire: () => Promise.resolve(domain),
    viewDestination: () => Promise.resolve({ kind: 'unreachable' as const }),
    logger: silent,
    ...over,
  });
  const states: string[] = [];
  m.on('state', (s: MigrationStatus) => states.push(s.state));
  m.start();
  return { m, states };
}

const throttle = (p: number): Action => ({ type: 'set-throttle', params: { 'cpu-throttle-initial': p }, reason: `to ${p}` });

test('pending until libvirt has a job, running with samples, completed with downtime', async () => {
  const d = new FakeDomain();
  const { m, states } = start(d, null);
  await sleep(30);
  assert.equal(m.status.state, 'pending', 'no job yet: still pending');
  d.stats = { type: 1, data_total: 1000, data_remaining: 300, memory_iteration: 2 };
  await sleep(30);
  assert.equal(m.status.state, 'running');
  assert.equal(m.status.progress, 70);
  d.complete();
  const final = await m.done;
  assert.equal(final.state, 'completed');
  assert.equal(final.progress, 100);
  assert.equal(final.downtimeMs, 42);
  assert.deepEqual(states, ['pending', 'running', 'completed']);
});

test('the status says whether the stream is encrypted, from the flags libvirt was given', async () => {
  for (const [flags, tls] of [[0, false], [MigrateFlags.LIVE | MigrateFlags.TLS, true]] as const) {
    const d = new FakeDomain();
    const { m } = start(d, null, { flags });
    assert.equal(m.status.tls, tls);
    d.complete();
    assert.equal((await m.done).tls, tls);
  }
});

test('controller actions are applied in order and recorded with their reasons', async () => {
  const d = new FakeDomain();
  d.stats = { type: 1, data_total: 1000, data_remaining: 500 };
  const c = new ScriptedController([[throttle(60), { type: 'set-downtime', ms: 500, reason: 'stall' }], [{ type: 'set-bandwidth', mibPerSec: 80, reason: 'cap' }]]);
  const { m } = start(d, c);
  await sleep(50);
  d.complete();
  const final = await m.done;
  assert.deepEqual(final.actions.map((r) => r.action.type), ['set-throttle', 'set-downtime', 'set-bandwidth']);
  assert.ok(final.actions.every((r) => r.applied));
  const applied = d.calls.filter((c) => c !== 'migrate');
  assert.match(applied[0] ?? '', /^qmp .*migrate-set-parameters.*"cpu-throttle-initial":60/);
  assert.deepEqual(applied.slice(1), ['downtime 500', 'speed 80']);
});

test('an action that fails is recorded as not applied and reported back to the controller', async () => {
  const d = new FakeDomain();
  d.stats = { type: 1, data_total: 1000, data_remaining: 500 };
  d.failQmp = true;
  const c = new ScriptedController([[throttle(50)]]);
  const { m } = start(d, c);
  await sleep(40);
  d.complete();
  const final = await m.done;
  assert.equal(final.actions[0]?.applied, false);
  assert.match(final.actions[0]?.error ?? '', /QMP error/);
  assert.equal(c.rejectedActions.length, 1);
});

test('after a failure the controller restores what it changed on the source', async () => {
  const d = new FakeDomain();
  d.stats = { type: 1, data_total: 1000, data_remaining: 500 };
  const c = new ScriptedController([[throttle(70)]], [{ type: 'set-throttle', params: { 'cpu-throttle-initial': 20 }, reason: 'restore' }]);
  const { m } = start(d, c);
  await sleep(40);
  d.fail('unable to connect to destination');
  const final = await m.done;
  assert.equal(final.state, 'failed');
  assert.equal(final.error?.name, 'MIGRATION_FAILED');
  assert.match(final.error?.message ?? '', /unable to connect/);
  assert.match(d.calls.filter((c) => c.includes('migrate-set-parameters')).at(-1) ?? '', /"cpu-throttle-initial":20/);
  assert.match(d.calls.at(-1) ?? '', /query-migrate-parameters/, 'read back after the restore');
  assert.equal(final.paramsRestored, true);
});

test('cancel before libvirt created the job retries the abort until it takes', async () => {
  const d = new FakeDomain();
  const { m } = start(d, null);
  await m.cancel();
  const final = await m.done;
  assert.equal(final.state, 'cancelled');
  assert.ok(d.calls.includes('abort'));
  await assert.rejects(m.cancel(), { errorName: 'NOT_CANCELLABLE' });
});

test('an abort decided by the policy ends as failed with ABORTED_BY_POLICY', async () => {
  const d = new FakeDomain();
  d.stats = { type: 1, data_total: 1000, data_remaining: 900 };
  const c = new ScriptedController([[{ type: 'abort', reason: 'completion timeout 120 s' }]]);
  const { m } = start(d, c);
  const final = await m.done;
  assert.equal(final.state, 'failed');
  assert.equal(final.error?.name, 'ABORTED_BY_POLICY');
  assert.match(final.error?.message ?? '', /completion timeout/);
});

test('in post-copy, cancel is refused at once and changes nothing', async () => {
  const d = new FakeDomain();
  d.stats = { type: 1, data_total: 1000, data_remaining: 500, data_processed: 100 };
  const { m } = start(d, null, { flags: 1 << 15 });
  await sleep(30);
  d.domState = { state: 3, reason: 12 }; // paused for post-copy: the guest runs on the destination
  const asked = Date.now();
  await assert.rejects(m.cancel(), (e: unknown) => (e as { name?: string }).name === 'AgentError' && /post-copy/.test((e as Error).message));
  assert.ok(Date.now() - asked < 500);
  assert.ok(!d.calls.includes('abort'), 'no abort sent');
  assert.equal(m.status.state, 'running');
  d.complete();
  assert.equal((await m.done).state, 'completed');
});

test('a stream that moves nothing for the stall time is aborted; the VM stays on the source', async () => {
  const d = new FakeDomain();
  d.stats = { type: 1, data_total: 1000, data_remaining: 500, data_processed: 100 };
  const { m } = start(d, null, { transferStallMs: 60 });
  const final = await m.done;
  assert.equal(final.state, 'failed');
  assert.equal(final.error?.name, 'ABORTED_BY_POLICY');
  assert.match(final.error?.message ?? '', /no data moved/);
  assert.equal(final.vmLocation, 'source');
  assert.ok(d.calls.includes('abort'));
});

test('a stream that stopped moving is aborted at the stall limit even when the statistics stop coming (a hung QEMU monitor)', { timeout: 10_000 }, async () => {
  const d = new FakeDomain();
  d.stats = { type: 1, data_total: 1000, data_remaining: 500, data_processed: 100 };
  const { m } = start(d, null, { transferStallMs: 200, sampleTimeoutMs: 20 });
  await sleep(40);
  assert.ok(!d.calls.includes('abort'), 'moving data at first');
  d.statsHang = true;
  const final = await m.done;
  assert.equal(final.state, 'failed');
  assert.equal(final.error?.name, 'ABORTED_BY_POLICY');
  assert.match(final.error?.message ?? '', /no data moved for \d+ s and QEMU stopped answering/);
  assert.equal(final.vmLocation, 'source');
});

test('a steered migration measures the dirty rate while it migrates and hands it to the controller', async () => {
  const d = new FakeDomain();
  const c = new ScriptedController([]);
  let release!: (v: number) => void;
  const measured = new Promise<number>((r) => (release = r));
  const { m } = start(d, c, { measureDirtyRate: () => measured });
  await sleep(20);
  assert.deepEqual(d.calls, ['migrate'], 'the migration does not wait for the measurement');
  assert.deepEqual(c.measured, []);
  release(35);
  await sleep(20);
  assert.deepEqual(c.measured, [35]);
  d.complete();
  assert.equal((await m.done).state, 'completed');
});

test('a measurement that ends after the migration is not handed over', async () => {
  const d = new FakeDomain();
  const c = new ScriptedController([]);
  let release!: (v: number) => void;
  const { m } = start(d, c, { measureDirtyRate: () => new Promise<number>((r) => (release = r)) });
  await sleep(20);
  d.complete();
  assert.equal((await m.done).state, 'completed');
  release(35);
  await sleep(10);
  assert.deepEqual(c.measured, []);
});

test('a failed measurement does not fail the migration: it goes on without', async () => {
  const d = new FakeDomain();
  const c = new ScriptedController([]);
  const { m } = start(d, c, { measureDirtyRate: () => Promise.reject(new Error('calc-dirty-rate: already running')) });
  await sleep(20);
  assert.deepEqual(c.measured, []);
  assert.deepEqual(d.calls, ['migrate']);
  d.complete();
  assert.equal((await m.done).state, 'completed');
});

test('cancel while measuring: the job is aborted; the VM stays', async () => {
  const d = new FakeDomain();
  const c = new ScriptedController([]);
  const { m } = start(d, c, { measureDirtyRate: () => sleep(100).then(() => 20) });
  await sleep(10);
  await m.cancel();
  assert.equal((await m.done).state, 'cancelled');
});
