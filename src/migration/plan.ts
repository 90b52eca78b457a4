// Turns the options of VM.migrate into libvirt's typed parameters and flags. Pure.
import { MigrateFlags, type MigrateParams as LibvirtMigrateParams } from '../libvirt/types.js';

export interface MigrationOptions {
  /** MiB/s */
  bandwidth?: number;
  autoConvergeInitial?: number;
  autoConvergeIncrement?: number;
  /** default true */
  autoConverge?: boolean;
  /** VIR_MIGRATE_POSTCOPY: only when asked for (VM.migrate `postcopy`, or a policy that allows it) */
  postcopy?: boolean;
  persistDest?: boolean;
  undefineSource?: boolean;
  /** encrypt QEMU's migration stream with libvirt's migration TLS certificates */
  tls?: boolean;
  migrationUri?: string;
}

export function libvirtMigrationArgs(opts: MigrationOptions): { params: LibvirtMigrateParams; flags: number } {
  // Always live, peer-to-peer (the source libvirtd talks to the destination itself), with
  // auto-converge so QEMU's throttle exists for the controller to steer, and abort on any error.
  let flags = MigrateFlags.LIVE | MigrateFlags.PEER2PEER | MigrateFlags.AUTO_CONVERGE | MigrateFlags.ABORT_ON_ERROR;
  if (opts.autoConverge === false) flags &= ~MigrateFlags.AUTO_CONVERGE;
  if (opts.postcopy) flags |= MigrateFlags.POSTCOPY;
  if (opts.persistDest) flags |= MigrateFlags.PERSIST_DEST;
  if (opts.undefineSource) flags |= MigrateFlags.UNDEFINE_SOURCE;
  if (opts.tls) flags |= MigrateFlags.TLS;
  const params: LibvirtMigrateParams = {};
  if (opts.migrationUri !== undefined) params.migrate_uri = opts.migrationUri;
  if (opts.bandwidth !== undefined) params.bandwidth = opts.bandwidth;
  // the bandwidth asked for holds in post-copy too (libvirt's default there is unlimited)
  if (opts.bandwidth !== undefined && opts.postcopy) params['bandwidth.postcopy'] = opts.bandwidth;
  if (opts.autoConvergeInitial !== undefined) params['auto_converge.initial'] = opts.autoConvergeInitial;
  if (opts.autoConvergeIncrement !== undefined) params['auto_converge.increment'] = opts.autoConvergeIncrement;
  return { params, flags };
}
