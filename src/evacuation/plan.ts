// The evacuation's decisions, pure: the order of the VMs and how they share the link (from the
// simulator's forecasts of the measured guests), where each one goes (only where it fits), which may
// start now, and how long the rest should take. The runner (./runner.ts) only carries them out.
import type { EstimateSummary } from '../api/evacuation.js';
import type { Policy } from '../controller/policy.js';
import { predictMigration } from '../simulator/predict.js';

/** What was measured of a VM before anything moved (null: the measurement failed). */
export interface VmFacts {
  vmId: string;
  vmName: string;
  ramMiB: number;
  /** residentMiB: the QEMU process's resident set (see PredictInput) */
  measured: { dirtyRateMiBps: number; workingSetMiB: number; residentMiB?: number } | null;
}

export interface PlanInput {
  vms: VmFacts[];
  /** MiB/s of the link, split between the migrations that run at once */
  bandwidthMiBps: number;
  /** most migrations at once (the request's maxParallel, bounded by the source's outgoing limit) */
  maxParallel: number;
  policy: Policy;
}

export interface PlannedVm {
  vmId: string;
  vmName: string;
  ramMiB: number;
  /** 1-based */
  order: number;
  /** runs alone with the whole link; the others run up to `parallel` at once with a share each */
  exclusive: boolean;
  bandwidthMiBps: number;
  estimate: EstimateSummary | null;
  orderReason: string;
}

export interface Plan {
  vms: PlannedVm[];
  /** how many shared migrations run at once */
  parallel: number;
  /** MiB/s each shared migration gets */
  shareMiBps: number;
}

const r1 = (x: number) => Math.round(x * 10) / 10;

function summary(f: VmFacts, bandwidthMiBps: number, policy: Policy): EstimateSummary & { completed: boolean } {
  const m = f.measured!;
  const fc = predictMigration({ ramMiB: f.ramMiB, dirtyMiBps: m.dirtyRateMiBps, workingSetMiB: m.workingSetMiB, bandwidthMiBps, ...(m.residentMiB !== undefined ? { residentMiB: m.residentMiB } : {}) }, policy);
  return {
    dirtyRateMiBps: r1(m.dirtyRateMiBps),
    ramMiB: f.ramMiB,
    bandwidthMiBps,
    timeSec: fc.prediction.timeSec,
    guestWorkLostSec: fc.prediction.guestWorkLostSec,
    downtimeMs: fc.prediction.downtimeMs,
    convergesWithoutThrottle: fc.convergesWithoutThrottle,
    completed: fc.prediction.completed,
  };
}

type Kind = 'light' | 'unmeasured' | 'heavy';
const KIND_RANK: Record<Kind, number> = { light: 0, unmeasured: 1, heavy: 2 };

/**
 * Orders the VMs. A guest that converges without any throttle on a share of the link ("light") loses
 * nothing by sharing it: those go first, shortest first, several at once, so most VMs leave early and
 * free their slots. A guest that needs a throttle even with a share ("heavy") loses guest work for as
 * long as its migration runs, and a share makes that longer: each runs alone with the whole link,
 * after the light ones, shortest first. A VM whose dirty rate could not be measured is taken for a
 * plain copy at a share, between the two.
 */
export function planEvacuation(input: PlanInput): Plan {
  const B = Math.max(1, Math.floor(input.bandwidthMiBps));
  const cap = Math.max(1, Math.floor(input.maxParallel));
  // Light candidates at the share they would get if all ran beside each other; a VM too heavy for
  // that share is heavy (alone), and the lights left may then each get more.
  let parallel = Math.max(1, Math.min(cap, input.vms.length));
  let share = Math.max(1, Math.floor(B / parallel));
  const classify = (f: VmFacts, shareMiBps: number): Kind => {
    if (!f.measured) return 'unmeasured';
    if (shareMiBps >= B) return summary(f, B, input.policy).convergesWithoutThrottle ? 'light' : 'heavy';
    return summary(f, shareMiBps, input.policy).convergesWithoutThrottle ? 'light' : 'heavy';
  };
  let kinds = input.vms.map((f) => classify(f, share));
  const sharers = kinds.filter((k) => k !== 'heavy').length;
  if (sharers > 0 && sharers < parallel) {
    parallel = Math.max(1, Math.min(cap, sharers));
    share = Math.max(1, Math.floor(B / parallel));
    kinds = input.vms.map((f, i) => (kinds[i] === 'heavy' ? 'heavy' : classify(f, share)));
  }
  if (parallel === 1) share = B;

  const entries = input.vms.map((f, i) => {
    const kind = kinds[i]!;
    const exclusive = kind === 'heavy' || parallel === 1;
    const bw = exclusive ? B : share;
    const est = f.measured ? summary(f, bw, input.policy) : null;
    // an unmeasured VM: at least a plain copy of its RAM
    const timeSec = est ? est.timeSec : r1(f.ramMiB / bw);
    return { f, kind, exclusive, bw, est, timeSec };
  });
  entries.sort((x, y) => KIND_RANK[x.kind] - KIND_RANK[y.kind] || x.timeSec - y.timeSec || x.f.ramMiB - y.f.ramMiB || x.f.vmName.localeCompare(y.f.vmName));

  const vms = entries.map((e, i): PlannedVm => {
    const { completed: _c, ...estimate } = e.est ?? { completed: true };
    const m = e.f.measured;
    let orderReason: string;
    if (e.kind === 'light') {
      orderReason = `light: dirties ${r1(m!.dirtyRateMiBps)} MiB/s, converges without a throttle at ${e.bw} MiB/s (predicted ${e.timeSec} s); light ones go first, shortest first` +
        (e.exclusive ? ', one at a time with the whole link' : `, up to ${parallel} at once with ${share} MiB/s each`);
    } else if (e.kind === 'unmeasured') {
      orderReason = `not measured (its dirty rate could not be read): taken for a plain copy of ${e.f.ramMiB} MiB at ${e.bw} MiB/s (${e.timeSec} s), after the light ones, before the heavy ones`;
    } else {
      const atShare = parallel > 1 ? summary(e.f, share, input.policy) : null;
      orderReason = `heavy: dirties ${r1(m!.dirtyRateMiBps)} MiB/s, needs a throttle` +
        (atShare ? ` even with a ${share} MiB/s share (there: ${atShare.timeSec} s, ${atShare.guestWorkLostSec} s of guest work lost)` : '') +
        `; alone with the whole ${B} MiB/s: predicted ${e.timeSec} s, ${e.est?.guestWorkLostSec ?? 0} s lost; after the light ones, shortest first`;
    }
    return {
      vmId: e.f.vmId,
      vmName: e.f.vmName,
      ramMiB: e.f.ramMiB,
      order: i + 1,
      exclusive: e.exclusive,
      bandwidthMiBps: e.bw,
      estimate: e.est ? (estimate as EstimateSummary) : null,
      orderReason,
    };
  });
  return { vms, parallel, shareMiBps: share };
}

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

export interface RunView {
  exclusive: boolean;
  state: 'waiting' | 'migrating' | 'done' | 'failed' | 'cancelled';
}

/**
 * Which waiting VMs (indices, in order) may start now, `running` counting the migrating ones. An
 * exclusive VM starts only when nothing runs, and nothing starts beside it; shared ones fill up to
 * `parallel`. The order is kept: nothing passes a waiting exclusive VM.
 */
export function startable(vms: readonly RunView[], parallel: number): number[] {
  const running = vms.filter((v) => v.state === 'migrating');
  if (running.some((v) => v.exclusive)) return [];
  let free = parallel - running.length;
  const out: number[] = [];
  for (const [i, v] of vms.entries()) {
    if (v.state !== 'waiting') continue;
    if (v.exclusive) {
      if (running.length === 0 && out.length === 0) out.push(i);
      break;
    }
    if (free <= 0) break;
    out.push(i);
    free -= 1;
  }
  return out;
}

/**
 * Predicted time to the end, s: the longest running migration's rest, then the waiting shared ones
 * side by side, then the exclusive ones one after another.
 */
export function predictRemainingSec(vms: readonly { exclusive: boolean; state: RunView['state']; timeSec: number; elapsedSec: number }[], parallel: number): number {
  let running = 0;
  let shared = 0;
  let alone = 0;
  for (const v of vms) {
    if (v.state === 'migrating') running = Math.max(running, Math.max(0, v.timeSec - v.elapsedSec));
    else if (v.state === 'waiting') {
      if (v.exclusive) alone += v.timeSec;
      else shared += v.timeSec;
    }
  }
  return r1(running + shared / Math.max(1, parallel) + alone);
}
