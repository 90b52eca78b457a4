// The evacuation's decisions, pure: the order of the VMs, how many share the link (from the
// simulator's forecasts of the measured guests), each running one's share as they come and go, which
// may start now, and how long the rest should take. Where each goes: ./placement.ts. The runner
// (./runner.ts) only carries them out.
import type { EstimateSummary } from '../api/evacuation.js';
import type { MigrationStatus } from '../api/results.js';
import type { Policy } from '../controller/policy.js';
import { LAB_ZERO_SCAN_MIBPS, predictMigration, SETUP_AND_HANDOVER_SEC } from '../simulator/predict.js';
import { dirtyScale, STREAM_CORE_MIBPS, streamCpuShare, streamRateMiBps, without, type HostLoad } from './host-load.js';

/** What was measured of a VM before anything moved (null: the measurement failed). */
export interface VmFacts {
  vmId: string;
  vmName: string;
  ramMiB: number;
  /** residentMiB: the QEMU process's resident set; zeroMiB: its zero pages, sampled (see PredictInput) */
  measured: { dirtyRateMiBps: number; workingSetMiB: number; residentMiB?: number; zeroMiB?: number } | null;
  /** the guest's part of the host's load, in threads that want a CPU (see host-load.ts guestDemand);
   *  absent: unknown, counted as nothing (its leaving frees no CPU in the forecast) */
  cpuDemand?: number;
}

export interface PlanInput {
  vms: VmFacts[];
  /** MiB/s of the link, split between the migrations that run at once */
  bandwidthMiBps: number;
  /** most migrations at once (the request's maxParallel, bounded by the source's outgoing limit) */
  maxParallel: number;
  policy: Policy;
  /** the source host's load before anything moved; absent: every stream is taken to get its share of
   *  the link (a host with cores to spare) */
  load?: HostLoad;
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

function summary(f: VmFacts, bandwidthMiBps: number, host: HostShare, policy: Policy): EstimateSummary & { completed: boolean } {
  const m = f.measured!;
  const fc = predictMigration(
    { ramMiB: f.ramMiB, dirtyMiBps: m.dirtyRateMiBps * host.dirtyScale, workingSetMiB: m.workingSetMiB, bandwidthMiBps, zeroScanMiBps: LAB_ZERO_SCAN_MIBPS * host.cpu, ...(m.residentMiB !== undefined ? { residentMiB: m.residentMiB } : {}), ...(m.zeroMiB !== undefined ? { zeroMiB: m.zeroMiB } : {}) },
    policy,
  );
  return {
    dirtyRateMiBps: r1(m.dirtyRateMiBps * host.dirtyScale),
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

/** A VM's forecast at one bandwidth, with what the choice of parallelism compares. */
export interface Forecast {
  /** converges without any throttle there: it may share the link without losing guest work */
  light: boolean;
  est: (EstimateSummary & { completed: boolean }) | null;
  timeSec: number;
  /** guest work lost to throttling, s: 0 for a guest that converges without one (its only loss is the
   *  final pause, which it pays whatever the plan; counting it would favour whichever bandwidth gives
   *  the smaller predicted pause, by tenths of a second) */
  lostSec: number;
}

/** The host as a migration sees it: the part of a core its migration thread gets, and how much faster
 *  (or slower) the guest dirties memory than when measured (host-load.ts). */
export interface HostShare {
  cpu: number;
  dirtyScale: number;
}

const IDLE_HOST: HostShare = { cpu: 1, dirtyScale: 1 };

/** A VM's forecast at a payload rate (MiB/s) on the host as it is then (default: as measured, cores to spare). */
export type Forecaster = (i: number, bandwidthMiBps: number, host?: HostShare) => Forecast;

/** Forecasts per VM (index in the input), rate and CPU share, each simulated once (every candidate
 *  parallelism asks again). */
function forecaster(input: PlanInput): Forecaster {
  const memo = new Map<string, Forecast>();
  return (i, bw, at = IDLE_HOST) => {
    const host = { cpu: Math.round(at.cpu * 100) / 100, dirtyScale: Math.round(at.dirtyScale * 100) / 100 };
    const key = `${i}@${bw}@${host.cpu}@${host.dirtyScale}`;
    let fc = memo.get(key);
    if (fc) return fc;
    const f = input.vms[i]!;
    if (!f.measured) {
      // not measured: taken for a plain copy of its RAM, plus what every migration takes beside copying
      fc = { light: true, est: null, timeSec: r1(f.ramMiB / bw + SETUP_AND_HANDOVER_SEC), lostSec: 0 };
    } else {
      const est = summary(f, bw, host, input.policy);
      const light = est.convergesWithoutThrottle && est.completed;
      fc = { light, est, timeSec: est.timeSec, lostSec: light ? 0 : est.guestWorkLostSec };
    }
    memo.set(key, fc);
    return fc;
  };
}

/** Each migration's share when `running` shared ones run at once: never above the link, never below 1. */
export function fairShare(bandwidthMiBps: number, running: number): number {
  const B = Math.max(1, Math.floor(bandwidthMiBps));
  return Math.max(1, Math.min(B, Math.floor(B / Math.max(1, running))));
}

/** One way to run the evacuation: `parallel` shared migrations at once with a share each, the VMs
 *  too heavy for that share alone afterwards. */
export interface Candidate {
  parallel: number;
  share: number;
  /** per VM (input order): shares the link (true) or runs alone with all of it */
  sharer: boolean[];
  /** per VM (input order): the payload rate it is forecast at, MiB/s: its part of the link, less where
   *  the host's CPU holds its stream back (host-load.ts) */
  rate: number[];
  /** per VM (input order): the host as its migration is forecast to see it */
  host: HostShare[];
  /** the VMs (input indices) in the order they start: the sharers, then the others one by one */
  order: number[];
  /** predicted time to empty the host, s */
  timeSec: number;
  /** predicted guest work lost to throttling, s */
  lostSec: number;
}

/** One of `streams` migrations side by side with `linkShare` MiB/s of the link, on the host as it is
 *  then (`load`; the guests were measured on `measuredOn`): what its stream moves, MiB/s, and the host
 *  as it sees it. */
interface StreamAt extends HostShare {
  rate: number;
}

function streamAt(measuredOn: HostLoad | undefined, load: HostLoad | undefined, streams: number, linkShare: number, linkMiBps: number): StreamAt {
  if (!measuredOn || !load) return { rate: linkShare, ...IDLE_HOST };
  // a stream with a core of its own is taken to fill the link (as without a load), and never to move
  // less than the lab's calibration: only the crowding is the load's
  const coreMiBps = Math.max(STREAM_CORE_MIBPS, linkMiBps);
  return {
    rate: Math.max(1, Math.min(linkShare, Math.floor(streamRateMiBps(load, streams, coreMiBps)))),
    cpu: streamCpuShare(load, streams),
    dirtyScale: dirtyScale(measuredOn, load, streams),
  };
}

function kindOf(f: VmFacts, at: Forecast): Kind {
  return !f.measured ? 'unmeasured' : at.light ? 'light' : 'heavy';
}

/** Run order within a group: light, unmeasured, heavy; then shortest first. */
function byKindThenTime(input: PlanInput, at: (i: number) => Forecast): (x: number, y: number) => number {
  const key = (i: number) => ({ f: input.vms[i]!, fc: at(i) });
  return (x, y) => {
    const a = key(x);
    const b = key(y);
    return KIND_RANK[kindOf(a.f, a.fc)] - KIND_RANK[kindOf(b.f, b.fc)] || a.fc.timeSec - b.fc.timeSec || a.f.ramMiB - b.f.ramMiB || a.f.vmName.localeCompare(b.f.vmName);
  };
}

/**
 * What running `parallel` at once predicts. The VMs that converge without a throttle at the share are
 * the sharers (an unmeasured VM too: a plain copy at a share); the rest run alone with the whole link
 * after them, one after another. The sharers' time: their predicted times at the share, over how many
 * run at once (fixed setup and handover overlap; the link stays full since shares are rebalanced when
 * one ends), but at least the longest one's time alone with the whole link (what it gets at the end).
 * Parallel 1 is the plain sequence, everything with the whole link.
 *
 * With the host's load known, a stream moves no more than its migration thread's part of a core
 * allows (host-load.ts): side by side, streams each get less of the link but together more of the
 * CPU. The sharers are forecast on the host as measured; each one alone after them on the host the
 * VMs before it have left (their CPU freed).
 */
export function evaluateParallel(input: PlanInput, parallel: number, fc: Forecaster = forecaster(input)): Candidate {
  const B = Math.max(1, Math.floor(input.bandwidthMiBps));
  const share = fairShare(B, parallel);
  const n = input.vms.length;
  const all = [...input.vms.keys()];
  const atShare = streamAt(input.load, input.load, parallel, share, B);
  const sharer = input.vms.map((_, i) => parallel > 1 && fc(i, atShare.rate, atShare).light);
  const rate = new Array<number>(n).fill(B);
  const host = new Array<HostShare>(n).fill(IDLE_HOST);
  const demand = (i: number) => input.vms[i]!.cpuDemand ?? 0;

  const shared = all.filter((i) => sharer[i]).sort(byKindThenTime(input, (i) => fc(i, atShare.rate, atShare)));
  const aloneAtStart = streamAt(input.load, input.load, 1, B, B);
  let sharedSum = 0;
  let longestAlone = 0;
  let lostSec = 0;
  for (const i of shared) {
    const at = fc(i, atShare.rate, atShare);
    sharedSum += at.timeSec;
    lostSec += at.lostSec;
    longestAlone = Math.max(longestAlone, fc(i, aloneAtStart.rate, aloneAtStart).timeSec);
    rate[i] = atShare.rate;
    host[i] = atShare;
  }
  // fewer sharers than slots: those run side by side, no more
  const sharedSec = shared.length > 0 ? Math.max(sharedSum / Math.min(parallel, shared.length), longestAlone) : 0;

  // the others one by one, each on the host the VMs before it have left
  let load = input.load && without(input.load, shared.map(demand));
  const afterShared = streamAt(input.load, load, 1, B, B);
  const rest = all.filter((i) => !sharer[i]).sort(byKindThenTime(input, (i) => fc(i, afterShared.rate, afterShared)));
  let aloneSum = 0;
  for (const i of rest) {
    const at = streamAt(input.load, load, 1, B, B);
    const f = fc(i, at.rate, at);
    aloneSum += f.timeSec;
    lostSec += f.lostSec;
    rate[i] = at.rate;
    host[i] = at;
    load = load && without(load, [demand(i)]);
  }
  return { parallel, share: parallel > 1 ? share : B, sharer, rate, host, order: [...shared, ...rest], timeSec: r1(sharedSec + aloneSum), lostSec: r1(lostSec) };
}

/** The better of two candidates: less guest work lost, then less time, then fewer at once (less at
 *  stake in each share when the forecasts are wrong). */
function better(a: Candidate, b: Candidate): Candidate {
  if (a.lostSec !== b.lostSec) return a.lostSec < b.lostSec ? a : b;
  if (a.timeSec !== b.timeSec) return a.timeSec < b.timeSec ? a : b;
  return a.parallel <= b.parallel ? a : b;
}

/** Every parallelism from 1 to the cap (no more than the VMs), and the one chosen. */
export function chooseParallel(input: PlanInput, fc: Forecaster = forecaster(input)): { chosen: Candidate; candidates: Candidate[] } {
  const cap = Math.max(1, Math.min(Math.floor(input.maxParallel), input.vms.length));
  const candidates: Candidate[] = [];
  for (let p = 1; p <= cap; p++) candidates.push(evaluateParallel(input, p, fc));
  return { chosen: candidates.reduce(better), candidates };
}

/** Why this parallelism, for each VM's orderReason: the chosen prediction and the next best. */
function parallelReason(chosen: Candidate, candidates: Candidate[], load: HostLoad | undefined): string {
  const others = candidates.filter((c) => c !== chosen);
  const next = others.length > 0 ? others.reduce(better) : null;
  const tried = candidates.length > 1 ? `the best of 1..${candidates.length}` : 'the only choice';
  return `${chosen.parallel} at once (${tried}): predicted ${chosen.timeSec} s in all, ${chosen.lostSec} s of guest work lost to throttling` +
    (next ? `; next best ${next.parallel} at once: ${next.timeSec} s, ${next.lostSec} s lost` : '') +
    (load ? `; the host had ${r1(load.runnable)} threads wanting its ${load.cores} CPUs` : '');
}

/**
 * Orders the VMs and chooses how many share the link. A guest that converges without any throttle on
 * a share ("light") loses nothing by sharing it: those go first, shortest first, several at once, so
 * the setup and handover of one overlap the copying of another. A guest that needs a throttle on the
 * share ("heavy") loses guest work for as long as its migration runs, and a share makes that longer:
 * each runs alone with the whole link, after the light ones, shortest first. A VM whose dirty rate
 * could not be measured is taken for a plain copy at a share, between the two. The parallelism is the
 * one predicted best of 1..maxParallel (see evaluateParallel, chooseParallel).
 */
export function planEvacuation(input: PlanInput): Plan {
  const B = Math.max(1, Math.floor(input.bandwidthMiBps));
  const fc = forecaster(input);
  const { chosen, candidates } = chooseParallel(input, fc);
  const { parallel, share } = chosen;
  const why = parallelReason(chosen, candidates, input.load);
  const sharedStream = streamAt(input.load, input.load, parallel, share, B);
  // where the forecast moves less than the VM's part of the link: the host's CPU holds the stream back
  const cpuNote = (rate: number, bw: number) => (rate < bw ? ` (the busy host holds its stream to ${rate} MiB/s)` : '');

  // the shared ones first (nothing passes a waiting exclusive one), each group light, unmeasured, heavy
  const entries = chosen.order.map((i) => {
    const f = input.vms[i]!;
    const exclusive = !chosen.sharer[i];
    const bw = exclusive ? B : share;
    const at = fc(i, chosen.rate[i]!, chosen.host[i]);
    // one at a time, a VM is light when it converges without a throttle with the whole link
    return { f, i, kind: kindOf(f, at), exclusive, bw, rate: chosen.rate[i]!, est: at.est, timeSec: at.timeSec };
  });

  const vms = entries.map((e, order): PlannedVm => {
    const { completed: _c, ...estimate } = e.est ?? { completed: true };
    const m = e.f.measured;
    let orderReason: string;
    if (e.kind === 'unmeasured') {
      orderReason = `not measured (its dirty rate could not be read): taken for a plain copy of ${e.f.ramMiB} MiB at ${e.bw} MiB/s${cpuNote(e.rate, e.bw)} (${e.timeSec} s), after the light ones, before the heavy ones` +
        (e.exclusive ? '' : `, up to ${parallel} at once`);
    } else if (e.kind === 'light' && !e.exclusive) {
      orderReason = `light: dirties ${r1(m!.dirtyRateMiBps)} MiB/s, converges without a throttle at a ${e.bw} MiB/s share${cpuNote(e.rate, e.bw)} (predicted ${e.timeSec} s); light ones go first, shortest first, up to ${parallel} at once, sharing the link`;
    } else if (e.kind === 'light') {
      const atShare = parallel > 1 ? fc(e.i, sharedStream.rate, sharedStream) : null;
      orderReason = `light: dirties ${r1(m!.dirtyRateMiBps)} MiB/s, converges without a throttle with the whole ${B} MiB/s${cpuNote(e.rate, e.bw)} (predicted ${e.timeSec} s)` +
        (atShare ? ` but not with a ${share} MiB/s share (there: ${atShare.timeSec} s, ${atShare.est?.guestWorkLostSec ?? 0} s of guest work lost), so alone after the shared ones` : '; one at a time with the whole link, light ones first, shortest first');
    } else {
      const atShare = parallel > 1 ? fc(e.i, sharedStream.rate, sharedStream).est : null;
      orderReason = `heavy: dirties ${r1(m!.dirtyRateMiBps)} MiB/s, needs a throttle` +
        (atShare ? ` with a ${share} MiB/s share (there: ${atShare.timeSec} s, ${atShare.guestWorkLostSec} s of guest work lost)` : ' even with the whole link') +
        `; alone with the whole ${B} MiB/s${cpuNote(e.rate, e.bw)}: predicted ${e.timeSec} s, ${e.est?.guestWorkLostSec ?? 0} s lost; after the light ones, shortest first`;
    }
    return {
      vmId: e.f.vmId,
      vmName: e.f.vmName,
      ramMiB: e.f.ramMiB,
      order: order + 1,
      exclusive: e.exclusive,
      bandwidthMiBps: e.bw,
      estimate: e.est ? (estimate as EstimateSummary) : null,
      orderReason: `${orderReason}. Parallelism ${why}`,
    };
  });
  return { vms, parallel, shareMiBps: share };
}

/** A running migration as rebalancing sees it: its current bandwidth. */
export interface RunningShare {
  vmId: string;
  exclusive: boolean;
  bandwidthMiBps: number;
}

/**
 * The bandwidth changes to make now: each running shared migration gets an equal share of the link
 * (a migration that ended leaves its share to the others; one that started takes its part). Exclusive
 * ones keep the whole link. Only the migrations whose bandwidth differs are returned.
 */
export function rebalanceShares(running: readonly RunningShare[], bandwidthMiBps: number): { vmId: string; bandwidthMiBps: number }[] {
  const shared = running.filter((r) => !r.exclusive);
  const each = fairShare(bandwidthMiBps, shared.length);
  return shared.filter((r) => r.bandwidthMiBps !== each).map((r) => ({ vmId: r.vmId, bandwidthMiBps: each }));
}

export interface RunView {
  exclusive: boolean;
  state: 'waiting' | 'migrating' | 'done' | 'failed' | 'cancelled';
  /** migrating, with all its data sent: only libvirt's handover is left (see sentAll) */
  sentAll?: boolean;
}

/**
 * Whether a migration has sent all its data and only the handover is left (pure): the destination
 * resuming the guest and the source cleaning up, 1.3-2 s on the lab with the link idle (the status
 * reads running with nothing remaining). Pre-copy only: in post-copy nothing remaining on the
 * source's side does not mean the destination has every page.
 */
export function sentAll(st: Pick<MigrationStatus, 'state' | 'postcopy' | 'iteration' | 'dataProcessed' | 'dataRemaining'> | null | undefined): boolean {
  return st?.state === 'running' && !st.postcopy && st.iteration >= 1 && st.dataProcessed > 0 && st.dataRemaining === 0;
}

/**
 * Which waiting VMs (indices, in order) may start now. A migration that has sent all its data no
 * longer uses the link, so the next starts during its handover (whose time the link would stand
 * idle otherwise); the agent's and the destinations' slot limits still count it. An exclusive VM
 * starts only when nothing else uses the link, and nothing starts beside it; shared ones fill up to
 * `parallel`. The order is kept: nothing passes a waiting exclusive VM.
 */
export function startable(vms: readonly RunView[], parallel: number): number[] {
  const running = vms.filter((v) => v.state === 'migrating' && v.sentAll !== true);
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
