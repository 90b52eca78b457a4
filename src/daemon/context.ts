import type { Logger } from 'pino';
import type { MigrationManager } from '../migration/manager.js';
import type { AdmissionDesk } from '../migration/admission.js';
import type { ControllerPort } from '../migration/controller-port.js';
import type { Action } from '../controller/types.js';
import type { LibvirtLink } from './libvirt-link.js';

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
  /** encrypt migration streams when VM.migrate does not say; default false */
  migrationTls?: boolean;
}

export interface ControllerContext {
  guestRamBytes: number;
  postcopyEnabled: boolean;
  bandwidthMiBps?: number;
  maxDowntimeMs?: number;
  autoConvergeInitial?: number;
  autoConvergeIncrement?: number;
}

export interface ResolvedPolicy {
  name: string;
  allowPostcopy: boolean;
  /** opaque to the daemon: the controller's own validated policy */
  policy: unknown;
}

/** A change of a running migration's policy: a new policy (name or object) and/or single limits. */
export interface PolicyChange {
  policy?: unknown;
  maxThrottle?: number;
  downtimeMs?: number;
  bandwidthMiBps?: number;
}

/** Builds a controller for the policy given with VM.migrate (a name, an object, or none). */
export interface ControllerFactory {
  names(): string[];
  /** validates; throws AgentError INVALID_POLICY naming the bad field */
  resolve(input: unknown): ResolvedPolicy;
  /** null: the policy wants QEMU's stock behaviour, nothing steered */
  create(policy: ResolvedPolicy, ctx: ControllerContext): ControllerPort | null;
  /** steer a running controller by a new policy; throws AgentError INVALID_POLICY */
  change(controller: ControllerPort, change: PolicyChange): { actions: Action[]; policyName: string };
}

export interface AgentContext {
  settings: AgentSettings;
  version: string;
  libvirt: LibvirtLink;
  manager: MigrationManager;
  desk: AdmissionDesk;
  controllers: ControllerFactory;
  logger: Logger;
}
