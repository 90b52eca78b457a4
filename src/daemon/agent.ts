// Assembles the agent: libvirt link, migration registry, admission desk, verbs and the RPC server.
// Effects only; every decision lives in the parts it wires together.
import type { Logger } from 'pino';
import { isMigrationActive } from '../api/results.js';
import { MigrationManager } from '../migration/manager.js';
import { AdmissionDesk } from '../migration/admission.js';
import { EvacuationRegistry } from '../evacuation/registry.js';
import { evacuationVerbs } from './verbs/evacuate.js';
import type { DomainEvent } from '../libvirt/types.js';
import type { AgentContext, AgentSettings, ControllerFactory } from './context.js';
import { DirtyRateHistory } from './dirty-history.js';
import { LibvirtLink } from './libvirt-link.js';
import { MigrationLedger } from '../migration/ledger.js';
import { adoptRecorded } from './orphans.js';
import { EvacuationStore } from '../evacuation/store.js';
import { resumeEvacuations } from './evacuation-resume.js';
import { startRpcServer, type RefusedHook, type RpcLimits, type RpcServer } from './rpc/server.js';
import { estimateVerbs } from './verbs/estimate.js';
import { eventVerbs } from './verbs/events.js';
import { hostVerbs } from './verbs/host.js';
import { vmVerbs } from './verbs/vm.js';
import { afterReady } from './verbs/types.js';

export interface AgentOptions {
  settings: AgentSettings;
  listen: { host: string; port: number };
  /** optional local endpoint (Unix socket, 0600) */
  localSocket?: string | null;
  limits: RpcLimits;
  maxIncoming: number;
  maxOutgoing: number;
  controllers: ControllerFactory;
  logger: Logger;
  version: string;
  onRefused?: RefusedHook;
  /** directory for the record of running migrations; none: no record (tests) */
  stateDir?: string;
  /** called once the context exists, before adopted migrations start emitting (metrics) */
  onContext?: (context: AgentContext) => void;
}

export interface Agent {
  context: AgentContext;
  rpc: RpcServer;
  /** cancel running migrations, wait for them to end, close everything */
  stop(): Promise<void>;
}

export async function startAgent(opts: AgentOptions): Promise<Agent> {
  const ledger = opts.stateDir !== undefined ? new MigrationLedger(opts.stateDir) : undefined;
  const manager = new MigrationManager(opts.maxOutgoing, ledger);
  const evacuationStore = opts.stateDir !== undefined ? new EvacuationStore(opts.stateDir) : undefined;
  const onEvent = (ev: DomainEvent): void => {
    // a lifecycle change (paused for post-copy, resumed, stopped) is sampled at once, like a pass boundary
    if (ev.kind === 'migration-iteration' || ev.kind === 'lifecycle') manager.onIteration(ev.domainUuid);
    else if (ev.kind === 'job-completed') manager.onJobCompleted(ev.domainUuid, ev.stats);
  };
  const libvirt = new LibvirtLink(opts.settings.libvirtUri, opts.logger, onEvent);
  libvirt.onReconnect(() => manager.connectionLost());
  const context: AgentContext = {
    settings: opts.settings,
    version: opts.version,
    libvirt,
    manager,
    desk: new AdmissionDesk(opts.maxIncoming),
    // an evacuation dropped from the kept ones takes its record along
    evacuations: new EvacuationRegistry((id) => evacuationStore?.remove(id)),
    ...(evacuationStore ? { evacuationStore } : {}),
    controllers: opts.controllers,
    logger: opts.logger,
  };
  // Connect early so a broken libvirt shows in the log at start, but keep serving if it is down.
  const connected = await libvirt.get().then(
    () => true,
    (err: unknown) => {
      opts.logger.error({ event: 'libvirt.unavailable', uri: opts.settings.libvirtUri, err: String(err) }, 'libvirt is not reachable yet');
      return false;
    },
  );
  let adoptionDone = (): void => {};
  const adopted = new Promise<void>((resolve) => (adoptionDone = resolve));
  const rpc = await startRpcServer({
    listen: opts.listen,
    tls: opts.settings.tls,
    roles: opts.settings.roles,
    localSocket: opts.localSocket ?? null,
    limits: opts.limits,
    verbs: { ...hostVerbs(context), ...afterReady(adopted, { ...vmVerbs(context), ...estimateVerbs(context), ...evacuationVerbs(context) }), ...eventVerbs() },
    logger: opts.logger,
    ...(opts.onRefused ? { onRefused: opts.onRefused } : {}),
  });
  manager.on('state', (s) => rpc.notify('migration.state', s));
  context.evacuations.on('change', (s) => rpc.notify('evacuation.state', s));
  manager.on('progress', (s) => rpc.notify('migration.progress', s));
  manager.on('action', (s, record) => rpc.notify('migration.action', { ...s, record }));
  const sampleSec = opts.settings.dirtyRateSampleSec ?? 0;
  if (sampleSec > 0) {
    context.dirtyHistory = new DirtyRateHistory(libvirt, (uuid) => manager.migrating(uuid), opts.logger, sampleSec * 1000);
    context.dirtyHistory.start();
  }
  opts.onContext?.(context);
  // After the listeners, so that the adopted migrations' events reach subscribers and metrics.
  // Without libvirt the records stay for the next start.
  try {
    if (ledger && connected) await adoptRecorded(context, ledger);
    // after the adoptions: a resumed evacuation follows the migrations they took over
    if (evacuationStore && connected) {
      await resumeEvacuations(context, evacuationStore).catch((err: unknown) =>
        opts.logger.error({ event: 'evacuation.resume_failed', err: String(err) }, 'could not go on with a recorded evacuation; its record stays for the next start'),
      );
    }
  } finally {
    adoptionDone();
  }
  opts.logger.info({ event: 'agent.listening', url: rpc.url, localSocket: opts.localSocket ?? null }, `listening on ${rpc.url}${opts.localSocket ? ` and ${opts.localSocket}` : ''}`);

  return {
    context,
    rpc,
    async stop() {
      // Never leave a migration running unattended: answer the waiting ones (cancelled) so none
      // starts now, then abort the running ones; the guests stay on this host.
      // the evacuation stops where it is, recorded: the next agent goes on with it
      context.evacuations.halt();
      manager.close();
      context.dirtyHistory?.stop();
      const active = manager.list().filter((s) => isMigrationActive(s.state));
      await Promise.all(active.map((s) => manager.get(s.vmId).cancel().catch(() => {})));
      await manager.settle();
      await rpc.close();
      await libvirt.close();
    },
  };
}
