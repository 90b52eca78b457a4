// The agent's /metrics scraped by a real Prometheus: series appear, counters count, per-VM series
// go stale when the migration ends.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { createMetrics, type MetricsServer } from '../../src/daemon/metrics.js';
import type { ActionRecord, MigrationEventMap, MigrationStatus } from '../../src/migration/status.js';
import { prometheusSkipReason, startPrometheus, type Prometheus, type PromSample } from '../helpers/prometheus.js';

const skip = prometheusSkipReason() ?? false;
function status(over: Partial<MigrationStatus>): MigrationStatus {
  return {
    migrationId: 'p1', vmId: 'uuid-1', vmName: 'web1', source: 'a', destination: 'b', state: 'running',
    progress: 10, dataTotal: 1e9, dataProcessed: 1e8, dataRemaining: 9e8, iteration: 1, dirtyRate: 0,
    transferRate: 0, throttlePercent: 0, postcopy: false, tls: false, downtimeMs: null, startedAt: new Date().toISOString(),
    endedAt: null, elapsedMs: 0, policy: 'adaptive', actions: [], error: null, vmLocation: null, paramsRestored: null, ...over,
  };
}

const one = (v: number) => (r: PromSample[]) => r.length === 1 && r[0]!.value === v;

describe('metrics scraped by a real Prometheus', { skip }, () => {
  const metrics = createMetrics();
  const manager = new EventEmitter<MigrationEventMap>();
  metrics.attach(manager);
  let server: MetricsServer;
  let prom: Prometheus;

  before(async () => {
    server = await metrics.serve({ host: '127.0.0.1', port: 0 });
    prom = await startPrometheus({ targets: [server.url] });
  });
  after(async () => {
    await prom?.stop();
    await server?.close();
  });

  it('scrapes the target', async () => {
    await prom.waitFor('up{job="vmigrate"}', one(1));
  });

  it('sees a running migration, its actions, and its end', async () => {
    manager.emit('state', status({ migrationId: 'p1', vmName: 'web1', state: 'running' }));
    manager.emit('progress', status({ migrationId: 'p1', vmName: 'web1', dataRemaining: 123_456_789, throttlePercent: 30 }));
    const a: ActionRecord = {
      at: new Date().toISOString(),
      t: 1000,
      action: { type: 'set-downtime', ms: 300, reason: 'close to converging' },
      applied: true,
    };
    manager.emit('action', status({ migrationId: 'p1', vmName: 'web1' }), a);

    await prom.waitFor('vmigrate_migration_data_remaining_bytes{vm="web1"}', one(123_456_789));
    await prom.waitFor('vmigrate_migration_cpu_throttle_ratio{vm="web1"}', one(0.3));
    await prom.waitFor('vmigrate_controller_actions_total{action="set-downtime"}', one(1));
    await prom.waitFor('vmigrate_migrations_running', one(1));

    manager.emit('state', status({ migrationId: 'p1', vmName: 'web1', state: 'completed', elapsedMs: 9000, downtimeMs: 45 }));
    await prom.waitFor('vmigrate_migrations_completed_total', one(1));
    // the per-VM series is gone from the next scrape, so Prometheus marks it stale
    await prom.waitFor('vmigrate_migration_data_remaining_bytes{vm="web1"}', (r) => r.length === 0);
    await prom.waitFor('vmigrate_migration_downtime_seconds_sum', one(0.045));
    await prom.waitFor('vmigrate_migration_duration_seconds_count{outcome="completed"}', one(1));
    const reasons = await prom.query('vmigrate_migrations_failed_total');
    assert.ok(reasons.length > 0 && reasons.every((s) => s.value === 0));
  });

  it('answers every query of docs/grafana-dashboard.json, naming only exported metrics', async () => {
    const dashboard = readFileSync(new URL('../../../docs/grafana-dashboard.json', import.meta.url), 'utf8');
    const exprs = [...dashboard.matchAll(/"expr": "((?:[^"\\]|\\.)*)"/g)].map((m) => JSON.parse(`"${m[1]}"`) as string);
    assert.ok(exprs.length >= 15);
    const exported = new Set(metrics.registry.getMetricsAsArray().map((m) => m.name));
    for (const expr of exprs) {
      for (const [name] of expr.matchAll(/vmigrate_[a-z0-9_]+/g)) {
        const base = name.replace(/_(bucket|sum|count)$/, '');
        assert.ok(exported.has(name) || exported.has(base), `${name} in dashboard is not exported`);
      }
      const concrete = expr
        .replaceAll('$__rate_interval', '1m')
        .replaceAll('$__range', '5m')
        .replace(/\$(job|instance|vm)\b/g, '.*');
      await prom.query(concrete); // throws on a PromQL error
    }
  });
});
