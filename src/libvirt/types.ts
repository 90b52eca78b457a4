// The TypeScript face of the native libvirt addon (native/). Every method that talks to libvirt
// returns a Promise and runs off the JS main thread; errors reject with LibvirtError (./errors.ts).

/** virDomainState, as numbers libvirt uses. */
export const DomainState = {
  NOSTATE: 0,
  RUNNING: 1,
  BLOCKED: 2,
  PAUSED: 3,
  SHUTDOWN: 4,
  SHUTOFF: 5,
  CRASHED: 6,
  PMSUSPENDED: 7,
} as const;
export type DomainStateCode = (typeof DomainState)[keyof typeof DomainState];

/** virDomainMigrateFlags. */
export const MigrateFlags = {
  LIVE: 1 << 0,
  PEER2PEER: 1 << 1,
  TUNNELLED: 1 << 2,
  PERSIST_DEST: 1 << 3,
  UNDEFINE_SOURCE: 1 << 4,
  PAUSED: 1 << 5,
  NON_SHARED_DISK: 1 << 6,
  NON_SHARED_INC: 1 << 7,
  CHANGE_PROTECTION: 1 << 8,
  UNSAFE: 1 << 9,
  OFFLINE: 1 << 10,
  COMPRESSED: 1 << 11,
  ABORT_ON_ERROR: 1 << 12,
  AUTO_CONVERGE: 1 << 13,
  RDMA_PIN_ALL: 1 << 14,
  POSTCOPY: 1 << 15,
  TLS: 1 << 16,
  PARALLEL: 1 << 17,
  /** resume a post-copy migration that failed (paused) once the link is back (libvirt 8.5) */
  POSTCOPY_RESUME: 1 << 19,
} as const;

/** virDomainAbortJobFlagsValues. */
export const AbortJobFlags = {
  /** interrupt (pause) a post-copy migration instead of aborting it; resumable (libvirt 8.5) */
  POSTCOPY: 1 << 0,
} as const;

/** virDomainRunningReason values the agent reads. */
export const RunningReason = {
  MIGRATED: 2,
  MIGRATION_CANCELED: 6,
  POSTCOPY: 10,
  POSTCOPY_FAILED: 11,
} as const;

/** virDomainPausedReason values the agent reads. */
export const PausedReason = {
  MIGRATION: 2,
  POSTCOPY: 12,
  POSTCOPY_FAILED: 13,
} as const;

/** virDomainEventType / detail values the agent reads. */
export const LifecycleEvent = {
  SUSPENDED: 3,
  RESUMED: 4,
  /** VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY */
  SUSPENDED_POSTCOPY: 7,
  /** VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED */
  SUSPENDED_POSTCOPY_FAILED: 8,
} as const;

/** Typed parameters for virDomainMigrateToURI3. Keys are libvirt's VIR_MIGRATE_PARAM_* strings. */
export interface MigrateParams {
  migrate_uri?: string;
  destination_name?: string;
  destination_xml?: string;
  persistent_xml?: string;
  /** MiB/s */
  bandwidth?: number;
  /** MiB/s, post-copy phase */
  'bandwidth.postcopy'?: number;
  listen_address?: string;
  'auto_converge.initial'?: number;
  'auto_converge.increment'?: number;
  graphics_uri?: string;
  compression?: string;
  'parallel.connections'?: number;
}

export interface DomainInfo {
  state: DomainStateCode;
  maxMemKiB: number;
  memoryKiB: number;
  nrVirtCpu: number;
  cpuTimeNs: number;
}

export interface DomainSummary {
  id: number; // -1 when inactive
  uuid: string;
  name: string;
  state: DomainStateCode;
  active: boolean;
  persistent: boolean;
}

/**
 * virDomainGetJobStats, flattened: libvirt's typed parameter names (e.g. "memory_remaining",
 * "memory_iteration", "memory_dirty_rate", "auto_converge_throttle", "downtime") mapped to numbers,
 * plus `type` (virDomainJobType: 0 none, 1 bounded, 2 unbounded, 3 completed, 4 failed, 5 cancelled).
 */
export interface JobStats {
  type: number;
  [field: string]: number;
}

/** virDomainJobType. */
export const JobType = {
  NONE: 0,
  BOUNDED: 1,
  UNBOUNDED: 2,
  COMPLETED: 3,
  FAILED: 4,
  CANCELLED: 5,
} as const;

/** A job of this type is still going (bounded: its size is known; unbounded: it is not). */
export function isJobActive(type: number): boolean {
  return type === JobType.BOUNDED || type === JobType.UNBOUNDED;
}

/** virDomainGetJobStatsFlags. */
export const JobStatsFlags = {
  /** the current job */
  CURRENT: 0,
  /** VIR_DOMAIN_JOB_STATS_COMPLETED: the statistics of the last completed job */
  COMPLETED: 1,
} as const;

/** virDomainJobOperation: what a job does (JobStats.operation). */
export const JobOperation = {
  UNKNOWN: 0,
  START: 1,
  SAVE: 2,
  RESTORE: 3,
  MIGRATION_IN: 4,
  MIGRATION_OUT: 5,
  SNAPSHOT: 6,
  SNAPSHOT_REVERT: 7,
  DUMP: 8,
  BACKUP: 9,
} as const;

/** virDomainDirtyRateCalcFlags: how QEMU measures the dirty rate. */
export const DirtyRateMode = {
  /** hashes a random sample of pages at the start and the end of the period (works under TCG) */
  PAGE_SAMPLING: 0,
  /** dirty log of all memory: crashed QEMU 7.2 under TCG in the lab, so the agent never uses it */
  DIRTY_BITMAP: 1 << 0,
  DIRTY_RING: 1 << 1,
} as const;

/** virDomainDirtyRateStatus (dirtyrate.calc_status). */
export const DirtyRateStatus = {
  UNSTARTED: 0,
  MEASURING: 1,
  MEASURED: 2,
} as const;

/**
 * The domain stats group "dirtyrate" (VIR_DOMAIN_STATS_DIRTYRATE), numbers only: e.g.
 * "dirtyrate.calc_status", "dirtyrate.calc_start_time", "dirtyrate.calc_period",
 * "dirtyrate.megabytes_per_second", "dirtyrate.vcpu.0.megabytes_per_second". Empty before the first
 * calculation of this QEMU process.
 */
export interface DirtyRateStats {
  [field: string]: number;
}

/**
 * virDomainMemoryStats, keyed by the names `virsh dommemstat` prints; sizes in KiB. QEMU always gives
 * `rss` (the QEMU process's resident set, which only holds guest pages the guest has touched, plus
 * QEMU's own memory); most other fields need a balloon driver in the guest.
 */
export interface MemoryStats {
  rss?: number;
  actual?: number;
  available?: number;
  unused?: number;
  usable?: number;
  [field: string]: number | undefined;
}

/** Events delivered from libvirt's event loop thread. */
export type DomainEvent =
  | { kind: 'lifecycle'; domainUuid: string; domainName: string; event: number; detail: number }
  | { kind: 'migration-iteration'; domainUuid: string; domainName: string; iteration: number }
  | { kind: 'job-completed'; domainUuid: string; domainName: string; stats: JobStats };

export interface Domain {
  readonly name: string;
  readonly uuid: string;
  getInfo(): Promise<DomainInfo>;
  getState(): Promise<{ state: DomainStateCode; reason: number }>;
  getXmlDesc(flags?: number): Promise<string>;
  create(): Promise<void>;
  destroy(): Promise<void>;
  undefine(): Promise<void>;
  /** Blocks (off-thread, on its own native thread) until the migration ends. */
  migrateToUri3(dconnuri: string, params: MigrateParams, flags: number): Promise<void>;
  /** flags: JobStatsFlags (the current job, or the last completed one). */
  getJobStats(flags?: number): Promise<JobStats>;
  /** flags: AbortJobFlags (POSTCOPY pauses a post-copy migration instead of aborting it) */
  abortJob(flags?: number): Promise<void>;
  migrateSetMaxDowntime(ms: number): Promise<void>;
  migrateSetMaxSpeed(mibPerSec: number): Promise<void>;
  migrateStartPostCopy(): Promise<void>;
  /** QMP command (JSON text) or HMP when hmp=true. A QMP reply with "error" rejects. */
  qemuMonitorCommand(command: string, hmp?: boolean): Promise<string>;
  /** virDomainStartDirtyRateCalc: starts a measurement over `seconds` (1-60); flags: DirtyRateMode. */
  startDirtyRateCalc(seconds: number, flags?: number): Promise<void>;
  /** The "dirtyrate" domain stats group: the state and result of the last calculation. */
  getDirtyRateStats(): Promise<DirtyRateStats>;
  /** virDomainMemoryStats. */
  memoryStats(): Promise<MemoryStats>;
}

export interface Connection {
  readonly uri: string;
  getHostname(): Promise<string>;
  getLibVersion(): Promise<number>;
  getVersion(): Promise<number>;
  getCapabilities(): Promise<string>;
  /** host UUID from sysinfo/capabilities */
  getHostUuid(): Promise<string>;
  listAllDomains(): Promise<DomainSummary[]>;
  lookupByName(name: string): Promise<Domain>;
  lookupByUuid(uuid: string): Promise<Domain>;
  defineXml(xml: string): Promise<Domain>;
  createXml(xml: string, flags?: number): Promise<Domain>;
  setKeepAlive(intervalSec: number, count: number): Promise<void>;
  /** Called once when libvirt reports the connection closed (reason: virConnectCloseReason). */
  onClose(cb: (reason: number) => void): void;
  /** Subscribe to domain events for all domains of this connection. Returns an unsubscribe function. */
  onDomainEvent(cb: (ev: DomainEvent) => void): Promise<() => Promise<void>>;
  isAlive(): boolean;
  close(): Promise<void>;
}
