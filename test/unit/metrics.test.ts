import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { createMetrics, endReason } from '../../src/daemon/metrics.js';
import type { ActionRecord, MigrationEventMap, MigrationStatus } from '../../src/migration/status.js';

class FakeManager extends EventEmitter<MigrationEventMap> {}

function status(over: Partial<MigrationStatus> = {}): MigrationStatus {
  return {
    migrationId: 'm1',
    vmId: 'uuid-1',
    vmName: 'web1',
    source: 'hostA',
    destination: 'hostB',
    state: 'running',
    progress: 0,
    dataTotal: 1 << 30,
    dataProcessed: 0,
    dataRemaining: 1 << 30,
    iteration: 1,
    dirtyRate: 0,
    transferRate: 0,
    throttlePercent: 0,
    postcopy: false,
    tls: false,
    downtimeMs: null,
    startedAt: '2026-01-01T00:00:00.000Z',
    endedAt: null,
    elapsedMs: 0,
    policy: 'adaptive',
    actions: [],
    error: null,
    vmLocation: null,
    paramsRestored: null,
    ...over,
  };
}

const action = (type: 'set-throttle' | 'abort', applied = true): ActionRecord => ({
  at: '2026-01-01T00:00:05.000Z',
  t: 5000,
  action: type === 'abort' ? { type, reason: 'no progress' } : { type, params: { 'max-cpu-throttle': 90 }, reason: 'x' },
  applied,
});

/** value of one sample line, e.g. metric('vmigrate_x{vm="a"}') */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('metrics', () => {
  it('tracks a running migration per VM and drops its series when it ends', async () => {
    const m = createMetrics();
    const mgr = new FakeManager();
    const detach = m.attach(mgr);

    mgr.emit('state', status({ state: 'pending' }));
    mgr.emit('state', status({ state: 'running' }));
    mgr.emit(
      'progress',
      status({ progress: 40, dataRemaining: 600e6, dirtyRate: 50e6, transferRate: 100e6, throttlePercent: 30, iteration: 4 }),
    );
    const a = action('set-throttle');
    mgr.emit('action', status({ actions: [a] }), a);
    mgr.emit('action', status(), action('set-throttle', false));

    let text = await m.render();
    assert.equal(value(text, 'vmigrate_migration_data_remaining_bytes{vm="web1"}'), 600e6);
    assert.equal(value(text, 'vmigrate_migration_dirty_rate_bytes_per_second{vm="web1"}'), 50e6);
    assert.equal(value(text, 'vmigrate_migration_transfer_rate_bytes_per_second{vm="web1"}'), 100e6);
    assert.equal(value(text, 'vmigrate_migration_cpu_throttle_ratio{vm="web1"}'), 0.3);
    assert.equal(value(text, 'vmigrate_migration_iteration{vm="web1"}'), 4);
    assert.equal(value(text, 'vmigrate_migration_progress_ratio{vm="web1"}'), 0.4);
    assert.equal(value(text, 'vmigrate_migrations_running'), 1);
    assert.equal(value(text, 'vmigrate_migrations_started_total'), 1);
    assert.equal(value(text, 'vmigrate_controller_actions_total{action="set-throttle"}'), 2);
    assert.equal(value(text, 'vmigrate_controller_action_failures_total{action="set-throttle"}'), 1);
    assert.equal(value(text, 'vmigrate_controller_actions_total{action="abort"}'), 0);

    const done = status({ state: 'completed', progress: 100, elapsedMs: 12_500, downtimeMs: 80 });
    mgr.emit('state', done);
    mgr.emit('state', done); // a repeated terminal event counts once
    mgr.emit('progress', done); // late sample must not resurrect the series

    text = await m.render();
    assert.doesNotMatch(text, /vm="web1"/);
    assert.equal(value(text, 'vmigrate_migrations_running'), 0);
    assert.equal(value(text, 'vmigrate_migrations_completed_total'), 1);
    assert.equal(value(text, 'vmigrate_migration_duration_seconds_count{outcome="completed"}'), 1);
    assert.equal(value(text, 'vmigrate_migration_duration_seconds_sum{outcome="completed"}'), 12.5);
    assert.equal(value(text, 'vmigrate_migration_duration_seconds_bucket{le="30",outcome="completed"}'), 1);
    assert.equal(value(text, 'vmigrate_migration_downtime_seconds_sum'), 0.08);
    assert.equal(value(text, 'vmigrate_migration_downtime_seconds_bucket{le="0.1"}'), 1);
    assert.equal(value(text, 'vmigrate_migration_downtime_seconds_bucket{le="0.05"}'), 0);

    detach();
    mgr.emit('state', status({ migrationId: 'm9', state: 'running' }));
    assert.equal(value(await m.render(), 'vmigrate_migrations_started_total'), 1);
  });

  it('counts failures and cancellations by a bounded reason', async () => {
    const m = createMetrics();
    const mgr = new FakeManager();
    m.attach(mgr);
    const err = (name: string) => ({ code: 1004, name, message: 'x' });
    mgr.emit('state', status({ migrationId: 'a', state: 'running' }));
    mgr.emit('state', status({ migrationId: 'a', state: 'failed', error: err('MIGRATION_FAILED') }));
    mgr.emit('state', status({ migrationId: 'b', state: 'failed', error: err('SomethingNew: weird') }));
    const abort = action('abort');
    mgr.emit('state', status({ migrationId: 'c', state: 'cancelled', actions: [abort] }));
    mgr.emit('state', status({ migrationId: 'd', state: 'cancelled' }));

    const text = await m.render();
    assert.equal(value(text, 'vmigrate_migrations_started_total'), 1); // b, c, d were never seen running
    assert.equal(value(text, 'vmigrate_migrations_failed_total{reason="libvirt_error"}'), 1);
    assert.equal(value(text, 'vmigrate_migrations_failed_total{reason="other"}'), 1);
    assert.equal(value(text, 'vmigrate_migrations_failed_total{reason="controller_abort"}'), 0);
    assert.equal(value(text, 'vmigrate_migrations_cancelled_total{reason="controller_abort"}'), 1);
    assert.equal(value(text, 'vmigrate_migrations_cancelled_total{reason="requested"}'), 1);
    assert.equal(value(text, 'vmigrate_migration_duration_seconds_count{outcome="failed"}'), 2);
    const reasons = new Set([...text.matchAll(/reason="([^"]+)"/g)].map((x) => x[1]));
    assert.ok(reasons.size <= 4, `reason label must stay bounded, got ${[...reasons].join(',')}`);
  });

  it('counts waiting migrations apart from running ones, and those that left the queue', async () => {
    const m = createMetrics();
    const mgr = new FakeManager();
    m.attach(mgr);
    const q1 = { migrationId: 'q1', vmName: 'w1' };
    const q2 = { migrationId: 'q2', vmName: 'w2' };
    mgr.emit('state', status({ ...q1, state: 'queued', queuePosition: 1 }));
    mgr.emit('state', status({ ...q2, state: 'queued', queuePosition: 2 }));
    mgr.emit('progress', status({ ...q2, state: 'queued', queuePosition: 1 }));
    let text = await m.render();
    assert.equal(value(text, 'vmigrate_migrations_queued'), 2);
    assert.equal(value(text, 'vmigrate_migrations_running'), 0);
    assert.equal(value(text, 'vmigrate_migrations_started_total'), 0);
    assert.equal(value(text, 'vmigrate_migrations_dequeued_total'), 0);

    mgr.emit('state', status({ ...q1, state: 'pending' }));
    mgr.emit('state', status({ ...q2, state: 'cancelled' }));
    text = await m.render();
    assert.equal(value(text, 'vmigrate_migrations_queued'), 0);
    assert.equal(value(text, 'vmigrate_migrations_dequeued_total'), 1);
    assert.equal(value(text, 'vmigrate_migrations_running'), 1);
    assert.equal(value(text, 'vmigrate_migrations_started_total'), 1);
  });

  it('maps error names to reasons', () => {
    assert.equal(endReason(status({ state: 'failed', error: { code: 1008, name: 'LIBVIRT_ERROR', message: '' } })), 'libvirt_error');
    assert.equal(endReason(status({ state: 'failed', error: { code: 1012, name: 'MIGRATION_FAILED', message: '' } })), 'libvirt_error');
    assert.equal(endReason(status({ state: 'failed', error: { code: 1011, name: 'ABORTED_BY_POLICY', message: '' } })), 'controller_abort');
    assert.equal(endReason(status({ state: 'failed', error: { code: 0, name: 'SampleTimeout', message: '' } })), 'other');
    assert.equal(endReason(status({ state: 'failed' })), 'other');
    assert.equal(endReason(status({ state: 'cancelled' })), 'requested');
  });

  it('counts refused requests by verb and error name, ignoring names outside the catalog', async () => {
    const m = createMetrics();
    m.refused('VM.migrate', 'TOO_MANY_MIGRATIONS');
    m.refused('VM.migrate', 'TOO_MANY_MIGRATIONS');
    m.refused('No.such.verb', 'VM_NOT_FOUND');
    const text = await m.render();
    assert.equal(value(text, 'vmigrate_requests_refused_total{verb="VM.migrate",error="TOO_MANY_MIGRATIONS"}'), 2);
    assert.doesNotMatch(text, /No\.such\.verb/);
  });

  it('reports admitted incoming migrations from its source at scrape time', async () => {
    const m = createMetrics();
    assert.equal(value(await m.render(), 'vmigrate_migrations_incoming'), 0);
    let n = 2;
    m.countIncoming(() => n);
    assert.equal(value(await m.render(), 'vmigrate_migrations_incoming'), 2);
    n = 1;
    assert.equal(value(await m.render(), 'vmigrate_migrations_incoming'), 1);
  });

  it('includes default process metrics with the prefix', async () => {
    const text = await createMetrics().render();
    assert.match(text, /^vmigrate_process_cpu_seconds_total /m);
    assert.match(text, /^vmigrate_nodejs_eventloop_lag_seconds /m);
  });

  it('passes promtool check metrics', { skip: existsSync('/usr/bin/promtool') ? false : 'promtool not installed' }, async () => {
    const m = createMetrics();
    const mgr = new FakeManager();
    m.attach(mgr);
    mgr.emit('progress', status({ dataRemaining: 1e6, throttlePercent: 20 }));
    const a = action('set-throttle');
    mgr.emit('action', status(), a);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: await m.render(), encoding: 'utf8' });
    assert.equal(r.status, 0, `promtool: ${r.stdout}${r.stderr}`);
  });

  it('serves /metrics and 404s elsewhere', async () => {
    const m = createMetrics();
    const srv = await m.serve({ host: '127.0.0.1', port: 0 });
    try {
      const res = await fetch(srv.url);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      assert.match(await res.text(), /vmigrate_migrations_started_total 0/);
      const other = await fetch(srv.url.replace('/metrics', '/nope'));
      assert.equal(other.status, 404);
      await other.text();
    } finally {
      await srv.close();
    }
  });
});
