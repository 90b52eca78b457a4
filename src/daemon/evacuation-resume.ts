// At start-up, after the migrations are adopted (./orphans.ts): the evacuations the previous agent
// process recorded. Ended ones are kept for their status; an unfinished one goes on under the same
// evacuationId, following the adopted migrations to their end and starting the VMs not yet moved.
// Decisions are in src/evacuation/resume.ts; this file does the looking.
import type { EvacuationStatus } from '../api/evacuation.js';
import { pickResumable, resumedStatus, vmsToLook, type FoundHere, type VmNow } from '../evacuation/resume.js';
import type { EvacuationStore } from '../evacuation/store.js';
import { isNoDomain } from '../libvirt/errors.js';
import { DomainState } from '../libvirt/types.js';
import type { AgentContext } from './context.js';
import { findVm } from './orphans.js';
import { runEvacuation } from './verbs/evacuate.js';

/** libvirt's virDomainShutoffReason MIGRATED. */
const SHUTOFF_MIGRATED = 4;

async function foundHere(ctx: AgentContext, vmId: string): Promise<FoundHere> {
  let domain;
  try {
    domain = await (await ctx.libvirt.get()).lookupByUuid(vmId);
  } catch (err) {
    if (isNoDomain(err)) return { present: false };
    throw err;
  }
  const vm = await findVm(domain);
  if (!vm.present) return { present: false };
  const st = await domain.getState().catch((err: unknown) => (isNoDomain(err) ? null : Promise.reject(err)));
  if (!st) return { present: false };
  return { present: true, migratedAway: st.state === DomainState.SHUTOFF && st.reason === SHUTOFF_MIGRATED, jobActive: vm.jobActive };
}

async function vmNow(ctx: AgentContext, vmId: string): Promise<VmNow> {
  const m = ctx.manager.find(vmId)?.snapshot();
  return { followed: m ? { migrationId: m.migrationId, startedAtMs: Date.parse(m.startedAt) } : null, found: await foundHere(ctx, vmId) };
}

export async function resumeEvacuations(ctx: AgentContext, store: EvacuationStore): Promise<void> {
  const { records, setAside } = store.load();
  for (const s of setAside) {
    ctx.logger.warn({ event: 'evacuation.record_corrupt', file: s.file, movedTo: s.movedTo, reason: s.reason }, `an evacuation record could not be read; set aside as ${s.movedTo}: ${s.reason}`);
  }
  const { resume, close } = pickResumable(records);
  for (const r of records) {
    if (r === resume) continue;
    let status: EvacuationStatus = r.status;
    if (close.includes(r)) {
      // another evacuation was recorded later: this one cannot go on beside it
      status = { ...r.status, state: 'cancelled', endedAt: new Date().toISOString(), error: { code: -32603, name: 'INTERNAL_ERROR', message: 'left unfinished by a previous agent process while a later evacuation was recorded; not resumed' } };
      store.save({ ...r, status });
    }
    ctx.evacuations.restore(status);
  }
  if (!resume) return;
  const log = ctx.logger.child({ evacuationId: resume.evacuationId });
  const now = new Map<string, VmNow>();
  for (const vmId of vmsToLook(resume)) now.set(vmId, await vmNow(ctx, vmId));
  const { status, decisions } = resumedStatus(resume, now);
  for (const [vmId, d] of decisions) {
    if (d.kind === 'keep') continue;
    const vmName = status.vms.find((v) => v.vmId === vmId)?.vmName;
    log[d.kind === 'stuck' ? 'warn' : 'info']({ event: 'evacuation.vm_resumed', vmId, vmName, decision: d.kind, reason: d.reason }, `${vmName}: ${d.reason}`);
  }
  runEvacuation(ctx, resume.evacuationId, resume.request, resume.vms, { status, parallel: resume.parallel, cancelRequested: resume.cancelRequested });
  log.info({ event: 'evacuation.resumed', state: status.state, vms: status.vms.length }, 'went on with the evacuation left by a previous agent process');
}
