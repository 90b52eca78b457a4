import type { Logger } from 'pino';
import type { MigrationManager } from '../migration/manager.js';
import type { AdmissionDesk } from '../migration/admission.js';
import type { EvacuationRegistry } from '../evacuation/registry.js';
import type { EvacuationStore } from '../evacuation/store.js';
import type { Action, ControllerContext, ControllerPort } from '../controller/types.js';
import type { DirtyRateHistory } from './dirty-history.js';
import type { LibvirtLink } from './libvirt-link.js';
import type { AllowRule } from './security/libvirt-uri.js';
import type { RoleTable } from './security/subject.js';
import type { TlsStore } from './security/tls-store.js';

/** Settings the verbs need; a subset of the daemon's configuration. */
export interface AgentSettings {
  name: string;
  libvirtUri: string;
  /** libvirt URI peers use to reach this host (defaults to libvirtUri) */
  advertisedLibvirtUri?: string;
  /** QEMU migration stream URI peers should use towards this host, if set */
  migrationUri?: string;
  monitorIntervalMs: number;
  sampleTimeoutMs: number;
  /** memory offered to VMs, MiB; absent: the host's available memory */
  memoryCapacityMiB?: number;
  /** pause between the agent's rounds of dirty-rate samples over its running guests, s; 0 or
   *  absent: no sampling */
  dirtyRateSampleSec?: number;
  /** how long VM.migrate waits for an outgoing slot when it does not say, s; default 600 */
  queueTimeoutSec?: number;
  /** encrypt migration streams when VM.migrate does not say; default false */
  migrationTls?: boolean;
  /** the libvirt URIs a migration may be sent to */
  allowedLibvirtUris: readonly AllowRule[];
  /** this agent's certificate, also used towards destination agents; null: TLS off (loopback only) */
  tls: TlsStore | null;
  /** recognises a peer agent by its certificate subject */
  roles: RoleTable;
}

/** What a VM.migrate request and the VM tell the factory about the controller to build: the
 *  controller's context (`bandwidthMiBps` is VM.migrate `bandwidth`), and what QEMU starts with. */
export interface ControllerRequest extends Omit<ControllerContext, 'original'> {
  /** VM.migrate `maxDowntime`: the downtime limit the controller starts from, ms */
  downtimeLimitMs?: number;
  /** VM.migrate `autoConvergeInitial` / `autoConvergeIncrement`: the throttle knobs' starting values */
  autoConvergeInitial?: number;
  autoConvergeIncrement?: number;
}

export interface ResolvedPolicy {
  name: string;
  allowPostcopy: boolean;
  /** when a migration of a guest this large is given up */
  completionTimeoutMs(guestRamBytes: number): number;
  /** abort a pre-copy migration whose stream moved no data for this long, ms */
  transferStallMs: number;
  /** give up resuming a broken post-copy after this long, ms */
  postcopyRecoveryMs: number;
  /** opaque to the daemon: the controller's own validated policy */
  policy: unknown;
}

/** A change of a running migration's policy: a new policy (name or object) and/or single limits. */
export interface PolicyChange {
  policy?: unknown;
  maxThrottle?: number;
  /** VM.migrateChangeParams `maxDowntime`: the downtime limit from now on, ms */
  downtimeMs?: number;
  bandwidthMiBps?: number;
}

/** Builds a controller for the policy given with VM.migrate (a name, an object, or none). */
export interface ControllerFactory {
  names(): string[];
  /** validates; throws AgentError INVALID_POLICY naming the bad field */
  resolve(input: unknown): ResolvedPolicy;
  /** null: the policy wants QEMU's stock behaviour, nothing steered */
  create(policy: ResolvedPolicy, request: ControllerRequest): ControllerPort | null;
  /** steer a running controller by a new policy; throws AgentError INVALID_POLICY */
  change(controller: ControllerPort, change: PolicyChange): { actions: Action[]; policyName: string };
}

export interface AgentContext {
  settings: AgentSettings;
  version: string;
  libvirt: LibvirtLink;
  manager: MigrationManager;
  desk: AdmissionDesk;
  evacuations: EvacuationRegistry;
  /** the evacuations' records in the state directory; none: evacuations live in memory only */
  evacuationStore?: EvacuationStore;
  controllers: ControllerFactory;
  logger: Logger;
  /** the guests' dirty rates sampled now and then; absent: sampling is off */
  dirtyHistory?: DirtyRateHistory;
}
