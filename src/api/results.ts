// Result shapes of the agent's JSON-RPC verbs, shared by the daemon and the typed client.
import type { Action } from '../controller/types.js';

/** `queued`: waiting in the agent's FIFO for an outgoing slot (nothing asked of the destination yet).
 *  `postcopy-paused`: post-copy broke (link or destination); the guest's memory is split between the
 *  hosts and the agent is resuming it with libvirt's post-copy recovery. */
export type MigrationState = 'queued' | 'pending' | 'running' | 'postcopy-paused' | 'completed' | 'failed' | 'cancelled';

/** Where the VM runs once a migration ended, as the agent found it on both hosts:
 *  `paused-destination` is a post-copy that could not be recovered (the guest's state is there). */
export type VmLocation = 'source' | 'destination' | 'paused-source' | 'paused-destination' | 'unknown';

/** The migration has not ended yet (it may still be changed or followed; cancelled unless in post-copy). */
export function isMigrationActive(state: MigrationState): boolean {
  return state === 'queued' || state === 'pending' || state === 'running' || state === 'postcopy-paused';
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
  /** while `queued`: its place in the FIFO, 1 = starts next */
  queuePosition?: number;
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
  /** where the VM was found when the migration ended (null while it runs) */
  vmLocation: VmLocation | null;
  /** the parameters the agent changed were put back on the copy that remains and read back equal
   *  (true), read back different (false), or there was nothing to put back (null) */
  paramsRestored: boolean | null;
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
  capacity: HostCapacity;
}

/** What a host can take now, for placement (Host.evacuate asks each destination). */
export interface HostCapacity {
  /** memory an incoming VM may still use, MiB */
  memoryFreeMiB: number;
  /** memory offered to VMs, MiB: the memoryCapacity setting, or the host's total memory */
  memoryTotalMiB: number;
  /** `configured`: the memoryCapacity setting minus the VMs' memory; `host`: the host's available memory */
  memorySource: 'configured' | 'host';
  /** active domains (running, paused, incoming) */
  runningVms: number;
  /** memory of the active domains, MiB */
  vmMemoryMiB: number;
  incomingSlotsFree: number;
  incomingLimit: number;
  outgoingSlotsFree: number;
  outgoingLimit: number;
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
  /** pending: started; queued: waiting for an outgoing slot */
  state: 'pending' | 'queued';
  /** when queued: its place in the FIFO, 1 = starts next */
  queuePosition?: number;
}
