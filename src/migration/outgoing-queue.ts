// FIFO of outgoing migrations waiting for a slot under `maxOutgoing` (issue 9). Pure bookkeeping, no
// timers of its own: the caller passes the time, asks who may start when a slot frees, and who has
// waited past the timeout. Not wired into MigrationManager yet (see the hook described below).
//
// Intended hook: VM.migrate with `queue !== false` calls `enqueue` instead of failing with
// TOO_MANY_MIGRATIONS when the manager is full; the manager's end-of-migration path calls
// `next(freeSlots)` and starts those (asking the destination for admission only then); a periodic
// tick calls `expire(now)` and answers those with TOO_MANY_MIGRATIONS; VM.migrateCancel calls `remove`.

export interface QueuedMigration<T> {
  vmUuid: string;
  vmName: string;
  /** ms, caller's clock */
  enqueuedAt: number;
  /** ms, caller's clock: give up waiting after this */
  deadline: number;
  payload: T;
}

export class OutgoingQueue<T> {
  private readonly items: QueuedMigration<T>[] = [];

  constructor(private readonly maxQueued = 64) {}

  get length(): number {
    return this.items.length;
  }

  /** Queues a migration; false when the VM is already queued or the queue is full. */
  enqueue(item: QueuedMigration<T>): boolean {
    if (this.items.length >= this.maxQueued || this.has(item.vmUuid)) return false;
    this.items.push(item);
    return true;
  }

  has(vmUuid: string): boolean {
    return this.items.some((i) => i.vmUuid === vmUuid);
  }

  /** 1-based position in the queue (1 = starts next), or null when not queued. */
  position(vmId: string): number | null {
    const i = this.items.findIndex((x) => x.vmUuid === vmId || x.vmName === vmId);
    return i < 0 ? null : i + 1;
  }

  /** Removes a queued migration (cancel); returns it, or undefined when it was not queued. */
  remove(vmId: string): QueuedMigration<T> | undefined {
    const i = this.items.findIndex((x) => x.vmUuid === vmId || x.vmName === vmId);
    return i < 0 ? undefined : this.items.splice(i, 1)[0];
  }

  /** Takes up to `freeSlots` migrations from the head, oldest first. */
  next(freeSlots: number): QueuedMigration<T>[] {
    return freeSlots > 0 ? this.items.splice(0, freeSlots) : [];
  }

  /** Takes every migration whose deadline has passed (they are refused, not started). */
  expire(now: number): QueuedMigration<T>[] {
    const gone = this.items.filter((i) => i.deadline <= now);
    for (const g of gone) this.items.splice(this.items.indexOf(g), 1);
    return gone;
  }
}
