// VM.* verbs: list, migrate, migrateStatus, migrateCancel, migrateChangeParams, and the
// destination-side migrationCreate / migrationEnd.
import { randomUUID } from 'node:crypto';
import { AgentError } from '../../api/errors.js';
import type { VerbParams } from '../../api/catalog.js';
import type { MigrateResult, MigrationStatus, VmSummary } from '../../api/results.js';
import { measureDirtyRate } from '../../libvirt/dirty-rate.js';
import { DomainState, type Domain, type DomainStateCode } from '../../libvirt/types.js';
import { checkClientDestination, destinationKey, resolveDestination } from '../../migration/destination.js';
import { destinationRules } from '../security/destination-rules.js';
import { libvirtMigrationArgs } from '../../migration/plan.js';
import { Migration } from '../../migration/migration.js';
import { destinationProbe } from '../../migration/probe.js';
import { readMigrationParams } from '../../migration/restore.js';
import type { AgentContext } from '../context.js';
import { findDomain, libvirtConnection } from '../vm-lookup.js';
import { localHost } from './host.js';
import type { Verbs } from './types.js';

/** how long VM.migrate waits for an outgoing slot when neither the call nor the config says */
export const DEFAULT_QUEUE_TIMEOUT_SEC = 600;

const STATE_NAMES: Record<DomainStateCode, string> = {
  [DomainState.NOSTATE]: 'nostate',
  [DomainState.RUNNING]: 'running',
  [DomainState.BLOCKED]: 'blocked',
  [DomainState.PAUSED]: 'paused',
  [DomainState.SHUTDOWN]: 'shutdown',
  [DomainState.SHUTOFF]: 'shutoff',
  [DomainState.CRASHED]: 'crashed',
  [DomainState.PMSUSPENDED]: 'pmsuspended',
};

export function stateName(code: DomainStateCode): string {
  return STATE_NAMES[code] ?? `unknown(${code})`;
}

async function listVms(ctx: AgentContext): Promise<VmSummary[]> {
  const conn = await libvirtConnection(ctx.libvirt);
  const domains = await conn.listAllDomains();
  return domains.map((d) => ({ id: d.id, uuid: d.uuid, name: d.name, state: stateName(d.state) }));
}

/** page-sampling period at the start of a steered migration, s: short, because the plan for the
 *  first pass waits for it, and a short period tells the rate best (a longer one reads working set / period) */
export const PRE_MIGRATION_MEASURE_SEC = 1;
/** how long after its period a measurement may take before the controller goes on without it */
const PRE_MIGRATION_MEASURE_GRACE_MS = 2_000;

/** What the agent itself knows about a migration it starts (not part of the API). */
export interface LaunchFacts {
  /** the guest's dirty rate, measured a moment ago (an evacuation's plan): no second measurement */
  measuredDirtyMiBps?: number;
}

/** VM.migrate; also what an evacuation starts each migration with. */
export async function migrate(ctx: AgentContext, p: VerbParams<'VM.migrate'>, facts: LaunchFacts = {}): Promise<MigrateResult> {
  const rules = destinationRules(ctx.settings);
  // before anything else is looked at: a refused URI must never get near libvirt
  checkClientDestination(p.dst, rules);
  const policy = ctx.controllers.resolve(p.policy);
  const conn = await libvirtConnection(ctx.libvirt);
  const domain = await findDomain(conn, p.vmId);
  await checkRunning(domain);
  const migrationId = randomUUID();
  const result = { migrationId, vmId: domain.uuid, vmName: domain.name };
  // before the claim: from claim to enqueue nothing may wait, or a slot could free unseen meanwhile
  const here = await localHost(ctx);
  if (ctx.manager.claim(domain.uuid, domain.name, p.queue !== false) === 'start') {
    try {
      await launch(ctx, p, domain, migrationId, facts);
      return { ...result, state: 'pending' };
    } finally {
      ctx.manager.release(domain.uuid);
    }
  }
  // Outgoing slots are full: wait in the FIFO; the destination is asked only when a slot frees.
  const timeoutSec = p.queueTimeoutSec ?? ctx.settings.queueTimeoutSec ?? DEFAULT_QUEUE_TIMEOUT_SEC;
  const waiting = ctx.manager.enqueue(
    {
      migrationId,
      vmUuid: domain.uuid,
      vmName: domain.name,
      source: here.name,
      destination: destinationKey(p.dst),
      policyName: policy.name,
      tls: p.tls ?? ctx.settings.migrationTls ?? false,
    },
    timeoutSec * 1000,
    // a fresh handle: the libvirt connection may have been re-opened while it waited
    // a measurement handed in is stale by the time a queued migration starts: measure afresh then
    async () => launch(ctx, p, await findDomain(await ctx.libvirt.get(), domain.uuid), migrationId),
    ctx.logger,
  );
  return { ...result, state: 'queued', queuePosition: waiting.snapshot().queuePosition ?? 1 };
}

async function checkRunning(domain: Domain): Promise<void> {
  const { state } = await domain.getState();
  if (state !== DomainState.RUNNING && state !== DomainState.PAUSED) {
    throw new AgentError('VM_NOT_RUNNING', `VM ${domain.name} is ${stateName(state)}, not running: nothing to live-migrate`, { vmId: domain.uuid, state: stateName(state) });
  }
}

/** Admission at the destination, then the migration itself; the caller holds an outgoing slot. */
async function launch(ctx: AgentContext, p: VerbParams<'VM.migrate'>, domain: Domain, migrationId: string, facts: LaunchFacts = {}): Promise<Migration> {
  const rules = destinationRules(ctx.settings);
  const policy = ctx.controllers.resolve(p.policy);
  // again: a VM that waited in the queue may have stopped meanwhile
  await checkRunning(domain);
  const info = await domain.getInfo();
  const here = await localHost(ctx);
  // post-copy only when asked for: VM.migrate `postcopy`, or a policy that allows it
  const postcopy = p.postcopy ?? policy.allowPostcopy;
  const tls = p.tls ?? ctx.settings.migrationTls ?? false;
  const dst = await resolveDestination(p.dst, {
    vmUuid: domain.uuid,
    vmName: domain.name,
    memoryBytes: info.memoryKiB * 1024,
    sourceName: here.name,
    sourceHostUuid: here.hostUuid,
  }, rules);
  try {
    const migrationUri = dst.migrationUri;
    const { params, flags } = libvirtMigrationArgs({ ...p, postcopy, tls, ...(migrationUri ? { migrationUri } : {}) });
    const controller = ctx.controllers.create(policy, {
      guestRamBytes: info.maxMemKiB * 1024,
      postcopyEnabled: postcopy,
      ...(p.bandwidth !== undefined ? { bandwidthMiBps: p.bandwidth } : {}),
      ...(p.maxDowntime !== undefined ? { downtimeLimitMs: p.maxDowntime } : {}),
      ...(p.autoConvergeInitial !== undefined ? { autoConvergeInitial: p.autoConvergeInitial } : {}),
      ...(p.autoConvergeIncrement !== undefined ? { autoConvergeIncrement: p.autoConvergeIncrement } : {}),
      ...(facts.measuredDirtyMiBps !== undefined ? { measuredDirtyMiBps: facts.measuredDirtyMiBps } : {}),
      ...(ctx.dirtyHistory ? { recentDirtyMiBps: ctx.dirtyHistory.recent(domain.uuid) } : {}),
    });
    // a steered migration measures the guest while its first pass runs (started through QEMU's monitor:
    // libvirt's own call would wait for the migration job to end)
    const measure = controller !== null && facts.measuredDirtyMiBps === undefined
      ? { measureDirtyRate: async () => (await measureDirtyRate(domain, PRE_MIGRATION_MEASURE_SEC, { graceMs: PRE_MIGRATION_MEASURE_GRACE_MS, start: 'monitor' })).mibPerSec }
      : {};
    // QEMU's own bandwidth limit before libvirt caps it for the migration (put back if a dying libvirtd leaves the cap)
    const bandwidthBefore = await readMigrationParams(domain).then((q) => q['max-bandwidth'], () => undefined);
    const migration = ctx.manager.start(
      {
        migrationId,
        ...(bandwidthBefore !== undefined ? { bandwidthBefore } : {}),
        domain,
        vmUuid: domain.uuid,
        vmName: domain.name,
        source: here.name,
        destination: dst.display,
        dconnuri: dst.dconnuri,
        params,
        flags,
        policyName: policy.name,
        controller,
        ...measure,
        ...(controller === null ? { completionTimeoutMs: policy.completionTimeoutMs(info.maxMemKiB * 1024) } : {}),
        transferStallMs: policy.transferStallMs,
        postcopyRecoveryMs: policy.postcopyRecoveryMs,
        reacquire: async () => (await ctx.libvirt.get()).lookupByUuid(domain.uuid),
        ...destinationProbe(dst.dconnuri, domain.uuid),
        intervalMs: ctx.settings.monitorIntervalMs,
        sampleTimeoutMs: ctx.settings.sampleTimeoutMs,
        logger: ctx.logger,
      },
      {
        ...(typeof p.dst === 'string' ? { destinationAgent: p.dst } : p.dst.agent !== undefined ? { destinationAgent: p.dst.agent } : {}),
        policy: policy.policy,
        guestRamBytes: info.maxMemKiB * 1024,
        postcopy,
      },
      () => dst.release(),
    );
    // With a controller, the requested downtime is its starting point (see controllers.ts).
    if (p.maxDowntime !== undefined && controller === null) {
      void migration.applyExternal({ type: 'set-downtime', ms: p.maxDowntime, reason: 'requested with VM.migrate' });
    }
    return migration;
  } catch (err) {
    await dst.release();
    throw err;
  }
}

/** VM.migrateChangeParams; also how an evacuation rebalances the shares of its running migrations. */
export async function changeParams(ctx: AgentContext, p: VerbParams<'VM.migrateChangeParams'>): Promise<MigrationStatus> {
  const migration = ctx.manager.get(p.vmId);
  if (!migration.active) {
    throw new AgentError('NO_MIGRATION', `migration of VM ${migration.status.vmName} already ended (${migration.status.state})`);
  }
  if (!(migration instanceof Migration)) {
    throw new AgentError('NO_MIGRATION', `migration of VM ${migration.status.vmName} has not started yet (${migration.status.state}); cancel it and ask again with the new parameters`);
  }
  const why = 'VM.migrateChangeParams';
  const controller = migration.controller;
  if (controller) {
    // Through the controller, so that it steers within the new limits instead of fighting them.
    const { actions, policyName } = ctx.controllers.change(controller, {
      policy: p.policy,
      ...(p.maxThrottle !== undefined ? { maxThrottle: p.maxThrottle } : {}),
      ...(p.maxDowntime !== undefined ? { downtimeMs: p.maxDowntime } : {}),
      ...(p.bandwidth !== undefined ? { bandwidthMiBps: p.bandwidth } : {}),
    });
    migration.setPolicyName(policyName);
    for (const action of actions) await migration.applyExternal({ ...action, reason: `${why}: ${action.reason}` });
    return migration.snapshot();
  }
  if (p.policy !== undefined) {
    throw new AgentError('INVALID_POLICY', `migration of VM ${migration.status.vmName} runs without a controller (policy ${migration.status.policy}); its policy cannot change mid-flight`);
  }
  if (p.bandwidth !== undefined) await migration.applyExternal({ type: 'set-bandwidth', mibPerSec: p.bandwidth, reason: why });
  if (p.maxDowntime !== undefined) await migration.applyExternal({ type: 'set-downtime', ms: p.maxDowntime, reason: why });
  if (p.maxThrottle !== undefined) {
    await migration.applyExternal({ type: 'set-throttle', params: { 'max-cpu-throttle': p.maxThrottle }, reason: why });
  }
  return migration.snapshot();
}

export function vmVerbs(ctx: AgentContext): Verbs {
  return {
    'VM.list': () => listVms(ctx),
    'VM.migrate': (params) => migrate(ctx, params),
    'VM.migrateStatus': async (p) => ctx.manager.get(p.vmId).snapshot(),
    'VM.migrateCancel': async (p) => {
      const migration = ctx.manager.get(p.vmId);
      await migration.cancel();
      return migration.done;
    },
    'VM.migrateChangeParams': (params) => changeParams(ctx, params),
    'VM.migrationCreate': async (req, caller) => {
      const here = await localHost(ctx);
      const conn = await libvirtConnection(ctx.libvirt);
      // A restarted source re-admits a migration already under way: the incoming copy here exists,
      // paused; only a copy already running refuses it.
      const running = (await conn.listAllDomains()).some((d) => d.uuid === req.vmUuid && d.active && (!req.resume || d.state === DomainState.RUNNING));
      const admission = ctx.desk.admit(req, here, running);
      // The source agent holds this connection for the whole migration: if it goes away (ended,
      // crashed, or already gone while we looked), the slot is freed without waiting for VM.migrationEnd.
      caller.onClose(() => ctx.desk.end(admission.admissionId));
      return admission;
    },
    'VM.migrationEnd': async (p) => {
      ctx.desk.end(p.admissionId);
      return { ok: true as const };
    },
  };
}
