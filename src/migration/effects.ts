import type { Action } from '../controller/types.js';
import type { Domain } from '../libvirt/types.js';

/**
 * Carry out one controller action on the source domain. Throttle parameters go to QEMU directly
 * (libvirt has no API for changing them mid-migration); everything else has a libvirt call.
 */
export async function applyAction(domain: Domain, action: Action): Promise<void> {
  switch (action.type) {
    case 'set-throttle':
      await domain.qemuMonitorCommand(
        JSON.stringify({ execute: 'migrate-set-parameters', arguments: action.params }),
      );
      return;
    case 'set-downtime':
      await domain.migrateSetMaxDowntime(action.ms);
      return;
    case 'set-bandwidth':
      await domain.migrateSetMaxSpeed(action.mibPerSec);
      return;
    case 'postcopy':
      await domain.migrateStartPostCopy();
      return;
    case 'abort':
      await domain.abortJob();
      return;
  }
}
