// After a migration that did not complete, the copy that remains on this host must have QEMU's
// migration parameters as they were before it: read them back, put back what differs, read again.
import { restoreActions, type ChangedParamName, type QemuParams } from '../controller/index.js';
import type { Domain } from '../libvirt/types.js';
import { applyAction } from './effects.js';

/** The parameters a migration may leave changed, as QEMU reports them. (The throttle's initial and
 *  increment are libvirt's: it sets them at the start and resets them at the end.) */
export interface ReadParams {
  max: number;
  threshold: number;
  downtimeMs: number;
}

/** Pure: which parameters differ from what they were before the migration. */
export function paramDrift(original: QemuParams, now: ReadParams): ChangedParamName[] {
  const drift: ChangedParamName[] = [];
  if (now.max !== original.throttle.max) drift.push('max');
  if (now.threshold !== original.throttle.threshold) drift.push('threshold');
  if (now.downtimeMs !== original.downtimeMs) drift.push('downtime');
  return drift;
}

export async function readParams(domain: Domain): Promise<ReadParams> {
  const reply = JSON.parse(await domain.qemuMonitorCommand(JSON.stringify({ execute: 'query-migrate-parameters' }))) as { return?: Record<string, unknown> };
  const r = reply.return ?? {};
  const n = (k: string): number => (typeof r[k] === 'number' ? (r[k] as number) : Number.NaN);
  return { max: n('max-cpu-throttle'), threshold: n('throttle-trigger-threshold'), downtimeMs: n('downtime-limit') };
}

/** Puts back what differs from `original`; resolves with what still differs after reading again. */
export async function putBackAndVerify(domain: Domain, original: QemuParams, why: string): Promise<{ putBack: ChangedParamName[]; left: ChangedParamName[] }> {
  const drift = paramDrift(original, await readParams(domain));
  for (const action of restoreActions(new Set(drift), original, why)) await applyAction(domain, action);
  const left = drift.length > 0 ? paramDrift(original, await readParams(domain)) : [];
  return { putBack: drift, left };
}
