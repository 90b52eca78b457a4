// The controller's only writes caused by its actions: an action it returns is committed (what QEMU
// will hold, what finish() must restore), and rolled back when the runner could not apply it.
import { fromQmpParams, type ThrottleKnobs } from './knobs.js';
import type { ChangedParam, ControllerMemory } from './memory.js';
import type { Action, Phase } from './types.js';

/** What an action's rollback puts back. */
interface Before {
  knobs: ThrottleKnobs;
  changed: ReadonlySet<ChangedParam>;
  downtimeMs: number;
  phase: Phase;
}

export type Undo = WeakMap<Action, Before>;

function changes(action: Action): ChangedParam[] {
  if (action.type === 'set-throttle') return Object.keys(fromQmpParams(action.params)) as (keyof ThrottleKnobs)[];
  if (action.type === 'set-downtime') return ['downtime'];
  if (action.type === 'set-bandwidth') return ['bandwidth'];
  return [];
}

/** Record `action` in `out` and in the controller's beliefs, remembering how to forget it. */
export function commit(m: ControllerMemory, undo: Undo, out: Action[], action: Action): void {
  undo.set(action, { knobs: { ...m.knobs }, changed: new Set(m.changed), downtimeMs: m.view.downtimeMs, phase: m.view.phase });
  for (const k of changes(action)) m.changed.add(k);
  out.push(action);
  m.view.lastReason = action.reason;
  switch (action.type) {
    case 'set-throttle':
      Object.assign(m.knobs, fromQmpParams(action.params));
      return;
    case 'set-downtime':
      m.view.downtimeMs = action.ms;
      return;
    case 'postcopy':
      m.view.phase = 'postcopy';
      return;
    case 'abort':
      m.view.phase = 'aborted';
      return;
    case 'set-bandwidth':
      return;
  }
}

/** The runner could not apply `action`: back to the beliefs from before it. */
export function rollback(m: ControllerMemory, undo: Undo, action: Action): void {
  const before = undo.get(action);
  if (!before) return;
  undo.delete(action);
  Object.assign(m.knobs, before.knobs);
  for (const k of changes(action)) if (!before.changed.has(k)) m.changed.delete(k);
  m.view.downtimeMs = before.downtimeMs;
  if (action.type === 'postcopy') m.postcopyRefused = true;
  if (action.type === 'postcopy' || action.type === 'abort') m.view.phase = before.phase;
}
