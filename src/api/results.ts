// Result shapes of the agent's JSON-RPC verbs, shared by the daemon and the typed client.
import type { Action } from '../controller/types.js';

export type MigrationState = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';

/** The migration has not ended yet (it may still be cancelled, changed, or followed). */
export function isMigrationActive(state: MigrationState): boolean {
  return state === 'pending' || state === 'running';
}

export interface ActionRecord {
  /** ISO time the action was decided */
  at: string;
  /** ms since migration start */
  t: number;
  action: Action;
  /** false when applying it failed; error says why */
  applied: boolean;
  error?: string;
}

/** What VM.migrateStatus returns and what state/progress notifications carry. */
export interface MigrationStatus {
  migrationId: string;
  vmId: string;
  vmName: string;
  source: string;
  destination: string;
  state: MigrationState;
  /** 0..100, never decreases */
  progress: number;
  dataTotal: number;
  dataProcessed: number;
  dataRemaining: number;
  iteration: number;
  /** bytes/s */
  dirtyRate: number;
  /** bytes/s */
  transferRate: number;
  throttlePercent: number;
  postcopy: boolean;
  /** the migration stream is encrypted (libvirt's VIR_MIGRATE_TLS was asked for) */
  tls: boolean;
  downtimeMs: number | null;
  startedAt: string;
  endedAt: string | null;
  elapsedMs: number;
  policy: string;
  actions: ActionRecord[];
  error: { code: number; name: string; message: string } | null;
  /** set when an agent restarted mid-migration took this migration over from its predecessor */
  adoption?: Adoption;
}

/** How a restarted agent took over a migration its predecessor started. */
export interface Adoption {
  /** when this agent took it over */
  adoptedAt: string;
  /** resumed: the controller goes on from its saved state; unsteered: that state was lost, QEMU's
   *  auto-converge goes on as last set; stock: no controller steered it */
  steering: 'resumed' | 'unsteered' | 'stock';
  /** what was found and decided, for people */
  reason: string;
}

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
