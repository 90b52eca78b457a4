// Result shapes of the agent's JSON-RPC verbs, shared by the daemon and the typed client.
export type { MigrationStatus, MigrationState, ActionRecord } from '../migration/status.js';

export interface PingResult {
  ok: true;
  name: string;
  version: string;
}

export interface Capabilities {
  name: string;
  hostname: string;
  hostUuid: string;
  libvirtVersion: string;
  qemuVersion: string;
  /** libvirt URI a peer's libvirtd can use to reach this host for peer-to-peer migration */
  libvirtUri: string;
  migrationFeatures: string[];
  policies: string[];
}

export interface VmSummary {
  id: number;
  uuid: string;
  name: string;
  state: string;
}

export interface MigrateResult {
  migrationId: string;
  vmId: string;
  vmName: string;
}
