// QEMU's migration parameters as the agent changes and puts them back: what a set of actions
// expects QEMU to report afterwards, and the actions that return changed parameters to a baseline
// read before the first change. Pure; reading them is in restore.ts.
import type { Action, ThrottleParams } from '../controller/types.js';

/** query-migrate-parameters, the fields the agent touches (QMP names; bandwidth in bytes/s). */
export interface QemuMigrationParams extends ThrottleParams {
  'downtime-limit'?: number;
  'max-bandwidth'?: number;
}

const MiB = 1024 * 1024;

/** What QEMU should report after these actions were applied (later actions win). */
export function expectedParams(actions: readonly Action[]): QemuMigrationParams {
  const out: QemuMigrationParams = {};
  for (const a of actions) {
    if (a.type === 'set-throttle') Object.assign(out, a.params);
    else if (a.type === 'set-downtime') out['downtime-limit'] = a.ms;
    else if (a.type === 'set-bandwidth') out['max-bandwidth'] = a.mibPerSec * MiB;
  }
  return out;
}

/** Fields whose value QEMU reports differently from what was expected, as "name: expected != actual". */
export function paramMismatches(expected: QemuMigrationParams, actual: QemuMigrationParams): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(expected) as [keyof QemuMigrationParams, number | boolean][]) {
    if (actual[k] !== v) out.push(`${k}: ${String(v)} != ${String(actual[k])}`);
  }
  return out;
}

/** Actions that put every parameter changed by `changes` back to its value in `baseline`. */
export function baselineRestoreActions(baseline: QemuMigrationParams, changes: readonly Action[], why: string): Action[] {
  const touched = expectedParams(changes);
  const throttle: ThrottleParams = {};
  const out: Action[] = [];
  for (const k of Object.keys(touched) as (keyof QemuMigrationParams)[]) {
    if (k === 'downtime-limit' || k === 'max-bandwidth') continue;
    const v = baseline[k];
    if (v !== undefined) (throttle as Record<string, number | boolean>)[k] = v;
  }
  if (Object.keys(throttle).length > 0) out.push({ type: 'set-throttle', params: throttle, reason: `${why}: restoring throttle parameters` });
  const downtime = baseline['downtime-limit'];
  if (touched['downtime-limit'] !== undefined && downtime !== undefined) {
    out.push({ type: 'set-downtime', ms: downtime, reason: `${why}: restoring the downtime limit` });
  }
  const bandwidth = baseline['max-bandwidth'];
  if (touched['max-bandwidth'] !== undefined && bandwidth !== undefined) {
    out.push({ type: 'set-bandwidth', mibPerSec: Math.round(bandwidth / MiB), reason: `${why}: restoring the bandwidth limit` });
  }
  return out;
}

/** Picks the fields the agent cares about out of a query-migrate-parameters reply. */
export function parseMigrationParams(reply: string): QemuMigrationParams {
  const parsed = JSON.parse(reply) as { return?: Record<string, unknown> };
  const r = parsed.return ?? {};
  const out: QemuMigrationParams = {};
  for (const k of ['cpu-throttle-initial', 'cpu-throttle-increment', 'max-cpu-throttle', 'throttle-trigger-threshold', 'downtime-limit', 'max-bandwidth'] as const) {
    const v = r[k];
    if (typeof v === 'number') out[k] = v;
  }
  if (typeof r['cpu-throttle-tailslow'] === 'boolean') out['cpu-throttle-tailslow'] = r['cpu-throttle-tailslow'];
  return out;
}
