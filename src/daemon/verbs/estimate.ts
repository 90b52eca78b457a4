// VM.estimateMigration: measure the guest's dirty rate with QEMU's page sampling (two periods: the
// rate, and whether the working set is smaller than a longer period reveals), then forecast the
// migration with the calibrated simulator for the chosen policy and for stock auto-converge.
import type { EstimateResult } from '../../api/estimate.js';
import { AgentError } from '../../api/errors.js';
import type { VerbParams } from '../../api/catalog.js';
import type { Policy } from '../../controller/policy.js';
import { DirtyRateError, measureDirtyRate } from '../../libvirt/dirty-rate.js';
import { DomainState, type Domain } from '../../libvirt/types.js';
import type { Logger } from 'pino';
import { sampleGuestZeroPages } from '../../libvirt/guest-zero.js';
import { forecastDirtyRate, freshDirtyRate, LONG_PERIOD_SEC, predictMigration, SHORT_PERIOD_SEC, workingSetFrom } from '../../simulator/predict.js';
import type { AgentContext } from '../context.js';
import { findDomain, libvirtConnection, libvirtFailure } from '../vm-lookup.js';
import type { Verbs } from './types.js';
import { stateName } from './vm.js';

/** Migration throughput when no bandwidth is given: QEMU's stream was CPU-bound at 60-130 MiB/s in
 *  the lab (docs/lab.md); the middle of that range. */
export const DEFAULT_ESTIMATE_BANDWIDTH_MIBPS = 100;

async function measure(domain: Domain, seconds: number): Promise<number> {
  try {
    return (await measureDirtyRate(domain, seconds)).mibPerSec;
  } catch (err) {
    if (err instanceof DirtyRateError) throw new AgentError('MEASUREMENT_FAILED', err.message, { vmId: domain.uuid, kind: err.kind });
    throw libvirtFailure(err, `measuring the dirty rate of ${domain.name}`);
  }
}

/** The QEMU process's resident set, MiB, or undefined when libvirt does not give it: the estimate
 *  then keeps the simulator's default zero-page share rather than failing. */
async function residentMiB(domain: Domain): Promise<number | undefined> {
  const rssKiB = await domain.memoryStats().then((s) => s.rss, () => undefined);
  return rssKiB === undefined ? undefined : Math.round(rssKiB / 1024);
}

/** Guest RAM in zero pages, MiB, sampled from QEMU's memory; undefined (logged) when it cannot be
 *  read (a remote QEMU, no permission): the forecast then falls back to the resident set. */
async function zeroMiBOf(domain: Domain, log: Logger): Promise<number | undefined> {
  try {
    const z = await sampleGuestZeroPages(domain);
    return Math.round(z.share * z.ramMiB);
  } catch (err) {
    log.debug({ event: 'estimate.zero_sample_failed', vm: domain.name, err: err instanceof Error ? err.message : String(err) }, 'zero pages not sampled; the resident set bounds them');
    return undefined;
  }
}

/** Short samples a fresh measurement takes (one before the long period, the rest after it): one 1 s
 *  sample of the lab's steady stress-ng read 0 in 9 of 24 tries (see freshDirtyRate). */
export const FRESH_SHORT_SAMPLES = 3;

export interface GuestMemory {
  /** the QEMU process's resident set, MiB (bounds the non-zero guest memory) */
  residentMiB: number | undefined;
  /** guest RAM in zero pages, sampled, MiB */
  zeroMiB: number | undefined;
}

/** What a forecast needs of the guest's memory beside its dirty rate. */
export async function guestMemory(domain: Domain, log: Logger): Promise<GuestMemory> {
  return { residentMiB: await residentMiB(domain), zeroMiB: await zeroMiBOf(domain, log) };
}

export interface GuestMeasurement extends GuestMemory {
  /** the rate from the short samples (freshDirtyRate), MiB/s */
  shortMiBps: number;
  longMiBps: number;
  measureMs: number;
}

/** The dirty rate (from the short samples), the working set (long period), the resident set and the zero pages
 *  of a running guest. */
export async function measureGuest(domain: Domain, log: Logger): Promise<GuestMeasurement> {
  const started = performance.now();
  const shorts = [await measure(domain, SHORT_PERIOD_SEC)];
  const longMiBps = await measure(domain, LONG_PERIOD_SEC);
  while (shorts.length < FRESH_SHORT_SAMPLES) shorts.push(await measure(domain, SHORT_PERIOD_SEC));
  const shortMiBps = freshDirtyRate(shorts);
  const memory = await guestMemory(domain, log);
  const measureMs = Math.round(performance.now() - started);
  return { shortMiBps, longMiBps, ...memory, measureMs };
}

export interface ForecastRates {
  /** the rate the forecast assumes, MiB/s */
  dirtyMiBps: number;
  /** the agent's recent short samples it read, MiB/s, oldest first */
  recentMiBps: number[];
  ws: { workingSetMiB: number; bounded: boolean };
}

/** What a forecast of this guest assumes from a fresh pair of samples and the agent's recent ones:
 *  one fresh sample can miss most of a guest's writes (see forecastDirtyRate). */
export function forecastRates(ctx: AgentContext, vmUuid: string, fresh: { shortMiBps: number; longMiBps: number }, ramMiB: number): ForecastRates {
  const recentMiBps = ctx.dirtyHistory?.recent(vmUuid) ?? [];
  const dirtyMiBps = forecastDirtyRate(fresh.shortMiBps, recentMiBps);
  return { dirtyMiBps, recentMiBps, ws: workingSetFrom({ shortMiBps: dirtyMiBps, longMiBps: fresh.longMiBps, longSec: LONG_PERIOD_SEC, ramMiB }) };
}

async function estimate(ctx: AgentContext, p: VerbParams<'VM.estimateMigration'>): Promise<EstimateResult> {
  const policy = ctx.controllers.resolve(p.policy).policy as Policy;
  const conn = await libvirtConnection(ctx.libvirt);
  const domain = await findDomain(conn, p.vmId);
  const [{ state }, info] = await Promise.all([domain.getState(), domain.getInfo()]).catch((e: unknown) => Promise.reject(libvirtFailure(e, `reading VM ${domain.name}`)));
  if (state !== DomainState.RUNNING) {
    throw new AgentError('VM_NOT_RUNNING', `VM ${domain.name} is ${stateName(state)}: its dirty rate cannot be measured`, { vmId: domain.uuid, state: stateName(state) });
  }
  const ramMiB = Math.round(info.maxMemKiB / 1024);
  const { shortMiBps, longMiBps, residentMiB: resident, zeroMiB, measureMs } = await measureGuest(domain, ctx.logger);
  const bandwidthMiBps = p.bandwidth ?? policy.bandwidthMiBps ?? DEFAULT_ESTIMATE_BANDWIDTH_MIBPS;
  const { dirtyMiBps, recentMiBps, ws } = forecastRates(ctx, domain.uuid, { shortMiBps, longMiBps }, ramMiB);
  const forecast = predictMigration({ ramMiB, dirtyMiBps, workingSetMiB: ws.workingSetMiB, bandwidthMiBps, recentDirtyMiBps: recentMiBps, ...(resident !== undefined ? { residentMiB: resident } : {}), ...(zeroMiB !== undefined ? { zeroMiB } : {}) }, policy);
  ctx.logger.info({ vm: domain.name, shortMiBps, longMiBps, dirtyMiBps, recentSamples: recentMiBps.length, workingSetMiB: ws.workingSetMiB, residentMiB: resident, zeroMiB, bandwidthMiBps, policy: policy.name, forecast }, 'migration estimated');
  return {
    vmId: domain.uuid,
    vmName: domain.name,
    measured: { dirtyRateMiBps: dirtyMiBps, sampledDirtyRateMiBps: shortMiBps, recentSamples: recentMiBps.length, workingSetMiB: ws.workingSetMiB, workingSetMeasured: ws.bounded, ramMiB, ...(resident !== undefined ? { residentMiB: resident } : {}), ...(zeroMiB !== undefined ? { zeroMiB } : {}), bandwidthMiBps, measureMs },
    convergesWithoutThrottle: forecast.convergesWithoutThrottle,
    prediction: forecast.prediction,
    stock: forecast.stock,
  };
}

export function estimateVerbs(ctx: AgentContext): Verbs {
  return { 'VM.estimateMigration': (p) => estimate(ctx, p) };
}
