// At start-up: migrations the previous agent process left running (it crashed or was killed; libvirt
// carries a peer-to-peer migration on without its client) run unsteered and unseen. Abort them, so
// the VM stays where it is and a manager can start again; post-copy cannot be undone and is left.
import type { Logger } from 'pino';
import { EVERY_KNOB, QEMU_DEFAULTS, restoreActions } from '../controller/index.js';
import { isNoDomain } from '../libvirt/errors.js';
import { isJobActive, JobOperation } from '../libvirt/types.js';
import type { MigrationLedger } from '../migration/ledger.js';
import { applyAction } from '../migration/effects.js';
import type { LibvirtLink } from './libvirt-link.js';

export async function abortOrphans(ledger: MigrationLedger, libvirt: LibvirtLink, log: Logger): Promise<void> {
  for (const entry of ledger.entries()) {
    const fields = { event: 'migration.orphan', migrationId: entry.migrationId, vmId: entry.vmUuid, vmName: entry.vmName };
    try {
      const domain = await (await libvirt.get()).lookupByUuid(entry.vmUuid);
      const stats = await domain.getJobStats();
      const running = isJobActive(stats.type);
      const outgoing = stats.operation === undefined || stats.operation === JobOperation.MIGRATION_OUT;
      if (!running || !outgoing) {
        log.info({ ...fields, jobType: stats.type, operation: stats.operation }, 'migration left by a previous agent process has ended');
      } else if ((stats.memory_postcopy_requests ?? 0) > 0) {
        log.warn(fields, 'migration left by a previous agent process is in post-copy: it cannot be aborted, left to finish');
      } else {
        await domain.abortJob();
        // the throttle knobs it may have steered go back to QEMU's defaults
        for (const action of restoreActions(EVERY_KNOB, QEMU_DEFAULTS, 'aborted an orphaned migration')) {
          await applyAction(domain, action).catch(() => {});
        }
        log.warn(fields, 'aborted a migration left running by a previous agent process; the VM stays on this host');
      }
    } catch (err) {
      if (!isNoDomain(err)) {
        log.error({ ...fields, err: String(err) }, 'could not check a migration left by a previous agent process');
        continue; // keep the record: the next start tries again
      }
      log.info(fields, 'VM of a migration left by a previous agent process is gone from this host (migrated)');
    }
    ledger.remove(entry.migrationId);
  }
}
