// The fault suite's pure parts: the table of cases, the expectations, the invariant judgements, the
// operator-view parsing and the report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allCases, expectationFor, FAULTS, PHASES, selectCases, type CaseResult } from '../helpers/faults/model.js';
import { expectedPlace, observedLocation, oneCopy, paramsMatch, pausedReported, truthfulStatus } from '../helpers/faults/invariants.js';
import { counterChanges, countersIn, warningsIn } from '../helpers/faults/operator-view.js';
import { BEGIN, END, renderTable, spliceRun } from '../helpers/faults/report.js';
import { PHASE_DRIVERS } from '../helpers/faults/phases.js';
import type { FaultStatus } from '../helpers/faults/agent-status.js';

const status = (over: Partial<FaultStatus>): FaultStatus => ({
  migrationId: 'm1', state: 'running', progress: 0, iteration: 1, dataTotal: 256 << 20, dataProcessed: 0, dataRemaining: 256 << 20,
  throttlePercent: 0, postcopy: false, actions: [], error: null, ...over,
});

test('the table is every fault in every phase; a filter picks faults, phases or cases and rejects typos', () => {
  assert.equal(allCases().length, FAULTS.length * PHASES.length);
  assert.deepEqual(selectCases('cut-5s').map((c) => c.phase), [...PHASES]);
  assert.deepEqual(selectCases('kill-dst-qemu:post-copy,near-switchover').length, 1 + FAULTS.length);
  assert.throws(() => selectCases('cut-5'), /unknown fault/);
});

test('expectations follow the issue: pre-copy failures leave the VM on the source, post-copy is recovered', () => {
  assert.equal(expectationFor('cut-120s', 'throttling').end, 'source');
  assert.equal(expectationFor('cut-120s', 'post-copy').postcopyPaused, true);
  assert.equal(expectationFor('kill-dst-libvirtd', 'post-copy').end, 'destination');
  assert.equal(expectationFor('kill-dst-qemu', 'post-copy').vmLocation, 'paused-source');
  assert.equal(expectationFor('kill-src-agent', 'first-pass').state, 'completed');
  for (const c of allCases()) assert.equal(expectationFor(c.fault, c.phase).state === 'completed', expectationFor(c.fault, c.phase).end === 'destination');
});

test('phase predicates: each phase is recognised from the status alone', () => {
  assert.ok(PHASE_DRIVERS['first-pass'].reached(status({ iteration: 1, dataProcessed: 5 << 20 })));
  assert.ok(!PHASE_DRIVERS['first-pass'].reached(status({ iteration: 2, dataProcessed: 5 << 20 })));
  const throttle = { action: { type: 'set-throttle' }, applied: true };
  assert.ok(PHASE_DRIVERS.throttling.reached(status({ throttlePercent: 30, actions: [throttle] })));
  assert.ok(!PHASE_DRIVERS.throttling.reached(status({ throttlePercent: 0, actions: [throttle] })), 'a ceiling set at the start is not throttling');
  assert.ok(PHASE_DRIVERS['near-switchover'].reached(status({ iteration: 4, dataRemaining: 8 << 20 })));
  assert.ok(!PHASE_DRIVERS['near-switchover'].reached(status({ iteration: 1, dataRemaining: 8 << 20 })));
  assert.ok(PHASE_DRIVERS['post-copy'].reached(status({ postcopy: true })));
  assert.ok(!PHASE_DRIVERS['post-copy'].reached(status({ postcopy: true, state: 'completed' })));
});

test('where the VM is, judged from libvirt\'s lists', () => {
  assert.equal(observedLocation([{ host: 'b', state: 'running (migrated)' }], 'a', 'b'), 'destination');
  assert.equal(observedLocation([{ host: 'a', state: 'paused (post-copy failed)' }], 'a', 'b'), 'paused-source');
  assert.equal(observedLocation([{ host: 'a', state: 'running' }, { host: 'b', state: 'paused (migrating)' }], 'a', 'b'), 'several');
  assert.equal(observedLocation([], 'a', 'b'), 'none');
  const e = expectationFor('cut-5s', 'throttling');
  assert.ok(oneCopy([{ host: 'b', state: 'running (migrated)' }], e).ok);
  assert.ok(!oneCopy([{ host: 'a', state: 'running' }, { host: 'b', state: 'paused (migrating)' }], e).ok, 'a leftover paused copy is a second copy');
  const lost = expectationFor('kill-dst-qemu', 'post-copy');
  assert.ok(oneCopy([{ host: 'a', state: 'paused (post-copy failed)' }], lost).ok);
  assert.ok(!oneCopy([{ host: 'a', state: 'running' }], lost).ok, 'resuming a stale source copy is not allowed');
  assert.ok(expectedPlace('paused-source', lost).ok);
  assert.ok(!expectedPlace('source', expectationFor('kill-src-agent', 'throttling')).ok);
});

test('a truthful status: ended as expected, same id, error on failure, vmLocation where the VM is', () => {
  const e = expectationFor('cut-120s', 'throttling');
  const failed = status({ state: 'failed', error: { code: 1011, name: 'ABORTED_BY_POLICY', message: 'stalled' }, vmLocation: 'source' });
  assert.ok(truthfulStatus(failed, null, 'm1', 'source', e).ok);
  assert.match(truthfulStatus({ ...failed, vmLocation: 'destination' }, null, 'm1', 'source', e).detail, /vmLocation destination, VM is at source/);
  assert.match(truthfulStatus({ ...failed, vmLocation: undefined }, null, 'm1', 'source', e).detail, /absent/);
  assert.match(truthfulStatus(failed, null, 'm2', 'source', e).detail, /migrationId m1, started as m2/);
  assert.match(truthfulStatus({ ...failed, error: null }, null, 'm1', 'source', e).detail, /without an error/);
  assert.match(truthfulStatus(null, 'NO_MIGRATION: unknown', 'm1', 'source', e).detail, /NO_MIGRATION/);
  const done = expectationFor('cut-5s', 'first-pass');
  assert.match(truthfulStatus(status({ state: 'completed', vmLocation: 'source' }), null, 'm1', 'source', done).detail, /says completed but the VM is at source/);
  assert.equal(pausedReported(['running'], done), null);
  assert.ok(!pausedReported(['running', 'completed'], expectationFor('cut-120s', 'post-copy'))!.ok);
  assert.ok(pausedReported(['running', 'postcopy-paused', 'completed'], expectationFor('cut-120s', 'post-copy'))!.ok);
});

test('parameters: only the steered ones are compared, and every change is named', () => {
  const before = { 'max-cpu-throttle': 99, 'throttle-trigger-threshold': 50, 'downtime-limit': 300, 'xbzrle-cache-size': 1 };
  assert.ok(paramsMatch(before, { ...before, 'xbzrle-cache-size': 2 }).ok);
  const r = paramsMatch(before, { ...before, 'max-cpu-throttle': 50, 'throttle-trigger-threshold': 10 });
  assert.equal(r.detail, 'max-cpu-throttle: 99 -> 50; throttle-trigger-threshold: 50 -> 10');
});

test('operator view: warning-or-worse lines with their priority; counters, including a restarted agent\'s', () => {
  const log = [
    '{"level":30,"event":"agent.ready","msg":"ready"}',
    '{"level":40,"event":"libvirt.closed","msg":"closed"}',
    'not json',
    '{"level":50,"event":"migration.internal_error","msg":"boom"}',
  ].join('\n');
  assert.deepEqual(warningsIn('a', log), [
    { host: 'a', priority: 4, event: 'libvirt.closed', msg: 'closed' },
    { host: 'a', priority: 3, event: 'migration.internal_error', msg: 'boom' },
  ]);
  const before = countersIn('vmigrate_migrations_failed_total 2\nvmigrate_migrations_completed_total 5\n# HELP x\n');
  const after = countersIn('vmigrate_migrations_failed_total 3\nvmigrate_migrations_completed_total 1\nvmigrate_controller_actions_total{type="a"} 1\nvmigrate_controller_actions_total{type="b"} 2\n');
  assert.deepEqual(counterChanges('a', before, after), [
    { host: 'a', metric: 'vmigrate_migrations_failed_total', delta: 1 },
    { host: 'a', metric: 'vmigrate_migrations_completed_total', delta: 1 },
    { host: 'a', metric: 'vmigrate_controller_actions_total', delta: 3 },
  ]);
});

test('the report: a row per fault, totals, and only the generated part of the doc replaced', () => {
  const r = (fault: CaseResult['fault'], survived: boolean): CaseResult => ({
    fault, phase: 'throttling', expectation: expectationFor(fault, 'throttling'), survived, harnessError: null, statesSeen: [], final: null, logLines: [], metricChanges: [], durationMs: 1,
    invariants: survived ? [] : [{ name: 'params-restored', ok: false, detail: 'x' }],
  });
  const table = renderTable([r('cut-5s', true), r('second-agent', false)]);
  assert.match(table, /\| cut-5s \| not run \| survived \| not run \| not run \|/);
  assert.match(table, /\| second-agent \| not run \| FAILED: params-restored \|/);
  assert.match(table, /faults tried: 2, survived: 1/);
  const doc = `# Faults\nhand-written\n${BEGIN}\nold\n${END}\ntail\n`;
  assert.equal(spliceRun(doc, `${BEGIN}\nnew\n${END}`), `# Faults\nhand-written\n${BEGIN}\nnew\n${END}\ntail\n`);
  assert.match(spliceRun('# Faults\n', `${BEGIN}\nnew\n${END}`), /# Faults\n\n<!-- fault-suite:begin/);
});
