// At start-up: re-attach to the migrations the previous agent process recorded (it crashed or was
// killed; libvirt carries a peer-to-peer migration on without its client). Each goes on under its
// own migrationId: followed by job statistics and events instead of a migrate call, steered from the
// controller's saved state, with the destination's admission taken again. A job this agent did not
// start is never touched. Decisions are in src/migration/adoption.ts; this file does the looking.
import type { Logger } from 'pino';
import { qemuParams, resumeController, snapshotOriginal, type ControllerPort, type QemuParams } from '../controller/index.js';
import { isNoDomain } from '../libvirt/errors.js';
import { isJobActive, JobOperation, type Domain } from '../libvirt/types.js';
import { decideAdoption, type FoundVm, type SteeringFound } from '../migration/adoption.js';
import { resolveDestination } from '../migration/destination.js';
import { followJob } from '../migration/follow.js';
import { goneDomain } from '../migration/gone-domain.js';
import type { LedgerEntry, MigrationLedger } from '../migration/ledger.js';
import type { MigrationPlan } from '../migration/migration.js';
import type { AgentContext, ResolvedPolicy } from './context.js';
import { destinationProbe } from '../migration/probe.js';
import { destinationRules } from './security/destination-rules.js';

export async function findVm(domain: Domain | null): Promise<FoundVm> {
  if (!domain) return { present: false };
  let stats: Awaited<ReturnType<Domain['getJobStats']>>;
  try {
    stats = await domain.getJobStats();
  } catch (err) {
    // the migration ended (and the transient source domain went) between the lookup and this call
    if (isNoDomain(err)) return { present: false };
    throw err;
  }
  const elapsed = stats.time_elapsed;
  return {
    present: true,
    jobActive: isJobActive(stats.type),
    outgoing: stats.operation === undefined || stats.operation === JobOperation.MIGRATION_OUT,
    postcopy: (stats.memory_postcopy_requests ?? 0) > 0,
    ...(typeof elapsed === 'number' && elapsed > 0 ? { jobStartedAtMs: Date.now() - elapsed } : {}),
  };
}

async function lookup(ctx: AgentContext, uuid: string): Promise<Domain | null> {
  try {
    return await (await ctx.libvirt.get()).lookupByUuid(uuid);
  } catch (err) {
    if (isNoDomain(err)) return null;
    throw err;
  }
}

/** The stall and post-copy limits of the policy the migration started with (its defaults if that
 *  policy no longer resolves). */
function runtimeLimits(ctx: AgentContext, entry: LedgerEntry): { transferStallMs: number; postcopyRecoveryMs: number } {
  let policy: ResolvedPolicy;
  try {
    policy = ctx.controllers.resolve(entry.plan.policy);
  } catch {
    policy = ctx.controllers.resolve(undefined);
  }
  return { transferStallMs: policy.transferStallMs, postcopyRecoveryMs: policy.postcopyRecoveryMs };
}

/** The controller as its predecessor left it, or why not. */
function restoreSteering(entry: LedgerEntry): { steering: SteeringFound; controller: ControllerPort | null } {
  if (entry.controller === null) return { steering: { kind: 'none' }, controller: null };
  try {
    return { steering: { kind: 'restored' }, controller: resumeController(entry.controller) };
  } catch (err) {
    return { steering: { kind: 'lost', why: err instanceof Error ? err.message : String(err) }, controller: null };
  }
}

/** QEMU's parameters before the migration: from the controller's snapshot, else from the plan. */
function originalParams(entry: LedgerEntry): QemuParams {
  try {
    return snapshotOriginal(entry.controller);
  } catch {
    const p = entry.plan.params;
    const bandwidth = p.bandwidth;
    return qemuParams(typeof bandwidth === 'number' ? { bandwidthMiBps: bandwidth } : {});
  }
}

async function adoptOne(ctx: AgentContext, ledger: MigrationLedger, entry: LedgerEntry, log: Logger): Promise<void> {
  const domain = await lookup(ctx, entry.vmUuid);
  const vm = await findVm(domain);
  const { steering, controller } = restoreSteering(entry);
  let onLostState: 'continue-unsteered' | 'abort' = 'continue-unsteered';
  let completionTimeoutMs = entry.plan.completionTimeoutMs;
  if (steering.kind === 'lost') {
    // the policy it started with decides, and its completion timeout bounds the unsteered run
    try {
      const policy = ctx.controllers.resolve(entry.plan.policy);
      onLostState = (policy.policy as { lostStateAction?: 'continue-unsteered' | 'abort' }).lostStateAction ?? 'continue-unsteered';
      completionTimeoutMs = policy.completionTimeoutMs(entry.plan.guestRamBytes);
    } catch {
      onLostState = 'continue-unsteered';
    }
  }
  const decision = decideAdoption({ vm, recordedStartMs: Date.parse(entry.startedAt), steering, policyName: entry.plan.policyName, onLostState });
  if (decision.kind === 'foreign') {
    log.warn({ event: 'migration.adopt_foreign', reason: decision.reason }, `not adopted, left alone: ${decision.reason}`);
    ledger.remove(entry.migrationId);
    return;
  }

  // The destination's admission was held by the dead process's connection and freed with it.
  let release = async (): Promise<void> => {};
  const agentUrl = entry.plan.destinationAgent;
  if (agentUrl !== undefined && vm.present && vm.jobActive) {
    try {
      const here = await (await ctx.libvirt.get()).getHostUuid();
      const info = domain ? await domain.getInfo() : null;
      const dst = await resolveDestination(agentUrl, {
        vmUuid: entry.vmUuid,
        vmName: entry.vmName,
        memoryBytes: (info?.memoryKiB ?? 0) * 1024,
        sourceName: entry.source,
        sourceHostUuid: here,
        resume: true,
      }, destinationRules(ctx.settings));
      release = () => dst.release();
      log.info({ event: 'migration.readmitted', destination: agentUrl }, 'the destination admitted the adopted migration again');
    } catch (err) {
      log.warn({ event: 'migration.readmit_failed', destination: agentUrl, err: String(err) }, 'the destination did not admit the adopted migration again; it goes on without an admission slot');
    }
  }

  const plan: MigrationPlan = {
    migrationId: entry.migrationId,
    domain: domain ?? goneDomain(entry.vmUuid, entry.vmName),
    vmUuid: entry.vmUuid,
    vmName: entry.vmName,
    source: entry.source,
    destination: entry.plan.destination,
    dconnuri: entry.plan.dconnuri,
    params: entry.plan.params,
    flags: entry.plan.flags,
    policyName: entry.plan.policyName,
    controller,
    ...(controller === null && completionTimeoutMs !== undefined ? { completionTimeoutMs } : {}),
    ...runtimeLimits(ctx, entry),
    reacquire: async () => (await ctx.libvirt.get()).lookupByUuid(entry.vmUuid),
    ...destinationProbe(entry.plan.dconnuri, entry.vmUuid),
    // the controller, when resumed, restores what it changed; what it could not know comes from here
    originalParams: originalParams(entry),
    intervalMs: ctx.settings.monitorIntervalMs,
    sampleTimeoutMs: ctx.settings.sampleTimeoutMs,
    logger: ctx.logger,
  };
  const follow = (): Promise<void> =>
    followJob(plan.domain, {
      intervalMs: Math.min(500, ctx.settings.monitorIntervalMs),
      dconnuri: entry.plan.dconnuri,
      onUnverified: (why) => log.warn({ event: 'migration.end_unverified', why }, 'the VM left this host; whether it runs on the destination could not be checked'),
    });
  const adoption = { adoptedAt: new Date().toISOString(), steering: decision.steering, reason: decision.reason };
  const migration = ctx.manager.adopt(plan, entry, adoption, follow, release);
  const level = decision.kind === 'abort' || decision.steering === 'unsteered' ? 'warn' : 'info';
  log[level]({ event: 'migration.adopted', steering: decision.steering, decision: decision.kind, reason: decision.reason }, `adopted a migration left by a previous agent process: ${decision.reason}`);
  if (decision.kind === 'abort') void migration.applyExternal({ type: 'abort', reason: decision.reason });
}

export async function adoptRecorded(ctx: AgentContext, ledger: MigrationLedger): Promise<void> {
  for (const name of ledger.cleanStaleTmp()) ctx.logger.info({ event: 'ledger.tmp_removed', file: name }, `removed an unfinished write from the state directory: ${name}`);
  const { entries, setAside } = ledger.entries();
  for (const s of setAside) {
    ctx.logger.warn({ event: 'ledger.corrupt', file: s.file, movedTo: s.movedTo, reason: s.reason }, `a migration record could not be read; set aside as ${s.movedTo}: ${s.reason}`);
  }
  for (const entry of entries) {
    const log = ctx.logger.child({ migrationId: entry.migrationId, vmId: entry.vmUuid, vmName: entry.vmName });
    for (let attempt = 1; ; attempt++) {
      try {
        await adoptOne(ctx, ledger, entry, log);
        break;
      } catch (err) {
        // a libvirtd that is slow or restarting right now; a few tries, then keep the record for the next start
        if (attempt < ADOPT_ATTEMPTS) {
          log.warn({ event: 'migration.adopt_retry', attempt, err: String(err) }, 'could not check a migration left by a previous agent process; trying again');
          await new Promise((r) => setTimeout(r, ADOPT_RETRY_MS * attempt));
          continue;
        }
        log.error({ event: 'migration.adopt_failed', err: String(err) }, 'could not check a migration left by a previous agent process');
        break;
      }
    }
  }
}

const ADOPT_ATTEMPTS = 5;
const ADOPT_RETRY_MS = 1000;
