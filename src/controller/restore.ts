// Putting back what the controller changed, as it was before the migration: at the end of a
// migration, when the policy turns to QEMU's stock behaviour, and after an orphaned migration.
import { KNOBS, toQmpParams, type QemuParams, type ThrottleKnobs } from './knobs.js';
import type { ChangedParam } from './memory.js';
import type { Action } from './types.js';

/** Every throttle knob (what an orphaned migration may have had steered). */
export const EVERY_KNOB: ReadonlySet<ChangedParam> = new Set<ChangedParam>(KNOBS);

export function restoreActions(changed: ReadonlySet<ChangedParam>, original: QemuParams, why: string): Action[] {
  const out: Action[] = [];
  const knobs: Partial<Record<keyof ThrottleKnobs, number | boolean>> = {};
  for (const k of KNOBS) if (changed.has(k)) knobs[k] = original.throttle[k];
  const params = toQmpParams(knobs as Partial<ThrottleKnobs>);
  if (Object.keys(params).length > 0) out.push({ type: 'set-throttle', params, reason: `${why}: restoring throttle parameters` });
  if (changed.has('downtime')) out.push({ type: 'set-downtime', ms: original.downtimeMs, reason: `${why}: restoring the downtime limit` });
  if (changed.has('bandwidth')) out.push({ type: 'set-bandwidth', mibPerSec: original.bandwidthMiBps, reason: `${why}: restoring the bandwidth limit` });
  return out;
}
