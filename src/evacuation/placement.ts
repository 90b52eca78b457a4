// Where each VM of an evacuation goes, pure: only to a destination where it fits, after what this
// evacuation already sent there. The runner (./runner.ts) asks it as each VM's turn comes.

/** A destination as placement sees it. */
export interface DestinationView {
  key: string;
  usable: boolean;
  /** null: not known (a bare libvirt URI); such a destination is taken to fit, after the known ones */
  memoryFreeMiB: number | null;
  incomingSlotsFree: number | null;
}

/** What this evacuation has already sent to (or is sending to) each destination. */
export interface DestinationUse {
  memoryMiB: number;
  inFlight: number;
}

/** QEMU's own memory beside the guest's RAM on the destination, MiB. */
export const QEMU_OVERHEAD_MIB = 64;

export type Placement =
  | { key: string; reason: string }
  /** wait: some destination fits but has no free incoming slot now; otherwise none fits at all */
  | { key: null; wait: boolean; reason: string };

/**
 * Where a VM of `ramMiB` goes: a usable destination not excluded (one that already failed it), with
 * room for it after what this evacuation already sent there; of those, the one with the most memory
 * left, then the one with fewer migrations in flight. `slots`: respect free incoming slots (at start
 * time; the tentative plan shown while waiting ignores them).
 */
export function chooseDestination(ramMiB: number, dests: readonly DestinationView[], use: ReadonlyMap<string, DestinationUse>, exclude: ReadonlySet<string>, slots = true): Placement {
  const need = ramMiB + QEMU_OVERHEAD_MIB;
  const used = (k: string): DestinationUse => use.get(k) ?? { memoryMiB: 0, inFlight: 0 };
  const left = (d: DestinationView) => (d.memoryFreeMiB === null ? Number.POSITIVE_INFINITY : d.memoryFreeMiB - used(d.key).memoryMiB);
  const why: string[] = [];
  const fitting: DestinationView[] = [];
  for (const d of dests) {
    if (exclude.has(d.key)) why.push(`${d.key} already failed it`);
    else if (!d.usable) why.push(`${d.key} unreachable`);
    else if (left(d) < need) why.push(`${d.key} has ${Math.max(0, Math.round(left(d)))} MiB free`);
    else fitting.push(d);
  }
  if (fitting.length === 0) return { key: null, wait: false, reason: `no destination has ${need} MiB free (${ramMiB} MiB + QEMU): ${why.join('; ') || 'none given'}` };
  const free = slots ? fitting.filter((d) => d.incomingSlotsFree === null || used(d.key).inFlight < d.incomingSlotsFree) : fitting;
  if (free.length === 0) return { key: null, wait: true, reason: `waiting for a free incoming slot on ${fitting.map((d) => d.key).join(', ')}` };
  const known = (d: DestinationView) => (d.memoryFreeMiB === null ? 1 : 0);
  const best = [...free].sort((x, y) => known(x) - known(y) || left(y) - left(x) || used(x.key).inFlight - used(y.key).inFlight)[0]!;
  const room = left(best);
  return {
    key: best.key,
    reason: Number.isFinite(room)
      ? `fits: ${Math.round(room)} MiB free there for ${need} MiB, the most of ${fitting.length} fitting destination(s)` + (why.length ? `; skipped: ${why.join('; ')}` : '')
      : `capacity unknown (no agent asked); taken to fit` + (why.length ? `; skipped: ${why.join('; ')}` : ''),
  };
}
