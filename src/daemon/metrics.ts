// Prometheus metrics of the agent, fed by the migration manager's events. Per-VM series exist only
// while a migration runs (removed when it ends) so the label set stays bounded; failure reasons are
// folded into a fixed small set for the same reason.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Action } from '../controller/types.js';
import { ErrorCodes, type ErrorName } from '../api/errors.js';
import { CATALOG } from '../api/catalog.js';
import { isMigrationActive, type ActionRecord, type MigrationStatus } from '../api/results.js';

export const METRIC_PREFIX = 'vmigrate_';

/** Values of the `reason` label on failed/cancelled migrations. */
export const END_REASONS = ['requested', 'controller_abort', 'libvirt_error', 'other'] as const;
export type EndReason = (typeof END_REASONS)[number];

const ACTION_TYPES: ReadonlyArray<Action['type']> = ['set-throttle', 'set-downtime', 'set-bandwidth', 'postcopy', 'abort'];

/** Error names a migration can end with, folded into the reason label. */
const REASON_BY_ERROR: Partial<Record<ErrorName, EndReason>> = {
  ABORTED_BY_POLICY: 'controller_abort',
  MIGRATION_FAILED: 'libvirt_error',
  LIBVIRT_ERROR: 'libvirt_error',
};

/** Folds a finished migration into one reason: an applied controller abort wins, else the error name. */
export function endReason(s: MigrationStatus): EndReason {
  if (s.actions.some((a) => a.action.type === 'abort' && a.applied)) return 'controller_abort';
  if (!s.error) return s.state === 'cancelled' ? 'requested' : 'other';
  return REASON_BY_ERROR[s.error.name as ErrorName] ?? 'other';
}

/** The slice of the migration manager (an EventEmitter of MigrationEventMap) that metrics listen to. */
export interface MigrationEventSource {
  on(event: 'state', listener: (s: MigrationStatus) => void): unknown;
  on(event: 'progress', listener: (s: MigrationStatus) => void): unknown;
  on(event: 'action', listener: (s: MigrationStatus, a: ActionRecord) => void): unknown;
  off(event: 'state', listener: (s: MigrationStatus) => void): unknown;
  off(event: 'progress', listener: (s: MigrationStatus) => void): unknown;
  off(event: 'action', listener: (s: MigrationStatus, a: ActionRecord) => void): unknown;
}

export interface MetricsServer {
  /** e.g. http://127.0.0.1:9411/metrics */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export interface AgentMetrics {
  readonly registry: Registry;
  /** Subscribes to the manager's events; returns a function that unsubscribes. */
  attach(manager: MigrationEventSource): () => void;
  /** Where the count of admitted incoming migrations comes from (read at each scrape). */
  countIncoming(source: () => number): void;
  /** A request was refused with one of the agent's errors (before any migration existed). */
  refused(verb: string, error: ErrorName): void;
  /** Text exposition format, as served on /metrics. */
  render(): Promise<string>;
  /** HTTP server answering GET /metrics, 404 otherwise. port 0 picks a free port. */
  serve(opts: { host: string; port: number }): Promise<MetricsServer>;
}

export function createMetrics(): AgentMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  // prom-client's *_total gauges break the naming rules (promtool flags them); the per-type
  // gauges nodejs_active_{handles,requests,resources} carry the same numbers
  for (const n of ['handles', 'requests', 'resources']) registry.removeSingleMetric(`${METRIC_PREFIX}nodejs_active_${n}_total`);
  const registers = [registry];
  const p = METRIC_PREFIX;

  const vmGauge = (name: string, help: string): Gauge<'vm'> =>
    new Gauge({ name: p + name, help, labelNames: ['vm'], registers });
  const remaining = vmGauge('migration_data_remaining_bytes', 'Bytes still to transfer in the running migration.');
  const dirtyRate = vmGauge('migration_dirty_rate_bytes_per_second', 'Guest memory dirty rate measured by QEMU.');
  const transferRate = vmGauge('migration_transfer_rate_bytes_per_second', 'Migration transfer rate estimated by QEMU.');
  const throttle = vmGauge('migration_cpu_throttle_ratio', 'Current auto-converge vCPU throttle (0-1).');
  const iteration = vmGauge('migration_iteration', 'Current memory pass of the running migration.');
  const progress = vmGauge('migration_progress_ratio', 'Progress of the running migration (0-1).');
  const running = new Gauge({ name: `${p}migrations_running`, help: 'Outgoing migrations in progress.', registers });
  const queuedGauge = new Gauge({ name: `${p}migrations_queued`, help: 'Outgoing migrations waiting in the FIFO for a slot under maxOutgoing.', registers });
  const dequeued = new Counter({ name: `${p}migrations_dequeued_total`, help: 'Outgoing migrations that left the FIFO for a slot (then started or refused by the destination).', registers });
  let incomingSource: () => number = () => 0;
  new Gauge({
    name: `${p}migrations_incoming`,
    help: 'Incoming migrations this host has admitted and not yet seen end.',
    registers,
    collect() {
      this.set(incomingSource());
    },
  });
  // Bounded: verbs come from the catalog, errors from the fixed list of error names.
  const refusedRequests = new Counter({
    name: `${p}requests_refused_total`,
    help: 'JSON-RPC requests refused with an agent error, by verb and error name.',
    labelNames: ['verb', 'error'],
    registers,
  });

  const actions = new Counter({
    name: `${p}controller_actions_total`,
    help: 'Actions decided by the convergence controller.',
    labelNames: ['action'],
    registers,
  });
  const actionFailures = new Counter({
    name: `${p}controller_action_failures_total`,
    help: 'Controller actions that could not be applied.',
    labelNames: ['action'],
    registers,
  });
  const started = new Counter({ name: `${p}migrations_started_total`, help: 'Migrations started.', registers });
  const completed = new Counter({ name: `${p}migrations_completed_total`, help: 'Migrations completed.', registers });
  const failed = new Counter({
    name: `${p}migrations_failed_total`,
    help: 'Migrations failed, by reason.',
    labelNames: ['reason'],
    registers,
  });
  const cancelled = new Counter({
    name: `${p}migrations_cancelled_total`,
    help: 'Migrations cancelled, by reason.',
    labelNames: ['reason'],
    registers,
  });
  const duration = new Histogram({
    name: `${p}migration_duration_seconds`,
    help: 'Wall time of finished migrations, by outcome.',
    labelNames: ['outcome'],
    buckets: [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600],
    registers,
  });
  const downtime = new Histogram({
    name: `${p}migration_downtime_seconds`,
    help: 'Guest downtime (pause) of completed migrations.',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10],
    registers,
  });

  // zero series up front so rate()/increase() see the first event
  for (const a of ACTION_TYPES) {
    actions.inc({ action: a }, 0);
    actionFailures.inc({ action: a }, 0);
  }
  for (const r of END_REASONS) {
    if (r !== 'requested') failed.inc({ reason: r }, 0);
  }
  cancelled.inc({ reason: 'requested' }, 0);
  cancelled.inc({ reason: 'controller_abort' }, 0);
  for (const o of ['completed', 'failed', 'cancelled']) duration.zero({ outcome: o });

  const active = new Map<string, string>(); // migrationId -> vm label
  const queued = new Set<string>(); // migrationIds waiting for a slot
  const ended = new Set<string>(); // recent ended ids, so a repeated terminal event counts once

  const vmLabel = (s: MigrationStatus): string => s.vmName || s.vmId;

  function updateGauges(s: MigrationStatus): void {
    const labels = { vm: vmLabel(s) };
    remaining.set(labels, s.dataRemaining);
    dirtyRate.set(labels, s.dirtyRate);
    transferRate.set(labels, s.transferRate);
    throttle.set(labels, s.throttlePercent / 100);
    iteration.set(labels, s.iteration);
    progress.set(labels, s.progress / 100);
  }

  function removeGauges(vm: string): void {
    for (const g of [remaining, dirtyRate, transferRate, throttle, iteration, progress]) g.remove({ vm });
  }

  function seen(s: MigrationStatus): void {
    if (active.has(s.migrationId) || ended.has(s.migrationId)) return;
    active.set(s.migrationId, vmLabel(s));
    started.inc();
    running.set(active.size);
  }

  function finish(s: MigrationStatus): void {
    if (ended.has(s.migrationId)) return;
    ended.add(s.migrationId);
    if (ended.size > 1000) ended.delete(ended.values().next().value as string);
    const vm = active.get(s.migrationId) ?? vmLabel(s);
    active.delete(s.migrationId);
    running.set(active.size);
    removeGauges(vm);
    if (s.state === 'completed') {
      completed.inc();
      if (s.downtimeMs !== null) downtime.observe(s.downtimeMs / 1000);
    } else if (s.state === 'failed') {
      failed.inc({ reason: endReason(s) });
    } else {
      cancelled.inc({ reason: endReason(s) === 'controller_abort' ? 'controller_abort' : 'requested' });
    }
    duration.observe({ outcome: s.state }, s.elapsedMs / 1000);
  }

  /** A waiting migration is neither started nor running; true when the event is about the queue only. */
  function trackQueue(s: MigrationStatus): boolean {
    if (s.state === 'queued') {
      if (!ended.has(s.migrationId)) queued.add(s.migrationId);
      queuedGauge.set(queued.size);
      return true;
    }
    if (queued.delete(s.migrationId)) {
      queuedGauge.set(queued.size);
      if (isMigrationActive(s.state)) dequeued.inc();
    }
    return false;
  }

  const onState = (s: MigrationStatus): void => {
    if (trackQueue(s)) return;
    if (!isMigrationActive(s.state)) {
      finish(s);
      return;
    }
    seen(s);
    if (s.state === 'running') updateGauges(s);
  };
  const onProgress = (s: MigrationStatus): void => {
    if (s.state === 'queued' || !isMigrationActive(s.state) || ended.has(s.migrationId)) return;
    seen(s);
    updateGauges(s);
  };
  const onAction = (_s: MigrationStatus, a: ActionRecord): void => {
    actions.inc({ action: a.action.type });
    if (!a.applied) actionFailures.inc({ action: a.action.type });
  };

  return {
    registry,
    attach(manager) {
      manager.on('state', onState);
      manager.on('progress', onProgress);
      manager.on('action', onAction);
      return () => {
        manager.off('state', onState);
        manager.off('progress', onProgress);
        manager.off('action', onAction);
      };
    },
    countIncoming(source) {
      incomingSource = source;
    },
    refused(verb, error) {
      if (verb in CATALOG && error in ErrorCodes) refusedRequests.inc({ verb, error });
    },
    render: () => registry.metrics(),
    serve: (opts) => serveRegistry(registry, opts),
  };
}

function serveRegistry(registry: Registry, opts: { host: string; port: number }): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : body),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      const { port } = server.address() as AddressInfo;
      const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
      resolve({
        url: `http://${host}:${port}/metrics`,
        port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
