// Pure decisions about outgoing slots: whether a new outgoing migration starts now, waits in the
// FIFO, or is refused; and how many waiting ones may start when slots free. No state, no clock.

export interface SlotView {
  /** outgoing migrations that hold a slot: running, or being started (destination admission) */
  busy: number;
  /** the agent's maxOutgoing */
  limit: number;
  /** migrations waiting in the FIFO */
  queued: number;
  /** the FIFO's capacity */
  maxQueued: number;
}

export type OutgoingDecision =
  | { kind: 'start' }
  | { kind: 'queue' }
  | { kind: 'refuse'; reason: 'limit' | 'queue-full' };

/** `queue`: VM.migrate's `queue` (false: refuse at once when full, as before the queue existed). */
export function decideOutgoing(view: SlotView, queue: boolean): OutgoingDecision {
  // a slot is free only for the head of the queue: a newcomer never overtakes a waiting one
  if (view.busy < view.limit && view.queued === 0) return { kind: 'start' };
  if (!queue) return { kind: 'refuse', reason: 'limit' };
  if (view.queued >= view.maxQueued) return { kind: 'refuse', reason: 'queue-full' };
  return { kind: 'queue' };
}

/** How many waiting migrations may start now. */
export function freeSlots(busy: number, limit: number): number {
  return Math.max(0, limit - busy);
}
