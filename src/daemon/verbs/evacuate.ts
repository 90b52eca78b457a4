// Host.evacuate / evacuationStatus / evacuationCancel: the evacuation runner (src/evacuation) wired
// to this agent's own VM.migrate, migration registry, dirty-rate measurement and peer connections.
import { randomUUID } from 'node:crypto';
import type { VerbParams } from '../../api/catalog.js';
import type { Policy } from '../../controller/policy.js';
import type { EvacuationHooks, EvacuationPorts } from '../../evacuation/runner.js';
import { toRecord, type EvacuationRequest, type VmToMove } from '../../evacuation/record.js';
import { DomainState } from '../../libvirt/types.js';
import { destinationCapabilities, destinationKey } from '../../migration/destination.js';
import { destinationRules } from '../security/destination-rules.js';
import type { AgentContext } from '../context.js';
import { findDomain, libvirtConnection, libvirtFailure } from '../vm-lookup.js';
import { DEFAULT_ESTIMATE_BANDWIDTH_MIBPS, forecastRates, guestMemory, measureGuest } from './estimate.js';
import type { Verbs } from './types.js';
import { changeParams, migrate } from './vm.js';
import { sampleHostLoad } from '../host-load.js';

/** The agent's own dirty-rate samples stand for a measurement while they are this young (a short
 *  sample every few seconds, a long one every 20 s). */
const HISTORY_FRESH_MS = 30_000;

type Vm = VmToMove;

async function vmsToMove(ctx: AgentContext, vmIds: string[] | undefined): Promise<Vm[]> {
  const conn = await libvirtConnection(ctx.libvirt);
  const domains = vmIds
    ? await Promise.all([...new Set(vmIds)].map((id) => findDomain(conn, id)))
    : await Promise.all((await conn.listAllDomains()).filter((d) => d.state === DomainState.RUNNING).map((d) => conn.lookupByUuid(d.uuid)));
  const seen = new Set<string>();
  const out: Vm[] = [];
  for (const d of domains) {
    if (seen.has(d.uuid)) continue; // named twice (name and UUID)
    seen.add(d.uuid);
    const info = await d.getInfo().catch((e: unknown) => Promise.reject(libvirtFailure(e, `reading VM ${d.name}`)));
    out.push({ vmId: d.uuid, vmName: d.name, ramMiB: Math.round(info.maxMemKiB / 1024) });
  }
  return out;
}

function ports(ctx: AgentContext, policy: EvacuationRequest['policy'], vms: Vm[]): EvacuationPorts {
  const rules = destinationRules(ctx.settings);
  return {
    vms: async () => vms,
    measure: async (vmId) => {
      const conn = await ctx.libvirt.get();
      const domain = await conn.lookupByUuid(vmId);
      const ramMiB = vms.find((v) => v.vmId === vmId)?.ramMiB ?? Math.round((await domain.getInfo()).maxMemKiB / 1024);
      // the agent's own recent samples, when fresh: the plan need not wait for a measurement
      const recent = ctx.dirtyHistory?.pair(vmId, HISTORY_FRESH_MS);
      const m = recent ? { ...recent, ...(await guestMemory(domain, ctx.logger)) } : await measureGuest(domain, ctx.logger);
      const f = forecastRates(ctx, vmId, m, ramMiB);
      return { dirtyRateMiBps: f.dirtyMiBps, workingSetMiB: f.ws.workingSetMiB, ...(m.residentMiB !== undefined ? { residentMiB: m.residentMiB } : {}), ...(m.zeroMiB !== undefined ? { zeroMiB: m.zeroMiB } : {}) };
    },
    capacity: async (dst) => {
      const caps = await destinationCapabilities(destinationKey(dst), rules);
      return { name: caps.name, memoryFreeMiB: caps.capacity.memoryFreeMiB, incomingSlotsFree: caps.capacity.incomingSlotsFree };
    },
    // queue: false: the evacuation keeps its own order and count; a full host answers at once and it waits
    migrate: (vmId, dst, bandwidth, measuredDirtyMiBps) =>
      migrate(ctx, { vmId, dst, bandwidth, queue: false, ...(policy !== undefined ? { policy } : {}) }, measuredDirtyMiBps !== undefined ? { measuredDirtyMiBps } : {}),
    status: (vmId) => ctx.manager.find(vmId)?.snapshot() ?? null,
    cancel: async (vmId) => {
      await ctx.manager.get(vmId).cancel();
    },
    // as VM.migrateChangeParams `bandwidth`: through the controller when one steers the migration
    setBandwidth: async (vmId, bandwidth) => {
      await changeParams(ctx, { vmId, bandwidth });
    },
    hostLoad: async (vmIds) => {
      const conn = await ctx.libvirt.get();
      const domains = await Promise.all(vmIds.map((id) => conn.lookupByUuid(id)));
      const host = await sampleHostLoad(domains);
      if (host) ctx.logger.info({ event: 'evacuation.host_load', cores: host.load.cores, runnable: Math.round(host.load.runnable * 10) / 10, demand: Object.fromEntries([...host.demand].map(([k, v]) => [k, Math.round(v * 100) / 100])) }, 'source host load measured for the plan');
      return host;
    },
  };
}

/** Each change recorded in the state directory (when the agent has one). */
function persistence(ctx: AgentContext, request: EvacuationRequest, vms: Vm[], evacuationId: string): Pick<EvacuationHooks, 'save' | 'onSaveError'> {
  const store = ctx.evacuationStore;
  if (!store) return {};
  let warned = false;
  return {
    save: (state) => {
      store.save(toRecord(request, vms, state));
      warned = false;
    },
    onSaveError: (err) => {
      if (!warned) ctx.logger.warn({ event: 'evacuation.state_write_failed', evacuationId, err: String(err) }, 'could not record the evacuation; a restarted agent would go on from an older record');
      warned = true;
    },
  };
}

/** Starts (or, with `from`, resumes) an evacuation under this agent. */
export function runEvacuation(ctx: AgentContext, evacuationId: string, request: EvacuationRequest, vms: Vm[], from?: EvacuationHooks['from']): void {
  let policy: Policy;
  try {
    policy = ctx.controllers.resolve(request.policy).policy as Policy;
  } catch (err) {
    if (!from) throw err;
    // resumed: the request was valid when it came; a policy that no longer resolves gives way to the default
    ctx.logger.warn({ event: 'evacuation.policy_unresolved', evacuationId, err: String(err) }, 'the evacuation\'s policy no longer resolves; the default policy steers what it starts');
    policy = ctx.controllers.resolve(undefined).policy as Policy;
  }
  const e = ctx.evacuations.start(
    { evacuationId, destinations: request.destinations, policy, maxParallel: request.maxParallel, bandwidthMiBps: request.bandwidthMiBps },
    ports(ctx, request.policy, vms),
    {
      ...persistence(ctx, request, vms, evacuationId),
      onRebalanceError: (vmId, bandwidthMiBps, err) =>
        ctx.logger.warn({ event: 'evacuation.rebalance_failed', evacuationId, vmId, bandwidthMiBps, err: String(err) }, 'could not change a running migration\'s share of the link; it keeps its share'),
      ...(from ? { from } : {}),
    },
  );
  void e.done.then((s) => {
    if (s.state === 'finished' || s.state === 'cancelled') ctx.logger.info({ event: 'evacuation.ended', evacuationId, state: s.state, totals: s.totals, error: s.error }, 'evacuation ended');
  });
}

async function evacuate(ctx: AgentContext, p: VerbParams<'Host.evacuate'>): Promise<{ evacuationId: string }> {
  const policy = ctx.controllers.resolve(p.policy).policy as Policy;
  const vms = await vmsToMove(ctx, p.vmIds);
  const evacuationId = randomUUID();
  const request: EvacuationRequest = {
    destinations: p.destinations,
    ...(p.policy !== undefined ? { policy: p.policy } : {}),
    maxParallel: Math.min(p.maxParallel ?? ctx.manager.limit, ctx.manager.limit),
    bandwidthMiBps: p.bandwidth ?? policy.bandwidthMiBps ?? DEFAULT_ESTIMATE_BANDWIDTH_MIBPS,
  };
  runEvacuation(ctx, evacuationId, request, vms);
  ctx.logger.info({ event: 'evacuation.started', evacuationId, vms: vms.map((v) => v.vmName), destinations: p.destinations.map(destinationKey) }, 'evacuation started');
  return { evacuationId };
}

export function evacuationVerbs(ctx: AgentContext): Verbs {
  return {
    'Host.evacuate': (p) => evacuate(ctx, p),
    'Host.evacuationStatus': async (p) => ctx.evacuations.get(p.evacuationId).snapshot(),
    'Host.evacuationCancel': async (p) => {
      const e = ctx.evacuations.get(p.evacuationId);
      await e.cancel(p.abortRunning ?? false);
      return e.snapshot();
    },
  };
}

